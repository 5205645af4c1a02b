"""A host application of its own: one pipeline, no web app and nothing of the GitHub
application. `TASKPIPES_APP=tests.kit_host taskpipes serve` serves the kit's routes alone
(tests/e2e/test_kit_router.py)."""

from __future__ import annotations

import taskpipes


def greet(ctx: taskpipes.Context) -> int:
    return 1


taskpipes.registry.declare(
    taskpipes.Pipeline(
        "host_hello",
        stages=(taskpipes.Stage("greet", greet),),
        schedule=taskpipes.Schedule("*/5 * * * *"),
    )
)
broker = taskpipes.start()
