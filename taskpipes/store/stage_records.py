"""The records a stage message reads and writes, as fixed statements on a Transaction.

Once means once: a stage takes its record under the record's row lock *before* its code
runs, and ends it in the same transaction as its writes. A second copy of the message
running at the same time waits on that lock, then finds the stage done and does nothing.
(A plain "done?" SELECT first would let both copies through on PostgreSQL.)

```
take_stage   INSERT stage record ... ON CONFLICT DO UPDATE WHERE not done   (locks it)
             + the run's tick and status                 -- one round trip, with BEGIN
  ...the stage's own work, in the same transaction...
             + the stage's input: the previous stage's output (the first's: the run's options)
end_stage    UPDATE stage record done, with its output (+ close the run after the last stage)
                                                         -- one round trip, with COMMIT
```
A tick message whose first stage works in it claims its run, commits the claim and takes
the stage's record in the same round trip (`claim_and_take`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskpipes.store.runs import CANCELLED, FINISHED, RUNNING, SUCCEEDED
from taskpipes.store.transaction import COMMIT, Row, Sql, Transaction

_FINISHED = ", ".join(f"'{status}'" for status in FINISHED)

# Takes the stage's record for this attempt unless it is done, or its run is cancelled.
# The conflicting row is locked even when the WHERE leaves it as it is: a concurrent copy
# waits here until this transaction ends, then re-reads the row.
_TAKE = """
INSERT INTO stage_runs (run_id, stage, status, attempts, started_at, rows_written)
SELECT id, :stage, 'running', 1, :now, 0 FROM {source} WHERE {condition}
ON CONFLICT (run_id, stage) DO UPDATE SET status = 'running'{count}
WHERE stage_runs.status <> 'succeeded'
RETURNING id
"""
_COUNT = ", attempts = stage_runs.attempts + 1, started_at = excluded.started_at"
_OF_RUN = {"source": "runs", "condition": f"id = :run_id AND status <> '{CANCELLED}'"}
TAKE_STAGE = Sql(_TAKE.format(**_OF_RUN, count=_COUNT))
# The calling stage's second transaction locks the record again and counts nothing (its
# first transaction counted the attempt).
RETAKE_STAGE = Sql(_TAKE.format(**_OF_RUN, count=""))
# The run's state and the stage's input. `:previous` is the previous stage's name, NULL
# for the first stage (whose input is the run's options).
_INPUT = "(SELECT output FROM stage_runs WHERE run_id = :run_id AND stage = :previous)"
RUN_STATE = Sql(f"SELECT tick, status, options, {_INPUT} FROM runs WHERE id = :run_id")
# On PostgreSQL the take and the run's state are one statement (one parse, plan and
# execution fewer per message); the run's state is as of the statement's start, which is
# all `_take` needs (a close it then asks for re-checks the row).
_WITH_STATE = (
    "WITH taken AS ({take}) SELECT tick, status, options, "
    + _INPUT
    + ", (SELECT id FROM taken) FROM runs WHERE id = :run_id"
)
TAKE_STAGE_WITH_STATE = Sql(_WITH_STATE.format(take=TAKE_STAGE.sqlite))
RETAKE_STAGE_WITH_STATE = Sql(_WITH_STATE.format(take=RETAKE_STAGE.sqlite))
END_STAGE = Sql(f"""
UPDATE stage_runs SET status = '{SUCCEEDED}', finished_at = :now, duration_seconds = :seconds,
rows_written = :rows, output = :output, error = NULL WHERE id = :stage_id
""")
CLOSE_RUN = Sql(f"""
UPDATE runs SET status = '{SUCCEEDED}', finished_at = :now
WHERE id = :run_id AND status NOT IN ({_FINISHED})
RETURNING id, pipeline, tick, status
""")
END_STAGE_AND_CLOSE_RUN = Sql(f"WITH ended AS ({END_STAGE.sqlite}) {CLOSE_RUN.sqlite}")
# The claim's own commit need not wait for the disk: whatever follows it commits
# synchronously (the stage, or its failure's record), which flushes the write-ahead log up
# to and past the claim; a claim lost with nothing after it is made again by the tick's
# redelivery.
CLAIM_COMMITS_LATER = Sql("SET LOCAL synchronous_commit TO OFF")
# A tick's claim when nothing stands in its way: a new run, or this very message's own
# run again (an explicit request's queued run, or a redelivery). Anything else (another
# message's run, a finished one, a pause, an overlap policy) goes the long way
# (runs.claim and controls.admit).
CLAIM_RUN = Sql(f"""
INSERT INTO runs (pipeline, tick, status, attempts, message_id, enqueued_at, started_at, options)
SELECT CAST(:pipeline AS VARCHAR), :tick, '{RUNNING}', 1, :message_id, :now, :now, :options
WHERE NOT EXISTS (
    SELECT 1 FROM pipeline_controls
    WHERE pipeline = CAST(:pipeline AS VARCHAR) AND paused_at IS NOT NULL AND resumed_at IS NULL
)
ON CONFLICT (pipeline, tick) DO UPDATE
SET status = '{RUNNING}', attempts = runs.attempts + 1, started_at = excluded.started_at,
    finished_at = NULL, error = NULL
