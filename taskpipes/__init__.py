"""taskpipes: periodic pipelines on Dramatiq, RabbitMQ and periodiq, declared in a few lines.

A declaration gets the tick lock, catch-up, run history, retries, metrics, `taskpipes
status`, and its alerts and dashboards. Importing this package builds no broker and opens
no connection: `taskpipes.start()` does, in the application's `actors` module.
"""

from __future__ import annotations

from taskpipes.broker import configure, start
from taskpipes.errors import PermanentError
from taskpipes.pipeline import Context, FanOut, Later, Pipeline, Retries, Stage
from taskpipes.registry import Registry, registry
from taskpipes.schedule import Schedule
from taskpipes.settings import Settings
from taskpipes.stages import close_fan_out, fail_fan_out, hand_off, is_final

__all__ = [
    "Context",
    "FanOut",
    "Later",
    "PermanentError",
    "Pipeline",
    "Registry",
    "Retries",
    "Schedule",
    "Settings",
    "Stage",
    "close_fan_out",
    "configure",
    "fail_fan_out",
    "hand_off",
    "is_final",
    "registry",
    "start",
]
