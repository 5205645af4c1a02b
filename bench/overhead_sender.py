"""What bench/overhead.py and every system's processes share, stdlib only so that each
system's own Python (the project's venv, bench/.celery-venv, bench/.dbos-venv) can import it.

A system's module run as a script is its sender: it reads lines of run keys on stdin,
starts one run per key, and answers `sent` once every start is durable (confirmed by the
broker, or committed)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime

# The kit's runs are keyed by their tick, a minute: run key K is minute K after this one.
KIT_EPOCH_MINUTE = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp()) // 60


def kit_tick(key: int) -> datetime:
    return datetime.fromtimestamp((KIT_EPOCH_MINUTE + key) * 60, UTC)


def serve(send: Callable[[list[int]], object]) -> None:
    for line in sys.stdin:
        send([int(key) for key in line.split()])
        print("sent", flush=True)
