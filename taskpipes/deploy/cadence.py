"""What the deployment files need to know about a pipeline: its name and how often it runs."""

from __future__ import annotations

from dataclasses import dataclass

from taskpipes.declare.pipeline import Pipeline


@dataclass(frozen=True)
class Cadence:
    """A declared pipeline as the alerts and dashboards see it."""

    name: str
    # The gap between two ticks of its schedule; None for a pipeline run on demand.
    period_seconds: int | None

    @property
    def scheduled(self) -> bool:
        return self.period_seconds is not None

    @classmethod
    def of(cls, pipeline: Pipeline) -> Cadence:
        schedule = pipeline.schedule
        period = None if schedule is None else int(schedule.period.total_seconds())
        return cls(pipeline.name, period)
