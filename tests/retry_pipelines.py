"""A 4-stage pipeline whose third stage fails until a switch is flipped, for
tests/e2e/test_retry_rabbitmq.py (`taskpipes retry`).

Loaded as the application (TASKPIPES_APP=tests.retry_pipelines) by the worker
(`dramatiq tests.retry_pipelines`) and by the `taskpipes` commands. Every stage attempt
appends one line `stage run_id input` to RETRY_DIR/attempts.log, so the test counts which
stages ran and sees what each was handed. Stage `a` returns a fresh random nonce: a
recomputed `a` would hand on a different one. Stage `c` fails while RETRY_DIR/fixed is
absent (the switch).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import actors  # noqa: F401  (the broker and the kit's actors come first)
from taskpipes import Context, PermanentError, Pipeline, Retries, Stage, registry

application = actors.application


def _dir() -> Path:
    return Path(os.environ["RETRY_DIR"])


def _note(ctx: Context) -> None:
    with (_dir() / "attempts.log").open("a") as log:
        log.write(f"{ctx.stage} {ctx.run_id} {json.dumps(ctx.input, sort_keys=True)}\n")


def fresh_nonce(ctx: Context) -> dict[str, Any]:
    _note(ctx)
    return {"nonce": uuid.uuid4().hex}


def add_b(ctx: Context) -> dict[str, Any]:
    _note(ctx)
    return {**ctx.input, "b": True}


def fails_until_fixed(ctx: Context) -> dict[str, Any]:
    _note(ctx)
    if not (_dir() / "fixed").exists():
        raise PermanentError("c: the bug is not fixed yet")
    return {**ctx.input, "c": True}


def last(ctx: Context) -> dict[str, Any]:
    _note(ctx)
    return dict(ctx.input)


RESUMABLE = Pipeline(
    "resumable",
    stages=(
        Stage("a", fresh_nonce),
        Stage("b", add_b),
        Stage("c", fails_until_fixed),
        Stage("d", last),
    ),
    queue="default",
    retries=Retries(max=1, min_backoff_ms=10, max_backoff_ms=20, time_limit_ms=60_000),
)
registry.declare(RESUMABLE)
