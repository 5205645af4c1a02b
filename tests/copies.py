"""Copies of one stage message made to overlap for real, on PostgreSQL, without sleeping.

A stage's code calls `Overlap.hold(...)` right after its writes, inside its transaction.
The copy that gets there holds the transaction open until every other copy of its group is
either inside the stage's code too (an in-process count: the copies run as threads of one
process) or waiting on a lock in PostgreSQL (`pg_stat_activity.wait_event_type = 'Lock'`
for another backend of the test database). Either way the copies overlap:

- with the race (a plain SELECT asks "already done?"), every copy gets into the stage's
  code before any commits, and each one writes: the duplicates are there to count;
- with the stage record taken under a row lock first, the other copies wait on that lock
  while the first holds, then find the stage done and skip.

The hold gives up after HOLD_TIMEOUT_S with OverlapNotSeen, so a copy that neither
enters nor waits fails the test instead of hanging it. On SQLite nothing is held:
`BEGIN IMMEDIATE` admits one writer at a time, so no copy can be seen inside or waiting.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Hashable

from sqlalchemy import text
from sqlalchemy.orm import Session

# How long the first copy waits for the others before the test fails.
HOLD_TIMEOUT_S = 20.0
# How often the holding copy looks again.
POLL_S = 0.01

# Backends of this database, other than the asking one, that wait for a lock. The stats
# snapshot is cleared first: inside a transaction pg_stat_activity is otherwise read once.
CLEAR_SNAPSHOT = text("SELECT pg_stat_clear_snapshot()")
LOCK_WAITERS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND wait_event_type = 'Lock'"
)


class OverlapNotSeen(AssertionError):
    """The other copies never showed up inside the stage nor waiting on a lock."""


class Overlap:
    """Counts the copies of each group inside a stage's code, and holds them there."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entered: Counter[Hashable] = Counter()

    def hold(self, session: Session, group: Hashable, copies: int) -> None:
        """Hold this copy's transaction until the other `copies - 1` of `group` are inside
        the stage's code or waiting on a lock."""
        if copies < 2 or session.get_bind().dialect.name != "postgresql":
            return
        with self._lock:
            self._entered[group] += 1
        deadline = time.monotonic() + HOLD_TIMEOUT_S
        while self._others(session, group) < copies - 1:
            if time.monotonic() > deadline:
                raise OverlapNotSeen(
                    f"{group}: after {HOLD_TIMEOUT_S:g} s only {self._others(session, group)}"
                    f" of the other {copies - 1} copies were inside the stage or waiting"
                )
            time.sleep(POLL_S)

    def _others(self, session: Session, group: Hashable) -> int:
        with self._lock:
            inside = self._entered[group] - 1
        session.execute(CLEAR_SNAPSHOT)
        return inside + (session.scalar(LOCK_WAITERS) or 0)
