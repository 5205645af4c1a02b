"""`taskpipes retry`: reopen finished, unsuccessful runs and send each the message of its
first unfinished stage, in the transaction that reopens them.

The messages are published before the transaction commits (as backfill's are,
taskpipes.runtime.ticks.enqueue_ticks): a failed send rolls the reopening back, so no run
is left running for a message that never left. A worker that gets a message first waits
on the run's row lock. A bulk retry publishes its messages in batches of
taskpipes.rabbitmq.publish.BATCH, one broker round trip each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dramatiq
from sqlalchemy.orm import Session

from taskpipes.declare.pipeline import Pipeline
from taskpipes.rabbitmq import publish
from taskpipes.runtime.current import current_broker
from taskpipes.store.database import begin
from taskpipes.store.retries import Asked, Reopened, RetryRefused, reopen_run
from taskpipes.store.runs import RUN_OPTION


def stage_message(reopened: Reopened) -> dramatiq.Message:
    """The message a stage hands off to its next (taskpipes.runtime.stages.hand_off)."""
    pipeline, run_id = reopened.pipeline, reopened.run.id
    actor = current_broker().get_actor(pipeline.entry_actor(reopened.stage))
    options: dict[str, Any] = {RUN_OPTION: run_id}
    return actor.message_with_options(args=(run_id,), **options)


def retry_run(
    lookup: Callable[[str], Pipeline],
    run_id: int,
    asked: Asked,
) -> Reopened:
    """Reopen one run and send its stage; RetryRefused (nothing changed) when it may not."""
    with begin() as session:
        reopened = reopen_run(session, lookup, run_id, asked)
        session.flush()
        if not reopened.waits:
            publish.enqueue_all(current_broker(), [stage_message(reopened)])
    return reopened


def said(reopened: Reopened) -> str:
    """What became of a retried run, for the command's line."""
    turn = " (waits its turn: overlap policy queue)" if reopened.waits else ""
    return f"retried from stage {reopened.stage.name}{turn}"


def retry_each(
    session: Session,
    lookup: Callable[[str], Pipeline],
    run_ids: Sequence[int],
    asked: Asked,
) -> tuple[list[str], list[int]]:
    """Reopen each confirmed run in the caller's transaction and send their stages in
    batches before it commits; a run that cannot be retried now (it started again since
    the preview) is said, not touched. One line per run, and the ids retried."""
    lines: list[str] = []
    reopened: list[Reopened] = []
    for run_id in run_ids:
        try:
            one = reopen_run(session, lookup, run_id, asked)
        except RetryRefused as exc:
            lines.append(f"run {run_id}: not retried: {exc}")
            continue
        reopened.append(one)
        lines.append(f"{one.run.pipeline} run {run_id}: {said(one)}")
    session.flush()
    publish.enqueue_all(current_broker(), [stage_message(o) for o in reopened if not o.waits])
    return lines, [one.run.id for one in reopened]