WHERE runs.message_id = excluded.message_id AND runs.status IN ('queued', '{RUNNING}')
RETURNING id
""")
# PostgreSQL types a parameter in a SELECT list as text, which no json column takes.
CLAIM_RUN.postgresql = CLAIM_RUN.postgresql.replace("%(options)s", "CAST(%(options)s AS JSON)")
# The stage's take right after the claim: the run is found by its tick and message, as the
# claim's id cannot be used inside the same pipeline.
TAKE_CLAIMED_STAGE = Sql(
    _TAKE.format(
        source="runs",
        condition=f"pipeline = :pipeline AND tick = :tick AND message_id = :message_id "
        f"AND status = '{RUNNING}'",
        count=_COUNT,
    )
)


@dataclass(frozen=True)
class Taken:
    """What taking a stage found: the run's tick and status, the stage record's id when
    this delivery is to do the stage (None: done already, or the run is cancelled), and
    the stage's input."""

    tick: datetime
    run_status: str
    stage_id: int | None
    input: Any = None


@dataclass(frozen=True)
class Closed:
    """A run this transaction closed."""

    id: int
    pipeline: str
    tick: datetime
    status: str


def take_stage(
    tx: Transaction,
    run_id: int,
    stage: str,
    now: datetime,
    count: bool = True,
    previous: str | None = None,
) -> Taken | None:
    """Lock the stage's record for this delivery, and read its input: the output of the
    stage `previous`, or the run's options when there is none (the first stage). None
    when the run does not exist."""
    params = {"run_id": run_id, "stage": stage, "now": tx.time(now), "previous": previous}
    if tx.postgres:
        statement = TAKE_STAGE_WITH_STATE if count else RETAKE_STAGE_WITH_STATE
        found = tx.fetch_all([statement], params)[0]
        if not found:
            return None
        tick, status, options, output, stage_id = found[0]
    else:
        taken, state = tx.fetch_all([TAKE_STAGE if count else RETAKE_STAGE, RUN_STATE], params)
        if not state:
            return None
        tick, status, options, output = state[0]
        stage_id = taken[0][0] if taken else None
    stored = output if previous is not None else options
    if previous is None and stored is None:
        stored = {}  # a tick with no options
    return Taken(tx.moment(tick), status, stage_id, tx.loaded(stored))


def claim_and_take(
    tx: Transaction,
    pipeline: str,
    tick: datetime,
    message_id: str,
    stage: str,
    now: datetime,
    options: str | None = None,
) -> tuple[int | None, int | None]:
    """Claim the tick (CLAIM_RUN) and commit the claim, so the run shows `running` and a
    cancel need not wait for the stage; then, in the stage's transaction, take the first
    stage's record. One round trip on PostgreSQL. `options` (JSON) are the tick's. Returns (the run id, or None when the long
    way must decide; the stage record's id, or None when it is not this delivery's)."""
    params = {
        "pipeline": pipeline,
        "tick": tx.time(tick),
        "message_id": message_id,
        "stage": stage,
        "now": tx.time(now),
        "options": options,
    }
    statements = [CLAIM_RUN, COMMIT, TAKE_CLAIMED_STAGE]
    if tx.postgres:
        statements.insert(0, CLAIM_COMMITS_LATER)
    *_, claimed, _, taken = tx.fetch_all(statements, params)
    if not claimed:
        return None, None
    return claimed[0][0], taken[0][0] if taken else None


def end_stage(
    tx: Transaction,
    run_id: int,
    stage_id: int,
    rows: int,
    seconds: float,
    now: datetime,
    close: bool,
    commit: bool = True,
    output: str | None = None,
) -> Closed | None:
    """Record the stage done with its output (JSON text, or None) and, after the last
    stage, close the run succeeded; commits with it unless asked not to (a `queue`
    pipeline starts its next run first)."""
    params = {
        "run_id": run_id,
        "stage_id": stage_id,
        "rows": rows,
        "output": output,
        "seconds": seconds,
        "now": tx.time(now),
    }
    if not close:
        statements = [END_STAGE]
    else:
        statements = [END_STAGE_AND_CLOSE_RUN] if tx.postgres else [END_STAGE, CLOSE_RUN]
    results = tx.commit_all(statements, params) if commit else tx.fetch_all(statements, params)
    return _closed(tx, results[-1]) if close else None


def close_run(tx: Transaction, run_id: int, now: datetime) -> Closed | None:
    """Close a run whose last stage an earlier delivery recorded (a resumed run's)."""
    rows = tx.fetch_all([CLOSE_RUN], {"run_id": run_id, "now": tx.time(now)})[0]
    return _closed(tx, rows)


def _closed(tx: Transaction, rows: list[Row]) -> Closed | None:
    if not rows:
        return None
    run_id, pipeline, tick, status = rows[0]
    return Closed(run_id, pipeline, tx.moment(tick), status)
