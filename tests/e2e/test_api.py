"""The read API over real HTTP: contracts of top, runs, readyz, and schemathesis on it all."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from githubsim import Simulator
from taskpipes import registry, testing
from taskpipes.observe.report import MAX_SHOWN_OUTPUT
from taskpipes.runtime.runner import run_tick
from taskpipes.store.database import begin
from taskpipes.store.tables import Run
from tests.app import configure, latest_tick
from web.api.app import create_app
from web.api.server import serve_in_thread


def get(base: str, path: str, **params: object) -> requests.Response:
    return requests.get(f"{base}{path}", params=params, timeout=10)


def fill(simulator: Simulator, t0: datetime) -> None:
    """Two github_top ticks, a rollup and the languages, the way production fills the tables."""
    for tick in (t0 - timedelta(minutes=10), t0):
        simulator.set_clock(tick)
        assert run_tick(registry.get("github_top"), tick, 60).status == "succeeded"
    assert run_tick(registry.get("rollup"), t0, 60).status == "succeeded"
    assert run_tick(registry.get("language_stats"), t0, 60).status == "succeeded"


@pytest.fixture
def t0() -> datetime:
    """The newest github_top tick as the test starts: fresh for readyz. rollup floors it."""
    return latest_tick()


@pytest.fixture
def filled_api(
    app_env, database_url: str, simulator: Simulator, api_server: str, t0: datetime
) -> str:
    app_env(database_url)
    fill(simulator, t0)
    return api_server


def test_top_returns_the_ranking_in_order(
    filled_api: str, simulator: Simulator, t0: datetime
) -> None:
    answer = get(filled_api, "/api/top", limit=3)

    assert answer.status_code == 200
    body = answer.json()
    expected = simulator.top(t0)[:3]
    assert body["as_of"] == t0.isoformat().replace("+00:00", "Z")
    assert [(r["rank"], r["id"], r["full_name"], r["stars"]) for r in body["repos"]] == [
        (i + 1, e["id"], e["full_name"], e["stargazers_count"]) for i, e in enumerate(expected)
    ]
    assert set(body["repos"][0]) == {
        "rank",
        "id",
        "full_name",
        "stars",
        "forks",
        "language",
        "stars_gained",
    }


@pytest.mark.parametrize("limit", [0, 1001, "ten", -1])
def test_a_bad_limit_is_422_with_a_message(filled_api: str, limit: object) -> None:
    answer = get(filled_api, "/api/top", limit=limit)

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "limit"]


def test_runs_lists_the_history_newest_first(filled_api: str, t0: datetime) -> None:
    body = get(filled_api, "/api/runs", pipeline="github_top", limit=5).json()

    assert [r["tick"] for r in body["runs"]] == [
        t0.isoformat().replace("+00:00", "Z"),
        (t0 - timedelta(minutes=10)).isoformat().replace("+00:00", "Z"),
    ]
    assert {r["status"] for r in body["runs"]} == {"succeeded"}
    assert set(body["runs"][0]) == {
        "id", "pipeline", "tick", "status", "attempts", "started_at", "finished_at", "error",
        "cancelled_by", "cancelled_at", "retried_by", "retried_at", "trace_id",
    }  # fmt: skip
    assert {r["retried_at"] for r in body["runs"]} == {None}
    assert {r["trace_id"] for r in body["runs"]} == {None}  # tracing is off here
    assert len(get(filled_api, "/api/runs", limit=1).json()["runs"]) == 1


def test_a_run_shows_each_stage_and_what_it_handed_on(filled_api: str) -> None:
    newest = get(filled_api, "/api/runs", pipeline="github_top", limit=1).json()["runs"][0]

    body = get(filled_api, f"/api/runs/{newest['id']}").json()

    # Each stage in order, with its output cut to a readable length (report.MAX_SHOWN_OUTPUT)
    assert [s["stage"] for s in body["stages"]] == ["fetch", "normalize", "store", "aggregate"]
    fetched, normalized = body["stages"][0]["output"], body["stages"][1]["output"]
    assert fetched.startswith('{"payload":{') and fetched.endswith(" bytes)")
    assert len(fetched) < MAX_SHOWN_OUTPUT + 20
    assert normalized.startswith('{"records":[{"id":')
    assert [s["output"] for s in body["stages"][2:]] == [None, None]
    assert [s["rows_written"] for s in body["stages"]] == [0, 1, 100, 100]
    assert get(filled_api, "/api/runs/999999999").status_code == 404


def test_readyz_says_which_pipeline_is_stale(filled_api: str) -> None:
    # Given fresh github_top and rollup data, but maintenance never ran
    answer = get(filled_api, "/readyz")

    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["github_top"].startswith("fresh")
    assert checks["rollup"].startswith("fresh")
    assert checks["maintenance"] == "stale: never succeeded"

    # When maintenance has run and github_top's last success is made old
    assert run_tick(registry.get("maintenance"), datetime.now(UTC), 60).status == "succeeded"
    assert get(filled_api, "/readyz").status_code == 200
    with begin() as session:
        for run in session.scalars(select(Run).where(Run.pipeline == "github_top")):
            run.tick -= timedelta(hours=1)

    # Then readiness fails on github_top alone
    answer = get(filled_api, "/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["github_top"].startswith("stale")


def test_health_and_metrics(filled_api: str) -> None:
    assert get(filled_api, "/healthz").json() == {"status": "ok"}
    get(filled_api, "/api/top", limit=1)

    text = get(filled_api, "/metrics").text

    assert 'taskpipes_api_request_duration_seconds_count{code="200",route="/api/top"}' in text


def test_schemathesis_finds_no_server_error(tmp_path: Path, simulator_server: Simulator) -> None:
    """Generated inputs for every operation in /openapi.json; no 500 and answers as documented."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        simulator_server.reset()
        configure(monkeypatch, f"sqlite:///{tmp_path / 'taskpipes.db'}", simulator_server.url)
        fill(simulator_server, latest_tick())
        # readyz answers 503 (on purpose) until every scheduled pipeline has succeeded
        assert run_tick(registry.get("maintenance"), datetime.now(UTC), 60).status == "succeeded"
        with serve_in_thread(create_app()) as url:
            result = subprocess.run(
                [
                    str(Path(sys.executable).parent / "schemathesis"),
                    "run",
                    f"{url}/openapi.json",
                    "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance",
                    "--max-examples", "60",
                    "--seed", "20261126",
                    "--generation-deterministic",
                ],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
        testing.reset()

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
