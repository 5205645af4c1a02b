"""A test-only actor that kills its own worker process, as an OOM kill would.

Loaded next to the real actors with `dramatiq actors tests.crash_actors`.
"""

from __future__ import annotations

import os
import signal

import dramatiq

import actors  # noqa: F401  (the broker and its middleware come first)

# The queue the crashing message travels on.
QUEUE = "default"


@dramatiq.actor(
    queue_name=QUEUE, max_retries=3, min_backoff=100, max_backoff=1000, time_limit=60_000
)
def kill_own_worker(run_id: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)
