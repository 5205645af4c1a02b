"""`taskpipes github-sim`: run the simulator in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from githubsim import serve

# Port used by `make run` and the docs when none is given.
DEFAULT_PORT = 8765
HOSTILE_HELP = "add a repository whose name, description and language are markup"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="taskpipes github-sim", description="Simulated GitHub REST API on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--search-limit", type=int, default=None, help="search requests/min")
    parser.add_argument("--core-limit", type=int, default=None, help="core requests/hour")
    parser.add_argument("--hostile", action="store_true", help=HOSTILE_HELP)
    return parser.parse_args(argv)


def announce(url: str) -> None:
    print(f"github-sim listening on {url}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    serve(
        args.host,
        args.port,
        search_limit=args.search_limit,
        core_limit=args.core_limit,
        hostile=args.hostile,
        stop=stop,
        on_ready=announce,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
