"""GET /pipelines and /pipelines/{name} in headless Chromium and the Nu HTML Checker,
over runs made by the real pipelines: a success, a failure, a pause."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from githubsim import Simulator
from taskpipes import registry
from taskpipes.cli.main import main
from taskpipes.http.operations import PipelineRow, gantt
from taskpipes.observe.report import QueueDepth, pipeline_status
from taskpipes.runtime.runner import run_tick
from taskpipes.store import runs
from taskpipes.store.tables import Run, StageRun
from tests.app import Fills
from tests.e2e.test_web import chromium, get, nu_validator_errors, screenshot_dir  # noqa: F401

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
T0 = NOW - timedelta(minutes=NOW.minute % 10)


def operate(simulator: Simulator) -> None:
    """github_top: a success, then a failure; rollup: a success; language_stats paused."""
    simulator.set_clock(T0 - timedelta(minutes=10))
    assert run_tick(registry.get("github_top"), T0 - timedelta(minutes=10), 60).status == (
        runs.SUCCEEDED
    )
    assert run_tick(registry.get("rollup"), T0, 60).status == runs.SUCCEEDED
    simulator.set_clock(T0)
    simulator.add_fault("search", "malformed_json")
    assert run_tick(registry.get("github_top"), T0, 60).status == runs.FAILED
    assert main(["pause", "language_stats", "--reason", "schema change", "--by", "ana"]) == 0


@pytest.fixture
def operated(
    app_env, fills: Fills[None], simulator: Simulator, api_server: str, tmp_path: Path
) -> Iterator[str]:
    """The API's base URL over a copy of the runs `operate` made (once for this module)."""

    def operate_on(url: str) -> None:
        app_env(url)
        operate(simulator)

    with fills.copy("sqlite", ("operated", T0), operate_on, tmp_path) as (url, _):
        app_env(url)
        yield api_server


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
        # the pages' own policy (style by hash, no script) and no caching of live runs
        assert "style-src 'sha256-" in answer.headers["content-security-policy"], path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        ids = re.findall(r'\sid="([^"]+)"', answer.text)
        assert len(ids) == len(set(ids)), f"duplicate ids on {path}"
        pages.append(tmp_path / f"page{number}.html")
        pages[-1].write_text(answer.text, encoding="utf-8")
    errors = nu_validator_errors(pages)
    assert not errors, errors


def test_dead_letters_are_counted_when_rabbitmq_answers_and_unknown_when_not() -> None:
    status = pipeline_status(
        "rollup", "rollup", now=NOW, depths_note="RabbitMQ unreachable: AMQPError"
    )
    unknown = PipelineRow(registry.get("rollup"), status, "", None)
    assert unknown.dead == "unknown"
    known = replace(unknown, status=replace(status, depths=QueueDepth(1, 2, 1234)))
    assert known.dead == "1,234"


def test_a_slow_stage_is_a_long_bar_on_one_scale_for_every_run() -> None:
    rollup = registry.get("rollup")
    start = NOW - timedelta(minutes=5)

    def run(number: int, seconds: tuple[float, ...]) -> tuple[Run, list[StageRun]]:
        began = start + timedelta(minutes=number)
        rows, at = [], began
        for stage, took in zip(rollup.stage_names, seconds, strict=True):
            at += timedelta(seconds=took)
            rows.append(
                StageRun(stage=stage, status=runs.SUCCEEDED, finished_at=at, duration_seconds=took)
            )
        return Run(id=number, tick=began, started_at=began, status=runs.SUCCEEDED), rows

    chart = gantt(rollup, [run(2, (1.0, 1.0, 1.0)), run(1, (1.0, 9.0, 2.0))])
    fast, slow = chart.lines
    assert chart.span_s == 12.0
    # the slow run's trending stage is the widest bar of all, nine times a 1 s stage
    widest = max((bar for line in chart.lines for bar in line.bars), key=lambda b: b.width)
    assert (widest.stage, widest.seconds) == ("trending", 9.0)
    assert widest.width == 9 * fast.bars[0].width
    # bars start where their stage started, after the label column, rows apart
    assert [bar.x for bar in fast.bars] == [150.0, 200.0, 250.0]
    assert slow.y - fast.y == 16
