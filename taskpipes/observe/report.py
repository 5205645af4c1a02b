"""What `taskpipes status` reports about one pipeline, built from run rows and `now`. Pure.

Freshness is measured from the tick of the newest successful run: that is the moment the
stored data describes. A pipeline is fresh while that tick is younger than FRESH_PERIODS
schedule periods, i.e. at most one tick in a row has been missed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskpipes.rabbitmq.queues import QueueDepth

# A success older than this many schedule periods means the data is stale.
FRESH_PERIODS = 2
# Run errors are cut to this many characters in the report: a traceback is not a status.
MAX_REPORTED_ERROR = 300
# A stage's output (JSON text) is cut to this many characters where it is shown: enough to
# recognise it, one line in a terminal.
MAX_SHOWN_OUTPUT = 120


@dataclass(frozen=True)
class RunRow:
    """The columns of a `runs` row the report needs."""

    run_id: int
    tick: datetime
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    # `taskpipes retry`: who last asked for the run again, and when.
    retried_by: str | None = None
    retried_at: datetime | None = None

    @property
    def retried_note(self) -> str:
        """` (retried by WHO at TIME)` for a retried run, else nothing."""
        if self.retried_at is None:
            return ""
        return f" (retried by {self.retried_by} at {self.retried_at.isoformat(timespec='minutes')})"


@dataclass(frozen=True)
class StageRow:
    """One stage of a run as shown: its output is the stored JSON text, cut (shown_output)."""

    stage: str
    status: str
    attempts: int
    rows_written: int
    output: str | None


def shown_output(output: str | None) -> str | None:
    """A stage's output (JSON text) cut to MAX_SHOWN_OUTPUT characters, saying its size."""
    if output is None or len(output) <= MAX_SHOWN_OUTPUT:
        return output
    return f"{output[: MAX_SHOWN_OUTPUT - 1]}… ({len(output.encode())} bytes)"


@dataclass(frozen=True)
class PipelineStatus:
    pipeline: str
    queue: str
    # None for an on-demand pipeline: it has no schedule, so no freshness either.
    period: timedelta | None
    last_success: RunRow | None
    # Seconds from the last success's tick to now; None when it never succeeded.
    success_age_s: float | None
    fresh: bool | None
    last_failure: RunRow | None
    in_progress: tuple[RunRow, ...]
    depths: QueueDepth | None
    # Why depths are missing (in-process broker, RabbitMQ unreachable), else None.
    depths_note: str | None
    # `taskpipes pause`'s note (who, when, why) while the pipeline is paused, else None.
    paused: str | None = None
    # The newest run's stages, each with its output.
    newest_stages: tuple[StageRow, ...] = ()
    newest_run: RunRow | None = None


