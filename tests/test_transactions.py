"""One transaction per stage: a stage's writes and its record commit together.

Counted with a SQLAlchemy `begin` listener, per actor, over clean runs on a SQLite file.
The crash guard writes only for a redelivered message, so over clean runs the middleware
opens no transaction at all.
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from dramatiq.middleware import CurrentMessage
from sqlalchemy import Engine, event

from taskpipes import registry
from taskpipes.runner import run_tick

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)


@contextmanager
def transactions_per_actor() -> Iterator[Counter[str]]:
    """Transactions per actor; the middleware's are counted under "middleware"."""
    counts: Counter[str] = Counter()

    def on_begin(connection: object) -> None:
        message = CurrentMessage.get_current_message()
        frames = traceback.extract_stack()
        if any(f.filename.endswith("middleware.py") for f in frames):
            counts["middleware"] += 1
        elif message is not None:
            counts[message.actor_name] += 1

    event.listen(Engine, "begin", on_begin)
    try:
        yield counts
    finally:
        event.remove(Engine, "begin", on_begin)


def test_each_stage_is_one_transaction_and_a_call_adds_one(app_env, sqlite_url, simulator) -> None:
    # Given a database and the simulator at T0
    app_env(sqlite_url)
    simulator.set_clock(T0)

    # When github_top then rollup run once each
    with transactions_per_actor() as counts:
        assert run_tick(registry.get("github_top"), T0, 60).status == "succeeded"
        assert run_tick(registry.get("rollup"), T0, 60).status == "succeeded"

    # Then the tick claims in one, fetch (which calls GitHub) takes two, every other stage
    # one (rollup's first works in the tick's own message), and the crash guard writes
    # nothing for a first delivery
    assert dict(counts) == {
        "github_top_tick": 1,
        "github_top_fetch": 2,
        "github_top_normalize": 1,
        "github_top_store": 1,
        "github_top_aggregate": 1,
        "rollup_tick": 2,
        "rollup_trending": 1,
        "rollup_pages": 1,
    }
