"""Helpers for your own tests: run a pipeline's tick in the test's process, on a SQLite file
with Dramatiq's in-process broker, and read back what each stage recorded.

No server is needed. The tick runs as `taskpipes run` runs it (the tick lock, the stages,
their records and hand-offs, on worker threads of the test's process), and the call
returns once the run has finished::

    from datetime import datetime

    from taskpipes import testing
    from myapp.pipelines import feed_items  # a taskpipes.Pipeline myapp declares


    def test_a_tick_stores_the_feed(tmp_path):
        with testing.configured(tmp_path / "test.db"):
            run = testing.run_tick(feed_items, at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC))

            assert run.status == "succeeded"
            assert run.stages["store"].rows == 3

- `configured(database)` points this process at a database (a SQLite file, or any URL),
  with the in-process broker, and brings its schema to the newest migration;
- `declared(*pipelines)` declares pipelines of the test's own for the length of a block
  (a pipeline the application module declares at import needs no such block);
- `run_tick(pipeline, at)` runs one tick and returns its `RunRecord`;
- `read_run(run_id)` and `runs_of(pipeline)` read run records back;
- `reset()` forgets the configuration: call it after changing the environment by hand.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from taskpipes.declare import clock
from taskpipes.declare.application import Application
from taskpipes.declare.configuration import configuration
from taskpipes.declare.pipeline import Pipeline
from taskpipes.declare.registry import registry
from taskpipes.declare.settings import Settings, get_settings, load_settings
from taskpipes.runtime import runner
from taskpipes.runtime.broker import start
from taskpipes.runtime.current import current_broker
from taskpipes.store import migrate
from taskpipes.store.database import reading
from taskpipes.store.tables import Run, StageRun

# How long `run_tick` waits for a run by default: a test's tick that takes longer is a bug.
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StageRecord:
    """What one stage of a run recorded: its status ("succeeded", "failed", "running",
    ...), the rows it wrote, its last error, how many attempts it took, how long the
    last one lasted, and its output (what it handed on, as stored: None for none)."""

    name: str
    status: str
    rows: int
    error: str | None
    attempts: int
    seconds: float | None
    output: Any = None


@dataclass(frozen=True)
class RunRecord:
    """One run of a pipeline's tick: its status ("succeeded", "failed", "skipped",
    "cancelled", ...), its error, the details its stages recorded, and its stages by name
    in the order they started. `already_done` is True when `run_tick` found the tick
    already succeeded and ran nothing."""

    id: int
    pipeline: str
    tick: datetime
    status: str
    error: str | None
    details: object
    stages: dict[str, StageRecord]
    already_done: bool = False


def reset() -> None:
    """Forget this process's configuration (settings, engine, metrics, ...: they are read
    again from the environment on next use) and drop the messages still queued on the
    in-process broker. The one call a test makes after changing the environment itself."""
    configuration.reset()
    broker = dramatiq.broker.global_broker
    if isinstance(broker, StubBroker):
        broker.flush_all()


@contextmanager
def configured(database: str | Path, **environment: str) -> Iterator[Settings]:
    """This process configured for a test: `database` (a SQLite file's path, or a URL),
    the in-process broker (BROKER_URL is ignored), and the settings `environment` names
    as variables (e.g. `TASKPIPES_MAX_CRASHES="1"`, or an application setting's) over
    the process's own. The schema is
    brought to the newest migration first. The process's environment is not changed;
    leaving the block forgets the configuration (`reset()`)."""
    url = database if isinstance(database, str) else f"sqlite:///{database}"
    variables = {**os.environ, **environment, "DATABASE_URL": url}
    variables.pop("BROKER_URL", None)
    # The application's own settings (taskpipes.Setting) read these variables too.
    settings = replace(load_settings(variables), app_values=variables)
    reset()
    configuration.give(settings=settings)
    try:
        upgrade()
        yield settings
    finally:
        reset()


def upgrade(app: Application | None = None) -> None:
    """Bring the configured database's schema to the newest migration, as `taskpipes db
    upgrade` does: the kit's tables, then the migrations `app` names (by default the
    `application` of the module TASKPIPES_APP names)."""
    app = app or application()
    if app.migrations is None:
        raise LookupError(f"the application {get_settings().app!r} names no migrations")
    location, metadata = migrate.application_migrations(app)
    migrate.upgrade(get_settings().database_url, location, metadata)


def application() -> Application:
    """The `application` declared by the module TASKPIPES_APP names (imported if need be),
    or an empty one."""
    found = getattr(importlib.import_module(get_settings().app), "application", None)
    return found if isinstance(found, Application) else Application()


@contextmanager
def declared(*pipelines: Pipeline) -> Iterator[None]:
    """Declare `pipelines` on the registry for the block (their actors go on the broker),
    and withdraw them and their actors afterwards: the next test's registry holds only the
    application's own, and may declare a pipeline of the same name again. A pipeline that
    was declared already (by the application) stays declared."""
    in_process_broker()
    known = {pipeline.name for pipeline in registry.declared}
    registry.declare(*pipelines)
    try:
        yield
    finally:
        for pipeline in pipelines:
            if pipeline.name not in known:
                registry.withdraw(pipeline.name)
                _remove_actors(pipeline)


def _remove_actors(pipeline: Pipeline) -> None:
    # Dramatiq refuses a second actor of one name; an actor's queue may stay declared.
    actors = current_broker().actors
    for part in ("tick", *pipeline.stage_names):
        actors.pop(pipeline.actor_name(part), None)


def run_tick(
    pipeline: Pipeline | str,
    at: datetime | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    options: Mapping[str, object] | None = None,
) -> RunRecord:
    """Run the tick of `pipeline` (a declaration, or a declared name) that `at` falls in
    (default: now), on worker threads of this process, and return its record once the run
    has finished. A run still unfinished after `timeout_s` is recorded failed and
    returned so. `options` are extra tick arguments, for pipelines that take any."""
    entry = registry.get(pipeline if isinstance(pipeline, str) else pipeline.name)
    in_process_broker()
    outcome = runner.run_tick(entry, at or clock.now(), timeout_s, options)
    return replace(read_run(outcome.run_id), already_done=outcome.already_done)


def in_process_broker() -> dramatiq.Broker:
    """The in-process broker the ticks run on: the one the application started, else one
    started now. A RabbitMQ broker (BROKER_URL was set when the application started) is
    refused: a test's tick would go to whatever workers consume that broker."""
    broker = dramatiq.broker.global_broker
    if broker is None:
        broker = start(get_settings())
    if not isinstance(broker, StubBroker) or not get_settings().in_process:
        raise RuntimeError(
            "taskpipes.testing runs ticks on the in-process broker: unset BROKER_URL "
            "before the application module starts taskpipes"
        )
    return broker


def read_run(run_id: int) -> RunRecord:
    """The record of the run `run_id`, its stages included."""
    with reading() as session:
        run = session.get_one(Run, run_id)
        stages = session.scalars(
            select(StageRun).where(StageRun.run_id == run_id).order_by(StageRun.id)
        )
        return RunRecord(
            id=run.id,
            pipeline=run.pipeline,
            tick=run.tick,
            status=run.status,
            error=run.error,
            details=run.details,
            stages={stage.stage: _stage_record(stage) for stage in stages},
        )


def runs_of(pipeline: str) -> list[RunRecord]:
    """Every run of `pipeline`, oldest tick first."""
    with reading() as session:
        ids = session.scalars(
            select(Run.id).where(Run.pipeline == pipeline).order_by(Run.tick, Run.id)
        ).all()
    return [read_run(run_id) for run_id in ids]


def _stage_record(stage: StageRun) -> StageRecord:
    return StageRecord(
        stage.stage, stage.status, stage.rows_written, stage.error, stage.attempts,
        stage.duration_seconds, stage.output,
    )  # fmt: skip
