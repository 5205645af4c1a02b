"""GET /pipelines and /pipelines/{name} in headless Chromium and the Nu HTML Checker,
over runs made by the real pipelines: a success, a failure, a pause."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskpipes import registry, runs
from taskpipes.cli import main
from taskpipes.database import begin
from taskpipes.githubsim import Simulator
from taskpipes.report import QueueDepth
from taskpipes.runner import run_tick
from taskpipes.web.operations import PipelineRow, gantt, recent_runs
from tests.test_web import chromium, get, nu_validator_errors, screenshot_dir  # noqa: F401

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
T0 = NOW - timedelta(minutes=NOW.minute % 10)


@pytest.fixture
def operated(app_env, sqlite_url: str, simulator: Simulator, api_server: str) -> str:
    """github_top: a success, then a failure; rollup: a success; language_stats paused."""
    app_env(sqlite_url)
    simulator.set_clock(T0 - timedelta(minutes=10))
    assert run_tick(registry.get("github_top"), T0 - timedelta(minutes=10), 60).status == (
        runs.SUCCEEDED
    )
    assert run_tick(registry.get("rollup"), T0, 60).status == runs.SUCCEEDED
    simulator.set_clock(T0)
    simulator.add_fault("search", "malformed_json")
    assert run_tick(registry.get("github_top"), T0, 60).status == runs.FAILED
    assert main(["pause", "language_stats", "--reason", "schema change", "--by", "ana"]) == 0
    return api_server


def test_the_pipelines_pages_in_a_browser(operated: str, chromium) -> None:  # noqa: F811
    errors: list[str] = []
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # The list: every declared pipeline, the failure's error, the pause, read-only said
    page.goto(f"{operated}/pipelines")
    names = [cell.inner_text() for cell in page.locator("#pipelines tbody th a").all()]
    assert names == [p.name for p in registry.pipelines]
    assert "not valid JSON" in page.locator("#pipeline-github_top td.failure").inner_text()
    paused = page.locator("#pipeline-language_stats")
    assert paused.locator(".paused").inner_text() == "paused"
    assert "paused by ana" in paused.inner_text() and "schema change" in paused.inner_text()
    assert page.locator("#pipeline-rollup td.dead").inner_text() == "unknown"  # in-process
    assert "read-only" in page.locator("#read-only").inner_text()
    page.screenshot(path=str(screenshot_dir() / "pipelines-1280.png"), full_page=True)

    # A pipeline's page: its runs as bars, one per stage run
    page.goto(f"{operated}/pipelines/rollup")
    assert page.locator("#gantt rect").count() == len(registry.get("rollup").stages)
    page.goto(f"{operated}/pipelines/github_top")
    assert "not valid JSON" in page.locator("#last-failure").inner_text()
    assert page.locator("#runs tbody tr").count() == 2
    assert page.locator("#gantt rect.bad").count() >= 1  # the failed fetch
    page.screenshot(path=str(screenshot_dir() / "pipeline-github_top-1280.png"), full_page=True)
    page.goto(f"{operated}/pipelines/language_stats")
    assert "schema change" in page.locator("#pause").inner_text()
    page.close()
    assert errors == []


def test_the_pipelines_pages_are_valid_html(operated: str, tmp_path: Path) -> None:
    pages = []
    paths = ("/pipelines", "/pipelines/rollup", "/pipelines/github_top", "/pipelines/nosuch")
    for number, path in enumerate(paths):
        answer = get(operated, path)
        assert answer.status_code == (404 if path.endswith("nosuch") else 200), path
        ids = re.findall(r'\sid="([^"]+)"', answer.text)
        assert len(ids) == len(set(ids)), f"duplicate ids on {path}"
        pages.append(tmp_path / f"page{number}.html")
        pages[-1].write_text(answer.text, encoding="utf-8")
    errors = nu_validator_errors(pages)
    assert not errors, errors


def test_dead_letters_are_counted_when_rabbitmq_answers_and_unknown_when_not(
    operated: str,
) -> None:
    from taskpipes.status import gather

    status = next(s for s in gather(NOW) if s.pipeline == "rollup")
    unknown = PipelineRow(registry.get("rollup"), status, "", None)
    assert unknown.dead == "unknown"
    from dataclasses import replace

    known = replace(unknown, status=replace(status, depths=QueueDepth(1, 2, 1234)))
    assert known.dead == "1,234"


def test_a_slow_stage_is_a_long_bar(operated: str) -> None:
    with begin() as session:
        chart = gantt(registry.get("rollup"), recent_runs(session, "rollup"))
    (line,) = chart.lines
    widest = max(line.bars, key=lambda bar: bar.seconds)
    assert widest.width == max(bar.width for bar in line.bars)
    assert all(bar.x >= 150 for bar in line.bars)
