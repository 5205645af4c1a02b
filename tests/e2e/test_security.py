"""The pages and the API defend themselves: security headers on every answer, HEAD wherever
GET works, hostile repository text that stays text in a real browser (Chromium), and error
bodies that quote at most a line of what the caller sent.

The tables are filled by real runs (github_top, rollup on a SQLite file, in-process broker)
against a simulator with its hostile repository switched on (githubsim.hostile).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from githubsim import Simulator
from githubsim.hostile import HOSTILE_DESCRIPTION, HOSTILE_FULL_NAME, HOSTILE_LANGUAGE
from taskpipes import registry, testing
from taskpipes.runtime.runner import run_tick
from tests.app import Fills, configure, latest_tick
from tests.conftest import SIM_LIMITS
from tests.e2e.test_web import chromium, nu_validator_errors  # noqa: F401 (a fixture)
from tests.processes import VENV_BIN, answers, free_port, process, scrape, service_env
from tests.processes import taskpipes as run_taskpipes
from tests.queues import wait_until
from web.api.app import create_app
from web.api.server import serve_in_thread

HOSTILE_PAGE = f"/repos/{quote(HOSTILE_FULL_NAME)}"
# Every kind of answer: pages, their notices, JSON, metrics, the schema.
PATHS = (
    "/",
    "/?window=7d",
    HOSTILE_PAGE,
    "/repos/nobody/nothing",
    "/?window=2h",
    "/api/top?limit=3",
    "/api/trending",
    f"/api/repos/{quote(HOSTILE_FULL_NAME)}/history",
    "/api/repos/nobody/nothing/history",
    "/api/runs",
    "/api/languages",
    "/readyz",
    "/healthz",
    "/metrics",
    "/openapi.json",
)
# docs/security.md's promise: any quote of the caller's input is cut to 80 characters, and a body
# quotes it at most twice (a validation error names the value and its field's message).
ECHO_LIMIT = 80


def shown(text: str) -> str:
    """What a page shows for repository text: bidi controls as visible code points."""
    return text.replace("\u202e", "[U+202E]").replace("\u202c", "[U+202C]")


@pytest.fixture(scope="module")
def hostile_simulator() -> Iterator[Simulator]:
    with Simulator(hostile=True, **SIM_LIMITS) as sim:
        yield sim


def fill_hostile(simulator: Simulator, t0: datetime, languages_tick: datetime) -> None:
    """Ticks up to `t0` and a rollup that store the hostile repository, and language_stats
    (every 30 minutes), which counts the snapshot of its own tick: github_top stores it too."""
    for tick in sorted({languages_tick, t0 - timedelta(minutes=10), t0}):
        simulator.set_clock(tick)
        assert run_tick(registry.get("github_top"), tick, 60).status == "succeeded"
    assert run_tick(registry.get("rollup"), t0, 60).status == "succeeded"
    outcome = run_tick(registry.get("language_stats"), languages_tick, 60)
    assert outcome.status == "succeeded"


@pytest.fixture
def site(tmp_path: Path, hostile_simulator: Simulator, fills: Fills[None]) -> Iterator[str]:
    """The API and pages over a copy of the hostile fill, made once per tick (tests.app.Fills)
    as the test runs, so the pages are fresh."""
    t0, languages_tick = latest_tick(), latest_tick("language_stats")
    with pytest.MonkeyPatch.context() as monkeypatch:

        def fill_into(url: str) -> None:
            configure(monkeypatch, url, hostile_simulator.url)
            fill_hostile(hostile_simulator, t0, languages_tick)

        key = ("hostile", t0, languages_tick)
        with fills.copy("sqlite", key, fill_into, tmp_path) as (url, _):
            configure(monkeypatch, url, hostile_simulator.url)
            with serve_in_thread(create_app()) as base:
                yield base
        testing.reset()


def get(base: str, path: str, **kwargs: object) -> requests.Response:
    return requests.get(f"{base}{path}", timeout=10, **kwargs)  # type: ignore[arg-type]


def test_hostile_text_stays_text_in_a_browser(site: str, chromium) -> None:  # noqa: F811
    top = get(site, "/api/top").json()["repos"]
    assert HOSTILE_FULL_NAME in [repo["full_name"] for repo in top]
    page = chromium.new_page()
    dialogs: list[str] = []
    errors: list[str] = []  # a refused script or style is a console error in Chromium

    def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # The top page lists it under its name, as text
    page.goto(f"{site}/")
    row = page.locator("#top tbody tr").filter(has=page.locator("a", has_text="alert(1)"))
    link = row.locator("th.name a")
    assert link.inner_text() == HOSTILE_FULL_NAME
    assert row.locator(".lang").inner_text() == shown(HOSTILE_LANGUAGE)
    assert_nothing_injected(page)
    # and its languages table names the hostile language, as text
    languages = page.locator("#languages tbody th").all_inner_texts()
    assert shown(HOSTILE_LANGUAGE) in languages

    # Its page, reached by the link, shows the name, description and language as text
    link.click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == HOSTILE_FULL_NAME
    assert page.locator("h1").is_visible()  # the description's <style> hid nothing
    assert page.get_by_text(shown(HOSTILE_DESCRIPTION), exact=True).count() == 1
    assert page.get_by_text(shown(HOSTILE_LANGUAGE), exact=True).count() == 1
    assert_nothing_injected(page)
    assert "\u202e" not in page.locator("body").inner_text()

    # /api/languages opened in the browser is JSON shown as text: the language, raw
    page.goto(f"{site}/api/languages")
    assert page.locator("script, svg, [onload]").count() == 0
    assert HOSTILE_LANGUAGE in page.locator("body").inner_text()
    page.close()
    assert (dialogs, errors) == ([], [])


def assert_nothing_injected(page) -> None:  # type: ignore[no-untyped-def]
    assert page.locator("script").count() == 0
    assert page.locator("style").count() == 1  # the site's own
    assert page.locator("[onload], [onerror], a[href^='javascript']").count() == 0
    assert (
        page.locator("main svg").count()
        == page.locator("main svg[aria-label], main svg[aria-labelledby]").count()
    )


def test_hostile_pages_are_valid_html(site: str, tmp_path: Path) -> None:
    pages = []
    for number, path in enumerate(("/", HOSTILE_PAGE)):
        text = get(site, path).text
        assert "<script" not in text and "<svg onload" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        pages.append(tmp_path / f"page{number}.html")
        pages[-1].write_text(text, encoding="utf-8")
    assert nu_validator_errors(pages) == []


def test_every_answer_carries_the_security_headers(site: str) -> None:
    for path in PATHS:
        answer = get(site, path)
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["referrer-policy"] == "no-referrer", path
        policy = directives(answer.headers["content-security-policy"])
        assert policy["default-src"] == ["'none'"], path
        assert policy["frame-ancestors"] == ["'none'"], path
        assert "script-src" not in policy and "'unsafe-inline'" not in str(policy), path
        if answer.headers["content-type"].startswith("text/html"):
            # The one style source allowed is the hash of the page's own <style>
            [css] = re.findall(r"<style>(.*?)</style>", answer.text, re.DOTALL)
            digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
            assert policy["style-src"] == [f"'sha256-{digest}'"], path
            assert policy["img-src"] == ["data:"], path
        else:
            assert set(policy) == {"default-src", "frame-ancestors"}, path


def directives(header: str) -> dict[str, list[str]]:
    parts = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in parts}


def test_head_answers_wherever_get_does(site: str) -> None:
    for path in PATHS:
        got = get(site, path)
        head = requests.head(f"{site}{path}", timeout=10)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        same = ["content-type", "etag", "content-security-policy"]
        # /metrics counts the GET itself, so its length moves between the two
        same += [] if path == "/metrics" else ["content-length"]
        for name in same:
            assert head.headers.get(name) == got.headers.get(name), (path, name)
    # A cache's conditional HEAD is answered like its GET
    tag = get(site, "/").headers["etag"]
    head = requests.head(f"{site}/", headers={"If-None-Match": tag}, timeout=10)
    assert (head.status_code, head.headers["etag"]) == (304, tag)
    assert "frame-ancestors 'none'" in head.headers["content-security-policy"]


def test_requests_stay_within_the_api_bounds(site: str) -> None:
    for path in ("/api/top?limit=1001", "/api/trending?limit=101", "/api/runs?limit=501"):
        assert get(site, path).status_code == 422, path
    assert len(get(site, "/api/top?limit=100").json()["repos"]) == 100
    history = get(site, f"/api/repos/{quote(HOSTILE_FULL_NAME)}/history?since=0001-01-01")
    assert history.status_code == 200 and len(history.json()["points"]) <= 2000


def test_error_bodies_quote_at_most_a_line_of_the_input(site: str) -> None:
    long = "x" * 5000
    for full_path, status in (
        (f"/api/top?limit={'9' * 5000}", 422),
        (f"/api/trending?window={long}", 422),
        (f"/api/runs?pipeline={long}", 422),
        (f"/api/repos/owner/name/history?since={long}", 422),
        (f"/api/repos/owner/name/stars?step={long}", 422),
        (f"/api/repos/{long}/name/history", 404),
        (f"/api/repos/{long}/name/stars", 404),
        (f"/repos/{long}/name", 404),
        (f"/?window={long}", 422),
    ):
        answer = get(site, full_path)
        path = full_path[:60]
        assert answer.status_code == status, path
        quoted = re.findall(r"x{20,}|9{20,}", answer.text)
        assert quoted and max(map(len, quoted)) <= ECHO_LIMIT and len(quoted) <= 2, path
        assert re.search(r"… \(\d+ characters\)", answer.text), path  # and says it cut


def test_metrics_can_move_off_the_api_port(tmp_path: Path) -> None:
    # Given `taskpipes serve` told to serve /metrics on a port of its own
    api_port, metrics_port = free_port(), free_port()
    env = service_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'taskpipes.db'}")
    assert run_taskpipes(["db", "upgrade"], env).returncode == 0
    command = [str(VENV_BIN / "taskpipes"), "serve", "--port", str(api_port)]
    command += ["--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port)]
    with process(command, env, tmp_path / "serve.log"):
        api = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: answers(f"{api}/healthz"), 60, "taskpipes serve")
        # Then the API answers, its port has no /metrics, and the other port has them all
        assert get(api, "/api/top").status_code == 200
        assert get(api, "/metrics").status_code == 404
        text = scrape(metrics_port)
        probe = requests.head(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert (probe.status_code, probe.content) == (200, b"")
    assert 'taskpipes_api_request_duration_seconds_count{code="200",route="/api/top"}' in text
