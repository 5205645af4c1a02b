"""Pointing the in-process application at a test database, and reading results back."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest
from dramatiq import Broker, Message, Middleware
from sqlalchemy import func, select

import actors
from db import schema as migrate
from db.models import Snapshot
from taskpipes import testing
from taskpipes.declare.schedule import floor_tick
from taskpipes.store import runs
from taskpipes.store.database import begin
from taskpipes.store.tables import Run
from tests import services

T = TypeVar("T")


def configure(
    monkeypatch: pytest.MonkeyPatch, database_url: str, github_url: str, **extra: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("GITHUB_API_URL", github_url)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    testing.reset()
    migrate.upgrade(database_url)


class Fills(Generic[T]):
    """Databases filled once per session, each test reading a copy of its own.

    A fill that runs pipelines costs a test seconds; made once under a key (what was filled,
    and the tick it is the present of) and copied for each test, it is as fresh as a fill of
    the test's own, and a test that writes to its copy leaves the next test's as it was made.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: dict[tuple[str, Hashable], tuple[str, T]] = {}
        self.stack = ExitStack()

    def __enter__(self) -> Fills[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stack.close()

    def original(self, kind: str, key: Hashable, fill: Callable[[str], T]) -> tuple[str, T]:
        """The URL of the database of `kind` that `fill` filled under `key` (filling it
        now if this is the first ask), and what `fill` returned."""
        if (kind, key) not in self.made:
            directory = Path(tempfile.mkdtemp(prefix="fill-", dir=self.directory))
            url = self.stack.enter_context(services.database(kind, directory))
            value = fill(url)
            # A database being copied must have nobody connected: the pool lets go of it.
            testing.reset()
            self.made[kind, key] = url, value
        return self.made[kind, key]

    @contextmanager
    def copy(
        self, kind: str, key: Hashable, fill: Callable[[str], T], directory: Path
    ) -> Iterator[tuple[str, T]]:
        """A copy of `original(kind, key, fill)` of the test's own (a SQLite copy goes into
        `directory`), dropped afterwards: its URL, and what the fill returned."""
        url, value = self.original(kind, key, fill)
        with services.copy_of(url, directory) as copied:
            yield copied, value


def latest_tick(pipeline: str = "github_top") -> datetime:
    """The pipeline's newest tick as of now, read when a test runs, never at import: a tick
    taken when the file loads is stale by the time a long suite reaches the test."""
    from taskpipes import registry

    return floor_tick(registry.get(pipeline).schedule.spec, datetime.now(UTC))


def quicken_retries(monkeypatch: pytest.MonkeyPatch, actor_name: str) -> None:
    """Retry `actor_name` after 0.1-0.2 s instead of the configured seconds, for a test in
    which only a wait GitHub named may last longer. (The actors read
    TASKPIPES_RETRY_MIN_BACKOFF_MS at import, before any test can set it.)"""
    monkeypatch.setitem(actors.broker.get_actor(actor_name).options, "min_backoff", 100)


@contextmanager
def retry_counts(actor_name: str) -> Iterator[list[int]]:
    """The `retries` option of each delivery of `actor_name` on the in-process broker, in
    order: a retry shows as a count one higher than the delivery before."""
    seen: list[int] = []

    class RecordRetries(Middleware):
        def before_process_message(self, broker: Broker, message: Message[Any]) -> None:
            if message.actor_name == actor_name:
                seen.append(message.options.get("retries", 0))

    with added(RecordRetries()):
        yield seen


@contextmanager
def added(middleware: Middleware) -> Iterator[None]:
    """`middleware` on the in-process broker for the length of the block."""
    actors.broker.middleware.append(middleware)
    try:
        yield
    finally:
        actors.broker.middleware.remove(middleware)


def snapshot_count() -> int:
    with begin() as session:
        return session.scalar(select(func.count()).select_from(Snapshot)) or 0


def wait_for_run(pipeline: str, tick: datetime, timeout_s: float = 60) -> Run:
    """Poll the run table until the run of (pipeline, tick) has finished."""
    deadline = time.monotonic() + timeout_s
    while True:
        with begin() as session:
            run = runs.find_run(session, pipeline, tick)
        if run is not None and run.status in runs.FINISHED:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"{pipeline} tick {tick} did not finish: {run and run.status}")
        time.sleep(0.05)
