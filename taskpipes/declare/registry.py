"""The declared pipelines: a catalogue, data only.

Declaring opens nothing (importing an application's declarations is cheap). The runtime
builds actors from the catalogue (`taskpipes.start()`), and is told of a pipeline declared
after that through `when_declared`. Every place that lists pipelines (catch-up,
`taskpipes run/backfill/status`, /api/runs, /readyz, the web page) reads this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from taskpipes.declare.configuration import configuration
from taskpipes.declare.pipeline import Pipeline
from taskpipes.declare.schedule import Schedule, ScheduleError
from taskpipes.declare.settings import (
    SCHEDULE_PREFIX,
    ConfigError,
    check_override_names,
    get_settings,
)


class Registry:
    """Pipelines by name, in declaration order."""

    def __init__(self) -> None:
        self._declared: dict[str, Pipeline] = {}
        self._listeners: list[Callable[[Pipeline], None]] = []

    def declare(self, *pipelines: Pipeline) -> None:
        """Add declarations; declaring the same one twice is harmless, a clash is not."""
        for pipeline in pipelines:
            known = self._declared.get(pipeline.name)
            if known is not None and known is not pipeline:
                raise ValueError(f"pipeline {pipeline.name!r} is declared twice")
            self._declared[pipeline.name] = pipeline
            if known is None:
                for listener in self._listeners:
                    listener(self.get(pipeline.name))

    def withdraw(self, name: str) -> None:
        """Forget the declaration `name` (a test's own pipeline, after the test); its
        actors stay on the broker, unused, until a declaration of that name replaces them."""
        self._declared.pop(name, None)

    def when_declared(self, listener: Callable[[Pipeline], None]) -> None:
        """Call `listener` with each pipeline declared from now on (the runtime builds its
        actors): the catalogue stays data, and knows nothing of brokers."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    @property
    def declared(self) -> list[Pipeline]:
        """Every declaration as written, without the environment's schedule overrides: what
        the generated deployment files are made from."""
        return list(self._declared.values())

    @property
    def pipelines(self) -> list[Pipeline]:
        """Every declaration, with its schedule as overridden by TASKPIPES_SCHEDULE_<NAME>
        (an override naming no declared pipeline is refused)."""
        settings = get_settings()
        check_override_names(settings, self._declared)
        overrides = settings.schedule_overrides
        return [overridden(p, overrides.get(p.name)) for p in self._declared.values()]

    def get(self, name: str) -> Pipeline:
        for pipeline in self.pipelines:
            if pipeline.name == name:
                return pipeline
        known = ", ".join(sorted(self._declared))
        raise KeyError(f"unknown pipeline {name!r}; known: {known}")

    def scheduled(self) -> list[Pipeline]:
        """The pipelines periodiq sends ticks for (and catch-up and /readyz watch)."""
        return [p for p in self.pipelines if p.schedule is not None]

    def backfillable(self) -> list[str]:
        return sorted(p.name for p in self.pipelines if p.computes_past)


def overridden(pipeline: Pipeline, cron: str | None) -> Pipeline:
    """`pipeline` with its schedule's cron replaced, made once per configuration: every
    `registry.get` of a message then hands out the same object, its parsed cron included."""
    if cron is None or pipeline.schedule is None:
        return pipeline
    return configuration.derived(
        ("schedule override", pipeline, cron), lambda: with_override(pipeline, cron)
    )


def with_override(pipeline: Pipeline, cron: str | None) -> Pipeline:
    """`pipeline` with its schedule's cron replaced; a bad one names the variable."""
    if cron is None or pipeline.schedule is None:
        return pipeline
    try:
        schedule: Schedule = replace(pipeline.schedule, cron=cron)
    except ScheduleError as exc:
        raise ConfigError(f"{SCHEDULE_PREFIX}{pipeline.name.upper()}: {exc}") from None
    return replace(pipeline, schedule=schedule)


# The one registry of this process, like Dramatiq's one global broker.
registry = Registry()
