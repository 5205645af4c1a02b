"""`taskpipes retry` refusals, in-process on SQLite: each is one line on stderr, exit 2,
and changes nothing. (The retries that run are in tests/e2e/test_retry_rabbitmq.py.)"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import ColumnElement, create_engine, select, update
from sqlalchemy.orm import Session

from taskpipes.store.tables import Run, StageRun
from tests.clirun import run_cli
from tests.integration.test_bulk import add_runs, by_minute, statuses


def env_of(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url}


def run_ids(url: str) -> dict[int, int]:
    """Each rollup run's id, by its tick's minute."""
    return by_minute(url, lambda run: run.id)


def set_runs(url: str, which: ColumnElement[bool], **values: object) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(update(Run).where(which).values(**values))
    engine.dispose()


@pytest.mark.parametrize(
    ("status", "says"),
    [
        ("running", "is running: only a failed, dead, skipped, paused, cancelled run is retried"),
        ("queued", "is queued: only"),
        ("waiting", "is waiting: only"),
        ("succeeded", "is succeeded: only"),
    ],
)
def test_a_run_not_finished_unsuccessfully_is_refused(
    sqlite_url: str, tmp_path: Path, status: str, says: str
) -> None:
    add_runs(sqlite_url, status, range(1))
    run_id = run_ids(sqlite_url)[0]

    refused = run_cli(["retry", str(run_id)], env_of(sqlite_url), tmp_path)

    assert refused.returncode == 2
    assert refused.stderr.startswith(f"taskpipes retry: run {run_id} {says}")
    assert refused.stderr.count("\n") == 1 and refused.stdout == ""
    assert statuses(sqlite_url) == {0: status}


def test_an_unknown_run_or_stage_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    add_runs(sqlite_url, "failed", range(1))
    run_id = run_ids(sqlite_url)[0]
    env = env_of(sqlite_url)

    unknown_run = run_cli(["retry", "999999"], env, tmp_path)
    unknown_stage = run_cli(["retry", str(run_id), "--from", "nosuch"], env, tmp_path)
    neither = run_cli(["retry"], env, tmp_path)

    assert (unknown_run.returncode, unknown_run.stderr) == (2, "taskpipes retry: no run 999999\n")
    assert unknown_stage.returncode == 2
    assert unknown_stage.stderr.startswith(
        "taskpipes retry: pipeline 'rollup' has no stage 'nosuch'; its stages: "
    )
    assert unknown_stage.stderr.count("\n") == 1
    assert neither.returncode == 2 and "give a RUN_ID or filters" in neither.stderr
    assert statuses(sqlite_url) == {0: "failed"}


def test_a_bulk_retry_whose_runs_changed_since_the_preview_is_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Given a preview of one failed rollup run, while an older one (a smaller id) still runs
    add_runs(sqlite_url, "running", range(1))
    add_runs(sqlite_url, "failed", range(1, 2))
    env = env_of(sqlite_url)
    bulk = ["retry", "--pipeline", "rollup", "--status", "failed"]
    shown = run_cli(bulk, env, tmp_path)
    token = shown.stdout.rsplit("--yes ", 1)[1].strip()

    # When the running one fails before the confirmation (a run the preview could see
    # enters the filter; a newer run would be left out instead: tests/e2e/test_retry_rabbitmq)
    set_runs(sqlite_url, Run.status == "running", status="failed")
    refused = run_cli([*bulk, "--yes", token], env, tmp_path)

    # Then the preview changed nothing, and the confirmation is refused as stale: nothing
    # is retried
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("1 run(s) match; nothing changed.")
    assert refused.returncode == 2
    assert refused.stderr.startswith("taskpipes retry: the runs matching changed since the preview")
    assert statuses(sqlite_url) == {0: "failed", 1: "failed"}


def test_a_retried_run_is_shown_as_retried(
    app_env, sqlite_url: str, tmp_path: Path, api_server: str
) -> None:  # type: ignore[no-untyped-def]
    # Given a failed rollup run (in-process workers, SQLite)
    app_env(sqlite_url)
    add_runs(sqlite_url, "failed", range(1))
    run_id = run_ids(sqlite_url)[0]
    env = env_of(sqlite_url)

    # When ana retries it
    done = run_cli(["retry", str(run_id), "--by", "ana", "--timeout", "60"], env, tmp_path)
    listed = run_cli(["runs", "--pipeline", "rollup"], env, tmp_path)
    api = httpx.get(f"{api_server}/api/runs", params={"pipeline": "rollup"}).json()
    page = httpx.get(f"{api_server}/pipelines/rollup").text

    # Then it succeeds, and the history, /api/runs and the pipeline page say it was retried
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"rollup run {run_id}: retried from stage ")
    assert re.search(r"succeeded  \(retried by ana at \d{4}-\d\d-\d\dT\d\d:\d\d\)", listed.stdout)
    (run,) = api["runs"]
    assert (run["status"], run["retried_by"]) == ("succeeded", "ana")
    assert run["retried_at"] is not None
    assert re.search(r'<span class="retried" title="retried by ana">\(retried ', page)


def test_a_retried_run_of_a_queue_pipeline_waits_while_another_runs(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Given rollup (overlap policy queue): a failed run, and a newer one still running
    add_runs(sqlite_url, "failed", range(1))
    add_runs(sqlite_url, "running", range(1, 2))
    # (started now: not yet left to the crash guard)
    set_runs(sqlite_url, Run.id > 0, started_at=datetime.now(UTC))
    failed = run_ids(sqlite_url)[0]

    # When the failed one is retried, waiting at most a second
    done = run_cli(["retry", str(failed), "--timeout", "1"], env_of(sqlite_url), tmp_path)

    # Then it waited its turn: no stage of it ran while the other ran, and the wait ended
    assert done.returncode == 1, done.stdout + done.stderr
    assert "(waits its turn: overlap policy queue)" in done.stdout
    assert "not finished when the wait ended" in done.stdout
    engine = create_engine(sqlite_url)
    with Session(engine) as session:
        stages = session.scalars(select(StageRun).where(StageRun.run_id == failed)).all()
    engine.dispose()
    assert [(s.status, s.attempts) for s in stages] == [("queued", 0)]  # held, not run
