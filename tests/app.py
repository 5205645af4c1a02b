"""Pointing the in-process application at a test database, and reading results back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from dramatiq import Broker, Message, Middleware
from sqlalchemy import func, select

import actors
from db import migrate
from db.models import Snapshot
from taskpipes import runs
from taskpipes.database import begin, get_engine, session_factory
from taskpipes.models import Run
from taskpipes.schedule import floor_tick
from taskpipes.settings import get_settings


def reset_caches() -> None:
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    for cached in (get_settings, get_engine, session_factory):
        cached.cache_clear()
    actors.broker.flush_all()


def configure(
    monkeypatch: pytest.MonkeyPatch, database_url: str, github_url: str, **extra: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("GITHUB_API_URL", github_url)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    reset_caches()
    migrate.upgrade(database_url)


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
