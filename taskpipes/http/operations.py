"""What GET /pipelines and GET /pipelines/{name} show: each declared pipeline's schedule,
next tick, freshness, pause, last success and failure and dead letters, and its recent
runs drawn as one bar per stage (an inline-SVG Gantt). Reads only: the page changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskpipes.declare.pipeline import Pipeline
from taskpipes.declare.schedule import Schedule, ticks_between
from taskpipes.observe.report import PipelineStatus
from taskpipes.store.tables import Run, StageRun

# Runs drawn on a pipeline's page.
RECENT_RUNS = 50
# The Gantt's geometry in SVG user units: a label column, then the time axis.
LABEL_W, PLOT_W, ROW_H, BAR_H = 150, 600, 16, 11


@dataclass(frozen=True)
class Bar:
    stage: str
    # The stage's place in the declaration picks its colour (class "st0".."st5").
    index: int
    x: float
    width: float
    seconds: float
    status: str


@dataclass(frozen=True)
class RunLine:
    run: Run
    y: float
    bars: tuple[Bar, ...]

    @property
    def seconds(self) -> float | None:
        run = self.run
        if run.started_at is None or run.finished_at is None:
            return None
        return (run.finished_at - run.started_at).total_seconds()


@dataclass(frozen=True)
class Gantt:
    lines: tuple[RunLine, ...]
    # The longest run's span, the width of the time axis.
    span_s: float
    height: float
    stages: tuple[str, ...]


def schedule_text(schedule: Schedule | None) -> str:
    if schedule is None:
        return "on demand"
    return f"{schedule.cron} ({schedule.timezone or 'UTC'})"


def next_tick(schedule: Schedule | None, now: datetime) -> datetime | None:
    if schedule is None:
        return None
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return next(iter(ticks_between(schedule.spec, start, timedelta(days=400), 1)), None)


def recent_runs(session: Session, pipeline: str) -> list[tuple[Run, list[StageRun]]]:
    """The newest RECENT_RUNS runs, newest first, each with its stage rows."""
    found = session.scalars(
        select(Run).where(Run.pipeline == pipeline).order_by(Run.tick.desc()).limit(RECENT_RUNS)
    ).all()
    stages: dict[int, list[StageRun]] = {run.id: [] for run in found}
    for row in session.scalars(
        select(StageRun).where(StageRun.run_id.in_(stages)).order_by(StageRun.id)
    ):
        stages[row.run_id].append(row)
    return [(run, stages[run.id]) for run in found]


def _stage_span(row: StageRun) -> tuple[datetime, float] | None:
    """When a stage began and how long it took: a stage records itself as it commits,
    so its start is its end less its duration."""
    if row.finished_at is None or row.duration_seconds is None:
        return None
    return row.finished_at - timedelta(seconds=row.duration_seconds), row.duration_seconds


def gantt(pipeline: Pipeline, runs: list[tuple[Run, list[StageRun]]]) -> Gantt:
    """Bars per stage, each run on its own row, on one time scale from each run's start,
    so a slow stage is a long bar whichever run it is in. Pure."""
    order = {name: i for i, name in enumerate(pipeline.stage_names)}
    spans = []
    for run, rows in runs:
        origin = run.started_at or run.enqueued_at or run.tick
        placed = []
        for row in rows:
            span = _stage_span(row)
            if span is not None:
                placed.append((row, max(0.0, (span[0] - origin).total_seconds()), span[1]))
        spans.append((run, placed))
    longest = max((x + s for _, placed in spans for _, x, s in placed), default=0.0)
    scale = PLOT_W / longest if longest > 0 else 0.0
    lines = []
    for number, (run, placed) in enumerate(spans):
        bars = tuple(
            Bar(
                row.stage,
                order.get(row.stage, 0) % 6,
                LABEL_W + x * scale,
                max(1.0, seconds * scale),
                seconds,
                row.status,
            )
            for row, x, seconds in placed
        )
        lines.append(RunLine(run, number * ROW_H, bars))
    return Gantt(tuple(lines), longest, max(1, len(lines)) * ROW_H, pipeline.stage_names)


@dataclass(frozen=True)
class PipelineRow:
    """One pipeline as the list page shows it."""

    pipeline: Pipeline
    status: PipelineStatus
    schedule: str
    next_tick: datetime | None

    @property
    def dead(self) -> str:
        """Dead letters in its queue's `.XQ`, or "unknown" when RabbitMQ did not say."""
        depths = self.status.depths
        return "unknown" if depths is None else f"{depths.dead:,}"


def pipeline_rows(
    pipelines: list[Pipeline], statuses: list[PipelineStatus], now: datetime
) -> list[PipelineRow]:
    by_name = {status.pipeline: status for status in statuses}
    return [
        PipelineRow(p, by_name[p.name], schedule_text(p.schedule), next_tick(p.schedule, now))
        for p in pipelines
    ]
