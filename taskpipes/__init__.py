"""taskpipes: periodic pipelines on Dramatiq, RabbitMQ and periodiq, declared in a few lines.

A declaration gets the tick lock, catch-up, run history, retries, metrics, `taskpipes
status`, and its alerts and dashboards. Importing this package builds no broker and opens
no connection: `taskpipes.start()` does, in the application's `actors` module.
"""

from __future__ import annotations

from taskpipes.declare.app_settings import Setting
from taskpipes.declare.application import Application
from taskpipes.declare.errors import PermanentError
from taskpipes.declare.pipeline import Context, FanOut, Later, Pipeline, Retries, Stage
from taskpipes.declare.registry import Registry, registry
from taskpipes.declare.schedule import Schedule
from taskpipes.declare.settings import Settings
from taskpipes.observe import instruments as metrics
from taskpipes.runtime.broker import configure, start
from taskpipes.runtime.stages import close_fan_out, fail_fan_out, hand_off, is_final
from taskpipes.runtime.wiring import actor
from taskpipes.store.tables import Base
from taskpipes.store.upsert import upsert

__all__ = [
    "Application",
    "Base",
    "Context",
    "FanOut",
    "Later",
    "PermanentError",
    "Pipeline",
    "Registry",
    "Retries",
    "Schedule",
    "Setting",
    "Settings",
    "Stage",
    "actor",
    "close_fan_out",
    "configure",
    "fail_fan_out",
    "hand_off",
    "is_final",
    "metrics",
    "registry",
    "start",
    "upsert",
]
