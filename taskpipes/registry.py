"""The declared pipelines, and their actors once registered on a broker.

Declaring is data only (importing an application's declarations opens nothing).
Registering builds the actors with today's names on a broker, which only the process that
sends or works messages does (`import actors`). Every place that lists pipelines (catch-up,
`taskpipes run/backfill/status`, /api/runs, /readyz, the web page) reads this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cache

import dramatiq

from taskpipes.pipeline import Pipeline, Retries
from taskpipes.schedule import Schedule, ScheduleError
from taskpipes.settings import SCHEDULE_PREFIX, ConfigError, check_override_names, get_settings


class NotRegistered(RuntimeError):
    """A message was to be sent before the application registered its actors."""


class Registry:
    """Pipelines by name, in declaration order."""

    def __init__(self) -> None:
        self._declared: dict[str, Pipeline] = {}
        self._broker: dramatiq.Broker | None = None

    def declare(self, *pipelines: Pipeline) -> None:
        """Add declarations; declaring the same one twice is harmless, a clash is not."""
        for pipeline in pipelines:
            known = self._declared.get(pipeline.name)
            if known is not None and known is not pipeline:
                raise ValueError(f"pipeline {pipeline.name!r} is declared twice")
            self._declared[pipeline.name] = pipeline
            if known is None and self._broker is not None:
                self._register(self._broker, self.get(pipeline.name))

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
        return [with_override(p, overrides.get(p.name)) for p in self._declared.values()]

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

    def register(self, broker: dramatiq.Broker) -> None:
        """Build every declared pipeline's actors, and the kit's own, on `broker`; a
        pipeline declared later gets its actors as it is declared."""
        from taskpipes import catchup, housekeeping

        self._broker = broker
        for pipeline in self.pipelines:
            self._register(broker, pipeline)
        catchup.register(broker)
        housekeeping.register(broker)

    @staticmethod
    def _register(broker: dramatiq.Broker, pipeline: Pipeline) -> None:
        from taskpipes import register

        register.pipeline_actors(broker, pipeline)

    @property
    def broker(self) -> dramatiq.Broker:
        if self._broker is None:
            raise NotRegistered(
                "no broker: the application registers its actors first (`import actors`)"
            )
        return self._broker

    def tick_actor(self, pipeline: Pipeline) -> dramatiq.Actor:
        return self.broker.get_actor(pipeline.actor_name("tick"))

    def actor(
        self, pipeline: Pipeline, retries: Retries | None = None
    ) -> Callable[[Callable[..., None]], dramatiq.Actor]:
        """Decorate an application actor of `pipeline` (a fan-out's): it gets the
        pipeline's queue and retry options, and keeps its function's name."""
        from taskpipes.register import actor_options, make_actor

        def decorate(fn: Callable[..., None]) -> dramatiq.Actor:
            options = actor_options(pipeline.queue_name, retries or pipeline.retries)
            return make_actor(self.broker, fn, fn.__name__, options)

        return decorate


@cache
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
