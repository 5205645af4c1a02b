"""What a stage message costs the database: one transaction per stage (its writes and its
record commit together) and, on PostgreSQL, two round trips.

Transactions are counted by the database's own account: on SQLite every `BEGIN` the
connection runs (sqlite3's trace callback), on PostgreSQL the server's ReadyForQuery
turning idle (tests/wire.py, a proxy that also counts round trips). Each is counted for
the actor whose message the connection's thread was working on. The crash guard writes
only for a redelivered message, so over clean runs the middleware costs nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from dramatiq.middleware import CurrentMessage
from sqlalchemy import Engine, event, text

from taskpipes import Context, Pipeline, Stage, registry
from taskpipes.runtime.current import current_broker
from taskpipes.runtime.runner import ensure_workers, run_tick
from taskpipes.runtime.ticks import enqueue_tick
from taskpipes.store.database import get_engine
from tests.wire import WireCounter, local_port

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)


def current_actor() -> str | None:
    message = CurrentMessage.get_current_message()
    return None if message is None else message.actor_name


@contextmanager
def sqlite_transactions_per_actor(engine: Engine) -> Iterator[Counter[str]]:
    """BEGINs per actor, on every connection the engine opens from now on."""
    counts: Counter[str] = Counter()
    engine.dispose()  # connections opened before would not be traced

    def traced(statement: str) -> None:
        actor = current_actor()
        if actor is not None and statement.lstrip().upper().startswith("BEGIN"):
            counts[actor] += 1

    def on_connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.set_trace_callback(traced)

    event.listen(engine, "connect", on_connect)
    try:
        yield counts
    finally:
        event.remove(engine, "connect", on_connect)
        engine.dispose()


@contextmanager
def wire_per_actor(engine: Engine, wire: WireCounter) -> Iterator[Counter[tuple[str, str]]]:
    """(actor, "round_trips" | "transactions") -> count, over each checkout of a pooled
    connection by a thread working on that actor's message."""
    counts: Counter[tuple[str, str]] = Counter()

    def on_checkout(dbapi_connection: Any, record: Any, _proxy: object) -> None:
        actor = current_actor()
        if actor is not None:
            talk = wire.of(local_port(dbapi_connection))
            record.info["wire"] = (actor, talk, talk.round_trips, talk.transactions)

    def on_checkin(_dbapi_connection: object, record: Any) -> None:
        if "wire" in record.info:
            actor, talk, round_trips, transactions = record.info.pop("wire")
            counts[actor, "round_trips"] += talk.round_trips - round_trips
            counts[actor, "transactions"] += talk.transactions - transactions

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)
    try:
        yield counts
    finally:
        event.remove(engine, "checkout", on_checkout)
        event.remove(engine, "checkin", on_checkin)


def test_each_stage_is_one_transaction_and_a_call_adds_one(app_env, sqlite_url, simulator) -> None:
    # Given a database and the simulator at T0
    app_env(sqlite_url)
    simulator.set_clock(T0)

    # When github_top then rollup run once each
    with sqlite_transactions_per_actor(get_engine()) as counts:
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


def nothing(ctx: Context) -> int:
    return 0


def counted(ctx: Context) -> int:
    """A stage that writes through its session: its own statements are its own cost."""
    ctx.session.execute(text("INSERT INTO wire_marks (at) VALUES (:at)"), {"at": "x"})
    return 1


def test_a_stage_message_costs_two_round_trips_on_postgresql(
    app_env,
    postgres_url,
    declared,
) -> None:
    # Given a four-stage pipeline that may overlap (its tick claims at once), on PostgreSQL
    # through a proxy that counts what crosses the wire
    with WireCounter(5432) as wire:
        app_env(wire.url(postgres_url))
        with get_engine().begin() as connection:
            connection.exec_driver_sql("CREATE TABLE wire_marks (at text)")
        pipeline = Pipeline(
            "wire_four",
            stages=(
                Stage("step1", nothing),
                Stage("step2", nothing),
                Stage("step3", counted),
                Stage("step4", nothing),
            ),
        )
        declared(pipeline)
        ensure_workers(current_broker())

        # When one tick runs through its four messages
        with wire_per_actor(get_engine(), wire) as counts:
            enqueue_tick(pipeline, T0)
            current_broker().join(pipeline.queue_name, timeout=30_000)

    # Then the tick's message claims the run (committed) and does step1 in two round trips,
    # every other stage message takes two, and a stage that uses its session adds only
    # its own statement, in the same transaction
    assert dict(counts) == {
        ("wire_four_tick", "round_trips"): 2,
        ("wire_four_tick", "transactions"): 2,
        ("wire_four_step2", "round_trips"): 2,
        ("wire_four_step2", "transactions"): 1,
        ("wire_four_step3", "round_trips"): 3,
        ("wire_four_step3", "transactions"): 1,
        ("wire_four_step4", "round_trips"): 2,
        ("wire_four_step4", "transactions"): 1,
    }
