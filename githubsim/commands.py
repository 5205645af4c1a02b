"""The GitHub application's own `taskpipes` commands: `github-sim` and `demo`.

The application names this module in its `taskpipes.Application(commands=...)`; the kit
adds these subcommands to its parser.
"""

from __future__ import annotations

import argparse
import sys

from taskpipes.cli import arguments
from taskpipes.cli.exits import EXIT_FAILED

# The simulated day `taskpipes demo` replays by default.
DEFAULT_DAY = "2026-08-21"


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sim = sub.add_parser("github-sim", help="serve the GitHub API simulator on loopback")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=arguments.port, default=8765)
    sim.add_argument("--search-limit", type=int, help="search requests per minute")
    sim.add_argument("--core-limit", type=int, help="core requests per hour")
    sim.add_argument("--hostile", action="store_true", help="add a repository made of markup")
    sim.set_defaults(handler=github_sim)

    demo = sub.add_parser("demo", help="replay a simulated day of github_top ticks (simulator)")
    demo.add_argument(
        "--day", type=arguments.tick, help=f"the day to replay (default {DEFAULT_DAY})"
    )
    demo.add_argument(
        "--timeout", type=arguments.seconds, default=120.0, help="seconds to wait per tick"
    )
    demo.set_defaults(handler=replay)


def github_sim(args: argparse.Namespace) -> int:
    from githubsim.standalone import main as sim_main

    argv = ["--host", args.host, "--port", str(args.port)]
    if args.search_limit:
        argv += ["--search-limit", str(args.search_limit)]
    if args.core_limit:
        argv += ["--core-limit", str(args.core_limit)]
    if args.hostile:
        argv.append("--hostile")
    return sim_main(argv)


def replay(args: argparse.Namespace) -> int:
    from githubsim.demo import replay_day, top_table
    from pipelines.config import GITHUB_API_URL

    day = (args.day or arguments.tick(DEFAULT_DAY)).replace(hour=0, minute=0)
    sim_url = GITHUB_API_URL.get()
    print(f"replaying {day:%Y-%m-%d} against the simulator at {sim_url}: 144 ticks of github_top")
    failures = replay_day(day, sim_url, args.timeout)
    print()
    print(top_table())
    for failure in failures:
        print(f"failed tick {failure}", file=sys.stderr)
    return EXIT_FAILED if failures else 0
