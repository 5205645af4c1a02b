"""Test-only pipelines whose stages write one row each into a table with no unique key, so
a stage that runs twice leaves two rows. Declared by tests.concurrent_pipelines (the worker
process) or by the test itself (SQLite, in-process workers).

Stage `b` of each pipeline is the one sent COPIES times at once: it holds its transaction
open after its write until the other copies are inside it or waiting on a lock
(tests.copies.Overlap), so the copies overlap on PostgreSQL without any sleeping.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from taskpipes import Call, Context, Pipeline, Retries, Stage
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


def write(ctx: Context, note: str | None = None) -> int:
    ctx.session.execute(insert(WRITES).values(run_id=ctx.run_id, stage=ctx.stage, note=note))
    return 1


def write_and_hold(ctx: Context) -> int:
    """Write, then hold the transaction until the other copies overlap this one."""
    write(ctx, ctx.answer)
    OVERLAP.hold(ctx.session, (ctx.run_id, ctx.stage), COPIES)
    return 1


def ask(ctx: Context) -> int:
    return ctx.run_id


def call_outside(call: Call) -> str:
    """The outside call: it may repeat, so it only answers (the answer is written by run)."""
    return f"answer for run {call.asked}"


def pipeline(name: str, b: Stage) -> Pipeline:
    return Pipeline(
        name, stages=(Stage("a", write), b, Stage("c", write)), queue=QUEUE, retries=RETRIES
    )


PLAIN = pipeline("concurrent_plain", Stage("b", write_and_hold))
CALLING = pipeline("concurrent_calling", Stage("b", write_and_hold, call=call_outside, read=ask))
LAST = Pipeline(
    "concurrent_last",
    stages=(Stage("a", write), Stage("b", write_and_hold)),
    queue=QUEUE,
    retries=RETRIES,
)
CANCELLED = pipeline("concurrent_cancelled", Stage("b", write_and_hold))
PIPELINES = (PLAIN, CALLING, LAST, CANCELLED)
