"""The maintenance batch job: prune what we keep only for a while, refresh planner stats."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from db.models import RawResponse
from pipelines.config import RAW_RETENTION_DAYS
from taskpipes import Context, Pipeline, Retries, Schedule, Stage
from taskpipes.store.database import affected_rows
from taskpipes.store.runs import FINISHED
from taskpipes.store.tables import MessageDelivery, Run

# Run history is kept this long.
RUN_RETENTION = timedelta(days=90)
# A delivery counter this old belongs to a message that is long gone.
DELIVERY_RETENTION = timedelta(days=1)
# The tables that grow without bound, for ANALYZE.
BIG_TABLES = ("snapshots", "raw_responses", "runs", "stage_runs")


def prune(session: Session, now: datetime, raw_retention: timedelta) -> dict[str, int]:
    """Delete raw answers, finished runs and delivery counters past their retention."""
    removed_raw = affected_rows(
        session.execute(delete(RawResponse).where(RawResponse.fetched_at < now - raw_retention))
    )
    removed_runs = affected_rows(
        session.execute(
            delete(Run).where(
                Run.tick < now - RUN_RETENTION,
                Run.status.in_(FINISHED),
            )
        )
    )
    removed_deliveries = affected_rows(
        session.execute(
            delete(MessageDelivery).where(
                MessageDelivery.first_delivered_at < now - DELIVERY_RETENTION
            )
        )
    )
    return {
        "raw_responses": removed_raw,
        "runs": removed_runs,
        "message_deliveries": removed_deliveries,
    }


def analyze(session: Session) -> list[str]:
    """Refresh PostgreSQL's planner statistics on the big tables; SQLite needs none."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    for table in BIG_TABLES:
        session.execute(text(f"ANALYZE {table}"))
    return list(BIG_TABLES)


def prune_and_analyze(ctx: Context) -> int:
    """What was removed and analyzed goes into the run record, in the same transaction."""
    retention = timedelta(days=RAW_RETENTION_DAYS.get())
    removed = prune(ctx.session, ctx.now, retention)
    analyzed = analyze(ctx.session)
    ctx.session.get_one(Run, ctx.run_id).details = {"removed": removed, "analyzed": analyzed}
    return sum(removed.values())


# Daily at 03:00 UTC, when nobody reads dashboards; a missed day runs once, not N times.
# Overlap "skip": a prune still running when the next day comes is the one that matters.
maintenance = Pipeline(
    "maintenance",
    overlap="skip",
    schedule=Schedule("0 3 * * *", catchup="latest"),
    stages=(Stage("prune", prune_and_analyze),),
    retries=Retries(max=3, min_backoff_ms=10_000, max_backoff_ms=300_000),
)
