"""Bulk actions with a preview: `taskpipes cancel --pipeline P [filters]` lists what it
would touch and changes nothing; `--yes TOKEN` acts on exactly the previewed runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from taskpipes.store.tables import Run
from tests.clirun import run_cli

T = TypeVar("T")

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def add_runs(url: str, status: str, minutes: range) -> None:
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        for minute in minutes:
            tick = T0 + timedelta(minutes=minute)
            session.add(Run(pipeline="rollup", tick=tick, status=status, attempts=1))
    engine.dispose()


def by_minute(url: str, read: Callable[[Run], T]) -> dict[int, T]:
    """What `read` reads of each run, by its tick's minute."""
    engine = create_engine(url)
    with Session(engine) as session:
        found = {run.tick.minute: read(run) for run in session.scalars(select(Run))}
    engine.dispose()
    return found


def statuses(url: str) -> dict[int, str]:
    return by_minute(url, lambda run: run.status)


def test_yes_cancels_exactly_the_previewed_runs(database_url: str, tmp_path: Path) -> None:
    # Given three running rollup runs, and one that succeeded
    add_runs(database_url, "running", range(3))
    add_runs(database_url, "succeeded", range(3, 4))
    env = {**os.environ, "DATABASE_URL": database_url}
    bulk = ["cancel", "--pipeline", "rollup", "--status", "running", "--by", "ops"]

    # When the operator previews, a fourth run starts, then the operator confirms
    shown = run_cli(bulk, env, tmp_path)
    add_runs(database_url, "running", range(4, 5))
    token = shown.stdout.rsplit("--yes ", 1)[1].strip()
    done = run_cli([*bulk, "--yes", token], env, tmp_path)

    # Then the preview changed nothing and named the three; --yes cancelled those three
    # and left the run that entered the filter after the preview alone
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("3 run(s) match; nothing changed.")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": cancelled") == 3
    assert statuses(database_url) == {
        0: "cancelled",
        1: "cancelled",
        2: "cancelled",
        3: "succeeded",
        4: "running",
    }


def test_a_preview_whose_runs_changed_is_refused(database_url: str, tmp_path: Path) -> None:
    # Given a preview of two running runs
    add_runs(database_url, "running", range(2))
    env = {**os.environ, "DATABASE_URL": database_url}
    bulk = ["cancel", "--pipeline", "rollup", "--status", "running"]
    token = run_cli(bulk, env, tmp_path).stdout.rsplit("--yes ", 1)[1].strip()

    # When one of them fails before the confirmation
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(update(Run).where(Run.tick == T0).values(status="failed"))
    engine.dispose()
    refused = run_cli([*bulk, "--yes", token], env, tmp_path)

    # Then nothing is done: one line says the set changed, exit 2
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "taskpipes cancel: the runs matching changed since the preview"
    )
    assert statuses(database_url) == {0: "failed", 1: "running"}


def test_a_bulk_cancel_needs_a_pipeline_and_not_a_run_id_too(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": sqlite_url}

    no_pipeline = run_cli(["cancel", "--status", "running"], env, tmp_path)
    both = run_cli(["cancel", "7", "--pipeline", "rollup"], env, tmp_path)

    assert (no_pipeline.returncode, no_pipeline.stderr) == (
        2,
        "taskpipes cancel: a bulk cancel needs --pipeline\n",
    )
    assert both.returncode == 2 and "not both" in both.stderr