def pipeline_status(
    pipeline: str,
    queue: str,
    *,
    now: datetime,
    period: timedelta | None = None,
    last_success: RunRow | None = None,
    last_failure: RunRow | None = None,
    in_progress: Iterable[RunRow] = (),
    depths: QueueDepth | None = None,
    depths_note: str | None = None,
    paused: str | None = None,
    newest: tuple[RunRow | None, list[StageRow]] = (None, []),
) -> PipelineStatus:
    """The status of `pipeline` at `now`. Keyword-only past the names, and what a caller
    did not read is left at its default: no period (on demand), no runs, no depths."""
    age = None if last_success is None else (now - last_success.tick).total_seconds()
    return PipelineStatus(
        pipeline=pipeline,
        queue=queue,
        period=period,
        last_success=last_success,
        success_age_s=age,
        fresh=None
        if period is None
        else age is not None and age < FRESH_PERIODS * period.total_seconds(),
        last_failure=last_failure,
        in_progress=tuple(sorted(in_progress, key=lambda run: run.tick)),
        depths=depths,
        depths_note=depths_note,
        paused=paused,
        newest_run=newest[0],
        newest_stages=tuple(newest[1]),
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _cut(error: str | None) -> str | None:
    if error is None or len(error) <= MAX_REPORTED_ERROR:
        return error
    return error[: MAX_REPORTED_ERROR - 3] + "..."


def _run_json(run: RunRow | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "run_id": run.run_id,
        "tick": _iso(run.tick),
        "status": run.status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "error": _cut(run.error),
        "retried_by": run.retried_by,
        "retried_at": _iso(run.retried_at),
    }


def status_json(status: PipelineStatus) -> dict[str, Any]:
    success = _run_json(status.last_success)
    if success is not None:
        success["age_seconds"] = status.success_age_s
    return {
        "pipeline": status.pipeline,
        "queue": status.queue,
        "period_seconds": None if status.period is None else status.period.total_seconds(),
        "fresh": status.fresh,
        "paused": status.paused,
        "last_success": success,
        "last_failure": _run_json(status.last_failure),
        "in_progress": [_run_json(run) for run in status.in_progress],
        "queue_depths": None if status.depths is None else status.depths.by_state(),
        "queue_note": status.depths_note,
        "newest_run": _newest_json(status),
    }


def _newest_json(status: PipelineStatus) -> dict[str, Any] | None:
    run = _run_json(status.newest_run)
    if run is not None:
        run["stages"] = [stage_json(row) for row in status.newest_stages]
    return run


def stage_json(row: StageRow) -> dict[str, Any]:
    return {
        "stage": row.stage,
        "status": row.status,
        "attempts": row.attempts,
        "rows_written": row.rows_written,
        "output": shown_output(row.output),
    }


def report_json(statuses: list[PipelineStatus], now: datetime) -> dict[str, Any]:
    return {"now": now.isoformat(), "pipelines": [status_json(s) for s in statuses]}


def human_duration(seconds: float) -> str:
    """`2d 3h`, `1h 5m`, `4m 10s`, `12s`: the two largest units are enough to read."""
    whole = max(0, int(seconds))
    parts = [
        (whole // 86400, "d"),
        (whole % 86400 // 3600, "h"),
        (whole % 3600 // 60, "m"),
        (whole % 60, "s"),
    ]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"


def status_lines(status: PipelineStatus) -> list[str]:
    every = (
        "on demand"
        if status.period is None
        else f"every {human_duration(status.period.total_seconds())}"
    )
    lines = [f"{status.pipeline} ({every}, queue {status.queue})"]
    if status.paused is not None:
        lines.append(f"  PAUSED:       {status.paused} (`taskpipes resume {status.pipeline}`)")
    success, failure = status.last_success, status.last_failure
    freshness = {True: " (fresh)", False: " (stale)", None: ""}[status.fresh]
    if success is None or status.success_age_s is None:
        lines.append(f"  last success: never{freshness}")
    else:
        lines.append(
            f"  last success: tick {success.tick.isoformat()}, "
            f"{human_duration(status.success_age_s)} ago{freshness}"
        )
    if failure is not None:
        tick = failure.tick.isoformat()
        lines.append(
            f"  last failure: tick {tick} {failure.status}{failure.retried_note}: "
            f"{_cut(failure.error)}"
        )
    for run in status.in_progress:
        since = f" since {run.started_at.isoformat()}" if run.started_at else ""
        lines.append(
            f"  in progress:  run {run.run_id} tick {run.tick.isoformat()} {run.status}{since}"
            f"{run.retried_note}"
        )
    lines.extend(newest_lines(status))
    if status.depths is None:
        lines.append(f"  queue:        unknown ({status.depths_note})")
    else:
        depths = ", ".join(f"{n} {state}" for state, n in status.depths.by_state().items())
        lines.append(f"  queue:        {depths}")
    return lines


def newest_lines(status: PipelineStatus) -> list[str]:
    """The newest run and each of its stages: status, attempts, rows, output (cut)."""
    run = status.newest_run
    if run is None:
        return []
    lines = [
        f"  newest run:   run {run.run_id} tick {run.tick.isoformat()} {run.status}"
        f"{run.retried_note}"
    ]
    for row in status.newest_stages:
        tried = "" if row.attempts <= 1 else f", {row.attempts} attempts"
        output = "" if row.output is None else f", output {shown_output(row.output)}"
        lines.append(f"    {row.stage}: {row.status}, {row.rows_written} rows{tried}{output}")
    return lines


def report_text(statuses: list[PipelineStatus]) -> str:
    return "\n".join(line for status in statuses for line in status_lines(status))
