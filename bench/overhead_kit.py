"""taskpipes for bench/overhead.py: a pipeline of 4 stages that do no work, declared with
the kit. `dramatiq bench.overhead_kit` works it (DATABASE_URL, BROKER_URL as usual). Run as
a script, it is the bench's sender: runs started the way backfill and catch-up start many,
`enqueue_ticks` (recorded and sent in batches, still confirmed)."""

from __future__ import annotations

import taskpipes
from bench.overhead_sender import kit_tick, serve
from taskpipes import Context, Pipeline, Stage, registry


def nothing(ctx: Context) -> int:
    return 0


noop = Pipeline("bench_noop", stages=tuple(Stage(f"step{i}", nothing) for i in range(1, 5)))
registry.declare(noop)
broker = taskpipes.start()


if __name__ == "__main__":
    from taskpipes.runtime.ticks import enqueue_ticks

    serve(lambda keys: enqueue_ticks(noop, [kit_tick(key) for key in keys]))
