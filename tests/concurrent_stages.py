"""Test-only pipelines whose stages write one row each into a table with no unique key, so
a stage that runs twice leaves two rows. Declared by tests.concurrent_pipelines (the worker
process) or by the test itself (SQLite, in-process workers).

Stage `b` of each pipeline is the one sent COPIES times at once: it holds its transaction
open after its write until the other copies are inside it or waiting on a lock
(tests.copies.Overlap), so the copies overlap on PostgreSQL without any sleeping.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from taskpipes import Context, Pipeline, Retries, Stage
from tests.copies import Overlap

# How many copies of stage b's message each scenario delivers at once.
COPIES = 3
# The one queue of these pipelines, declared by the test before it publishes.
QUEUE = "concurrent"
# One failure fails the run: a copy that never saw the others (OverlapNotSeen) shows at once.
RETRIES = Retries(max=0, min_backoff_ms=100, max_backoff_ms=100, time_limit_ms=120_000)

# Every stage's writes: one row per time its code committed.
WRITES = Table(
    "concurrent_writes",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, nullable=False),
    Column("stage", String(40), nullable=False),
    Column("note", String(80)),
)

OVERLAP = Overlap()


def write(ctx: Context, note: str | None = None) -> str:
    """Write one row; hand on which stage wrote it (the next stage's `note`)."""
    ctx.session.execute(insert(WRITES).values(run_id=ctx.run_id, stage=ctx.stage, note=note))
    return f"{ctx.stage} of run {ctx.run_id}"


def write_and_hold(ctx: Context) -> str:
    """Write (noting its input), then hold the transaction until the other copies overlap
    this one."""
    output = write(ctx, ctx.input)
    OVERLAP.hold(ctx.session, (ctx.run_id, ctx.stage), COPIES)
    return output


def call_outside(ctx: Context) -> str:
    """The outside call: it may repeat, so it only answers (the answer is written by c)."""
    return f"answer for run {ctx.run_id}"


def write_noted(ctx: Context) -> str:
    """Write one row noting the stage's input (what the stage before handed on)."""
    return write(ctx, ctx.input)


def pipeline(name: str, b: Stage) -> Pipeline:
    return Pipeline(
        name, stages=(Stage("a", write), b, Stage("c", write_noted)), queue=QUEUE, retries=RETRIES
    )


PLAIN = pipeline("concurrent_plain", Stage("b", write_and_hold))
CALLING = pipeline("concurrent_calling", Stage("b", call_outside, outside=True))
LAST = Pipeline(
    "concurrent_last",
    stages=(Stage("a", write), Stage("b", write_and_hold)),
    queue=QUEUE,
    retries=RETRIES,
)
CANCELLED = pipeline("concurrent_cancelled", Stage("b", write_and_hold))
PIPELINES = (PLAIN, CALLING, LAST, CANCELLED)
