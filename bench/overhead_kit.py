"""taskpipes for bench/overhead.py: a pipeline of 4 stages that do no work, declared with
the kit. `dramatiq bench.overhead_kit` works it (DATABASE_URL, BROKER_URL as usual)."""

from __future__ import annotations

import taskpipes
from taskpipes import Context, Pipeline, Stage, registry


def nothing(ctx: Context) -> int:
    return 0


noop = Pipeline("bench_noop", stages=tuple(Stage(f"step{i}", nothing) for i in range(1, 5)))
registry.declare(noop)
broker = taskpipes.start()
