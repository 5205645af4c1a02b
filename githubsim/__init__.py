"""A GitHub REST API simulator on loopback, driven by a bundled top-100 stars snapshot.

`Simulator` runs it in-process on a background thread (tests, benchmarks); `serve` runs it
in the foreground (the `taskpipes github-sim` command, `make run`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from githubsim.simulator import Simulator

__all__ = ["Simulator", "serve"]


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    search_limit: int | None = None,
    core_limit: int | None = None,
    hostile: bool = False,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until `stop` is set (or KeyboardInterrupt); `on_ready(url)` once listening."""
    stop = stop or threading.Event()
    simulator = Simulator(
        host, port, search_limit=search_limit, core_limit=core_limit, hostile=hostile
    )
    with simulator as sim:
        if on_ready is not None:
            on_ready(sim.url)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
