"""Test-only pipelines, one per overlap policy, whose first stage waits at a gate.

Loaded next to the real actors with `dramatiq actors tests.slow_pipelines`. The stage
marks `<gates>/<pipeline>-<HHMM>.entered` when it starts and waits until the test creates
`<gates>/<pipeline>-<HHMM>.open` (TASKPIPES_TEST_GATES names the directory): a stage made
slow on purpose, for exactly as long as the test needs, with no sleeping on the test's side.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import actors  # noqa: F401  (the broker and the kit's actors come first)
from taskpipes import Context, Pipeline, Retries, Stage, registry
from taskpipes.declare.pipeline import OVERLAP_POLICIES

# The gate is polled this often; the stage gives up after its time limit.
POLL_S = 0.05
RETRIES = Retries(max=0, min_backoff_ms=100, max_backoff_ms=100, time_limit_ms=120_000)


def gate(pipeline: str, tick: str) -> Path:
    return Path(os.environ["TASKPIPES_TEST_GATES"]) / f"{pipeline}-{tick}"


def wait_at_gate(ctx: Context) -> int:
    here = gate(ctx.pipeline, ctx.tick.strftime("%H%M"))
    here.with_suffix(".entered").touch()
    while not here.with_suffix(".open").exists():
        time.sleep(POLL_S)
    return 1


def name(policy: str) -> str:
    return f"overlap_{policy}"


PIPELINES = [
    Pipeline(
        name(policy),
        stages=(Stage("slow", wait_at_gate), Stage("after", lambda ctx: 1)),
        retries=RETRIES,
        overlap=policy,
    )
    for policy in OVERLAP_POLICIES
]
registry.declare(*PIPELINES)
