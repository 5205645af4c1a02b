"""CrashGuard's database writes per message, against one bare transaction.

CrashGuard counts each delivery of a message in PostgreSQL before it is processed and
forgets it afterwards (two short transactions). This measures what that costs per message,
to decide whether quorum queues' own delivery limit should replace it (docs/how-to/quorum-queues.md,
"CrashGuard stays"). Baseline in the same run: one transaction updating one row, the least a stage's
own bookkeeping costs.
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


def guarded(guard, messages: list[MessageProxy]) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for message in messages:
        guard.before_process_message(None, message)
        guard.after_process_message(None, message)
    return (time.perf_counter() - started) / len(messages)


def bare(count: int) -> float:
    from db.session import begin

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
        from db.session import begin

        from db import schema as migrate
        from taskpipes.runtime.middleware import CrashGuard
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
        guard_s, bare_s = [], []
        for _ in range(ROUNDS):  # interleaved, so background load hits both alike
            messages = [
                MessageProxy(dramatiq.Message("q", "bench_actor", (), {}, {}))
                for _ in range(MESSAGES)
            ]
            guard_s.append(guarded(guard, messages))
            bare_s.append(bare(MESSAGES))
    per_message, baseline = statistics.median(guard_s), statistics.median(bare_s)
    print(f"CrashGuard per message: {per_message * 1000:.2f} ms (median of {ROUNDS} x {MESSAGES})")
    print(f"one bare transaction:   {baseline * 1000:.2f} ms")
    print(f"result: crashguard_vs_one_transaction {per_message / baseline:.2f} (goal <= 3)")


if __name__ == "__main__":
    main()
