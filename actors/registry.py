"""Every scheduled pipeline by name: its tick actor, schedule and whether it can backfill."""

from __future__ import annotations

from dataclasses import dataclass

import dramatiq

from actors import github_top, maintenance, rollup, stargazers
from pipelines.schedule import Schedule
from taskpipes.settings import check_override_names, get_settings


@dataclass(frozen=True)
class PipelineEntry:
    name: str
    tick_actor: dramatiq.Actor
    schedule: Schedule
    # Only pipelines that compute from stored data can run a past tick faithfully.
    computes_past: bool

    @property
    def scheduled(self) -> bool:
        """periodiq sends its ticks; an on-demand pipeline's tick actor has no `periodic`."""
        return "periodic" in self.tick_actor.options


PIPELINES: dict[str, PipelineEntry] = {
    "github_top": PipelineEntry(
        "github_top", github_top.github_top_tick, github_top.SCHEDULE, False
    ),
    "rollup": PipelineEntry("rollup", rollup.rollup_tick, rollup.SCHEDULE, True),
    "maintenance": PipelineEntry(
        "maintenance", maintenance.maintenance_tick, maintenance.SCHEDULE, False
    ),
    "stargazers": PipelineEntry(
        "stargazers", stargazers.stargazers_tick, stargazers.SCHEDULE, False
    ),
}
check_override_names(get_settings(), PIPELINES)


def get_pipeline(name: str) -> PipelineEntry:
    try:
        return PIPELINES[name]
    except KeyError:
        raise KeyError(
            f"unknown pipeline {name!r}; known: {', '.join(sorted(PIPELINES))}"
        ) from None


def scheduled_pipelines() -> list[PipelineEntry]:
    """The pipelines periodiq sends ticks for (on-demand ones have no `periodic` option)."""
    return [entry for entry in PIPELINES.values() if entry.scheduled]
