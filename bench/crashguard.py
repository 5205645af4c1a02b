"""CrashGuard's database writes per message, against one bare transaction.

CrashGuard leaves a first delivery alone (no write) and counts a redelivered one (a
message RabbitMQ marks `redelivered`: its worker died) in PostgreSQL before it is
processed, forgetting it afterwards (two short transactions). This measures both paths per
message, to decide whether quorum queues' own delivery limit should replace it
(docs/how-to/quorum-queues.md, "CrashGuard stays"). Baseline in the same run: one
transaction updating one row, the least a stage's own bookkeeping costs. The goal is on
the redelivered path, the only one that writes.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dramatiq  # noqa: E402
from dramatiq.broker import MessageProxy  # noqa: E402
from sqlalchemy import update  # noqa: E402

from bench.pg import scratch_database  # noqa: E402

MESSAGES = 400
ROUNDS = 5


def delivered(redelivered: bool) -> list[MessageProxy]:
    """Messages as dramatiq's RabbitMQ consumer hands them over, marked redelivered or not."""
    messages = []
    for _ in range(MESSAGES):
        message = MessageProxy(dramatiq.Message("q", "bench_actor", (), {}, {}))
        message.redelivered = redelivered  # type: ignore[attr-defined]
        messages.append(message)
    return messages


def guarded(guard, messages: list[MessageProxy]) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for message in messages:
        guard.before_process_message(None, message)
        guard.after_process_message(None, message)
    return (time.perf_counter() - started) / len(messages)


def bare(count: int) -> float:
    from taskpipes.store.database import begin
    from taskpipes.store.tables import MessageDelivery

    started = time.perf_counter()
    for _ in range(count):
        with begin() as session:
            session.execute(
                update(MessageDelivery)
                .where(MessageDelivery.message_id == "baseline")
                .values(deliveries=MessageDelivery.deliveries + 1)
            )
    return (time.perf_counter() - started) / count


def main() -> None:
    with scratch_database("bench_crashguard") as url:
        os.environ["DATABASE_URL"] = url
        from db import schema as migrate
        from taskpipes.runtime.middleware import CrashGuard
        from taskpipes.store.database import begin
        from taskpipes.store.tables import MessageDelivery

        migrate.upgrade(url)
        with begin() as session:
            session.add(
                MessageDelivery(
                    message_id="baseline",
                    retries=0,
                    actor="bench",
                    deliveries=0,
                    first_delivered_at=datetime.now(UTC),
                )
            )
        guard = CrashGuard(max_crashes=3)
        first_s, again_s, bare_s = [], [], []
        for _ in range(ROUNDS):  # interleaved, so background load hits all three alike
            first_s.append(guarded(guard, delivered(redelivered=False)))
            again_s.append(guarded(guard, delivered(redelivered=True)))
            bare_s.append(bare(MESSAGES))
    first, again = statistics.median(first_s), statistics.median(again_s)
    baseline = statistics.median(bare_s)
    rounds = f"median of {ROUNDS} x {MESSAGES}"
    print(f"CrashGuard per first delivery: {first * 1000:.3f} ms ({rounds})")
    print(f"CrashGuard per redelivery:     {again * 1000:.2f} ms ({rounds})")
    print(f"one bare transaction:          {baseline * 1000:.2f} ms")
    print(f"result: crashguard_vs_one_transaction {again / baseline:.2f} (goal <= 3)")


if __name__ == "__main__":
    main()
