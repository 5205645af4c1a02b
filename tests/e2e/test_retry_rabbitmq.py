"""`taskpipes retry` on RabbitMQ and PostgreSQL: a run whose third stage failed goes on
from that stage once the bug is fixed; the stages done before are not run again, their
records and outputs untouched and handed on (tests.retry_pipelines). `--from` recomputes
from an earlier stage; a bulk retry acts on exactly the runs its preview listed."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from db import schema as migrate
from taskpipes.store.tables import Run, StageRun
from tests.processes import VENV_BIN, process, service_env, taskpipes

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

T1, T2, T3 = "2026-12-01T10:00:00+00:00", "2026-12-01T10:01:00+00:00", "2026-12-01T10:02:00+00:00"


def attempts_log(directory: Path) -> list[tuple[str, int, Any]]:
    """(stage, run id, input) of every stage attempt, in order."""
    path = directory / "attempts.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(s, int(r), json.loads(i)) for s, r, i in (line.split(" ", 2) for line in lines)]


def ran(directory: Path, run_id: int) -> Counter[str]:
    return Counter(stage for stage, run, _ in attempts_log(directory) if run == run_id)


def stage_records(url: str, run_id: int) -> dict[str, tuple[str, int, Any]]:
    """Each stage's (status, attempts, output) as recorded."""
    engine = create_engine(url)
    with Session(engine) as session:
        rows = session.scalars(select(StageRun).where(StageRun.run_id == run_id)).all()
        found = {r.stage: (r.status, r.attempts, r.output) for r in rows}
    engine.dispose()
    return found


def the_run(url: str, run_id: int) -> Run:
    engine = create_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        run = session.get_one(Run, run_id)
    engine.dispose()
    return run


def run_id_of(url: str, tick: str) -> int:
    engine = create_engine(url)
    with Session(engine) as session:
        found = session.scalars(
            select(Run.id).where(Run.tick == datetime.fromisoformat(tick))
        ).one()
    engine.dispose()
    return found


@pytest.fixture
def env(tmp_path: Path, postgres_url: str, rabbitmq: str) -> Any:
    migrate.upgrade(postgres_url)
    (tmp_path / "retry").mkdir()
    values = service_env(
        tmp_path,
        DATABASE_URL=postgres_url,
        BROKER_URL=rabbitmq,
        TASKPIPES_APP="tests.retry_pipelines",
        RETRY_DIR=str(tmp_path / "retry"),
    )
    worker = [str(VENV_BIN / "dramatiq"), "tests.retry_pipelines", "-p", "1", "-t", "2"]
    with process(worker, values, tmp_path / "workers.log"):
        yield values


def failed_run(env: dict[str, str], tick: str) -> int:
    result = taskpipes(["run", "resumable", "--at", tick, "--timeout", "60"], env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "c: the bug is not fixed yet" in result.stdout
    return run_id_of(env["DATABASE_URL"], tick)


def test_a_retried_run_runs_only_its_unfinished_stages(env: dict[str, str]) -> None:
    # Given a run whose stage c failed after a and b succeeded
    url, switch = env["DATABASE_URL"], Path(env["RETRY_DIR"])
    run_id = failed_run(env, T1)
    before = stage_records(url, run_id)
    assert {s: v[0] for s, v in before.items()} == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "failed",
    }

    # When the bug is fixed and the operator retries the run
    (switch / "fixed").touch()
    traced = {**env, "OTEL_TRACES_EXPORTER": "console"}  # the command's spans on its stdout
    result = taskpipes(["retry", str(run_id), "--by", "ops", "--timeout", "60"], traced)

    # Then it succeeds; a and b ran once, their records untouched; c and d got the outputs
    # recorded before (a's nonce included), and the run says who retried it
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resumable run {run_id}: retried from stage c" in result.stdout
    assert '"name": "taskpipes retry resumable"' in result.stdout  # the command's span
    assert ran(switch, run_id) == Counter({"a": 1, "b": 1, "c": 2, "d": 1})
    after = stage_records(url, run_id)
    assert after["a"] == before["a"] and after["b"] == before["b"]
    assert after["c"][:2] == ("succeeded", 2) and after["d"][:2] == ("succeeded", 1)
    nonce = before["a"][2]["nonce"]
    assert after["d"][2] == {"nonce": nonce, "b": True, "c": True}
    run = the_run(url, run_id)
    assert (run.status, run.error, run.retried_by) == ("succeeded", None, "ops")
    assert run.retried_at is not None

    # And a succeeded run is refused, with one line, exit 2
    again = taskpipes(["retry", str(run_id)], env)
    assert (again.returncode, again.stdout) == (2, "")
    assert again.stderr.startswith(f"taskpipes retry: run {run_id} is succeeded")


def test_retry_from_an_earlier_stage_recomputes_from_there(env: dict[str, str]) -> None:
    # Given a failed run and the fix
    url, switch = env["DATABASE_URL"], Path(env["RETRY_DIR"])
    run_id = failed_run(env, T1)
    nonce = stage_records(url, run_id)["a"][2]["nonce"]
    (switch / "fixed").touch()

    # When the operator retries it from stage b
    result = taskpipes(["retry", str(run_id), "--from", "b", "--timeout", "60"], env)

    # Then a is not run again, b, c and d are; b got a's recorded output
    assert result.returncode == 0, result.stdout + result.stderr
    assert ran(switch, run_id) == Counter({"a": 1, "b": 2, "c": 2, "d": 1})
    b_inputs = [i for s, r, i in attempts_log(switch) if s == "b" and r == run_id]
    assert b_inputs == [{"nonce": nonce}, {"nonce": nonce}]
    assert stage_records(url, run_id)["b"][:2] == ("succeeded", 2)


def test_a_bulk_retry_leaves_a_run_that_failed_after_the_preview(env: dict[str, str]) -> None:
    # Given two failed runs, previewed
    url, switch = env["DATABASE_URL"], Path(env["RETRY_DIR"])
    first, second = failed_run(env, T1), failed_run(env, T2)
    bulk = ["retry", "--pipeline", "resumable", "--status", "failed", "--timeout", "60"]
    shown = taskpipes(bulk, env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("2 run(s) match; nothing changed.")
    token = shown.stdout.rsplit("--yes ", 1)[1].strip()

    # When a third run fails after the preview (a new run: its id is past the token's),
    # the bug is fixed, and the operator confirms with the token
    late = failed_run(env, T3)
    (switch / "fixed").touch()
    done = taskpipes([*bulk, "--yes", token], env)

    # Then exactly the two previewed runs were retried and succeeded; the late one is
    # left failed, not retried and not refused as stale
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("retried from stage c") == 2
    assert "2 runs: 2 succeeded" in done.stdout
    assert [the_run(url, r).status for r in (first, second, late)] == [
        "succeeded",
        "succeeded",
        "failed",
    ]
    assert the_run(url, late).retried_at is None
    assert ran(switch, late) == Counter({"a": 1, "b": 1, "c": 1})
