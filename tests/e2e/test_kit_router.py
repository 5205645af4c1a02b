"""The kit's router in a host application: mounted on a FastAPI app of the host's own, and
served alone by `taskpipes serve` for an application that names no web app.

Both over real HTTP on loopback, after a tick of the host's own pipeline has run on the
in-process broker.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from fastapi import FastAPI

from taskpipes import Pipeline, Schedule, Stage, registry
from taskpipes.http import router
from taskpipes.runtime.runner import run_tick
from taskpipes.store import runs
from taskpipes.store.database import begin
from tests.processes import VENV_BIN, answers, free_port, process, service_env, taskpipes
from tests.queues import wait_until
from web.api.server import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]


def get(base: str, path: str, **params: str) -> requests.Response:
    return requests.get(f"{base}{path}", params=params, timeout=10)


def one_row(ctx: object) -> int:
    return 1


@pytest.fixture
def hello() -> Iterator[Pipeline]:
    """A host's pipeline declared on the process's registry, withdrawn afterwards."""
    pipeline = Pipeline(
        "router_hello", stages=(Stage("greet", one_row),), schedule=Schedule("*/5 * * * *")
    )
    registry.declare(pipeline)
    yield pipeline
    registry._declared.pop(pipeline.name, None)


def style_matches_policy(page: requests.Response) -> bool:
    """Whether the page's one <style> element is the one its policy allows (by hash)."""
    [css] = re.findall(r"<style>(.*?)</style>", page.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return f"style-src 'sha256-{digest}'" in page.headers["content-security-policy"]


def test_a_host_app_of_its_own_serves_the_kit_router(app_env, sqlite_url, hello) -> None:
    # Given a tick of the host's pipeline, run by the in-process broker
    app_env(sqlite_url)
    outcome = run_tick(hello, datetime.now(UTC), 60)
    assert outcome.status == runs.SUCCEEDED
    # And the host's own FastAPI app, with a route of its own and the kit's router
    host = FastAPI(title="a host")

    @host.get("/")
    def home() -> dict[str, str]:
        return {"host": "mine"}

    host.include_router(router())
    # and the run's trace id, as the tracing middleware keeps it when tracing is on
    with begin() as session:
        runs.note_trace(session, outcome.run_id, "4bf92f3577b34da6a3ce929d0e0e4736")

    # When it is served on loopback
    with serve_in_thread(host) as base:
        health = get(base, "/healthz")
        history = get(base, "/api/runs", pipeline="router_hello")
        listing = get(base, "/pipelines")
        page = get(base, "/pipelines/router_hello")
        unknown = get(base, "/pipelines/nosuch")
        metrics = get(base, "/metrics")
        own = get(base, "/")
        run_page = get(base, f"/pipelines/router_hello/runs/{outcome.run_id}")
        no_run = get(base, f"/pipelines/router_hello/runs/{outcome.run_id + 1000}")

    # Then the kit's routes answer beside the host's
    assert health.json() == {"status": "ok"}
    [run] = history.json()["runs"]
    assert (run["pipeline"], run["status"]) == ("router_hello", runs.SUCCEEDED)
    assert datetime.fromisoformat(run["tick"]) == outcome.tick
    assert listing.status_code == 200 and 'id="pipeline-router_hello"' in listing.text
    # the pipeline's page draws its one stage run as one bar
    assert page.status_code == 200 and len(re.findall(r'<rect class="st0"', page.text)) == 1
    assert unknown.status_code == 404 and "router_hello" in unknown.text
    # the pages carry their own policy and no-store, without the kit's middleware
    assert all(style_matches_policy(answer) for answer in (listing, page, unknown))
    assert listing.headers["cache-control"] == "no-store"
    # /metrics serves the kit's metrics of the run (the host did not equip() its app with
    # the kit's request timing, so request durations are not among them)
    assert 'taskpipes_pipeline_tick_lag_seconds_created{pipeline="router_hello"}' in metrics.text
    assert own.json() == {"host": "mine"}
    # and the run's page shows its stage with its output and its trace, linked from the
    # pipeline's page
    assert f'href="/pipelines/router_hello/runs/{outcome.run_id}"' in page.text
    assert run_page.status_code == 200 and style_matches_policy(run_page)
    greet = re.search(r'<th scope="row">greet</th>(.*?)</tr>', run_page.text)
    assert greet is not None and "<code>1</code>" in greet.group(1)
    assert '<code id="trace-id">4bf92f3577b34da6a3ce929d0e0e4736</code>' in run_page.text
    assert no_run.status_code == 404


def test_serve_without_a_web_app_serves_the_kit_router_alone(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Given an application (tests/kit_host.py) that names no web app, whose one pipeline
    # has run its current tick
    env = service_env(tmp_path, TASKPIPES_APP="tests.kit_host", DATABASE_URL=sqlite_url)
    ran = taskpipes(["run", "host_hello", "--timeout", "60"], env, cwd=ROOT)
    assert ran.returncode == 0, ran.stderr

    # When `taskpipes serve` serves it
    port, log = free_port(), tmp_path / "serve.log"
    serve = [str(VENV_BIN / "taskpipes"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with process(serve, env, log):
        wait_until(lambda: answers(f"{base}/healthz"), 60, "taskpipes serve")
        ready = get(base, "/readyz")
        history = get(base, "/api/runs")
        listing = get(base, "/pipelines")
        home = get(base, "/")

    # Then it serves the kit's routes over the host's pipelines only, and nothing else
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) == {"database", "host_hello"}
    assert [run["pipeline"] for run in history.json()["runs"]] == ["host_hello"]
    assert re.findall(r'<tr id="pipeline-([^"]+)"', listing.text) == ["host_hello"]
    assert home.status_code == 404
    # with the kit's middleware: the API's policy on JSON, the page's own on the pages
    assert history.headers["content-security-policy"].startswith("default-src 'none'")
    assert style_matches_policy(listing), log.read_text()
