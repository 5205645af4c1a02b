"""TASKPIPES_TOP_N: github_top ranks N repositories, paging GitHub search (the simulator over
loopback HTTP) one page per hundred, inside one search rate-limit window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import func, select

from db.models import LatestRanking
from githubsim import Simulator
from pipelines.config import TOP_N
from pipelines.github import GitHubClient
from pipelines.github_errors import RateLimited
from pipelines.github_top import fetch_search
from pipelines.normalize import normalize_top
from taskpipes import registry
from taskpipes.declare.settings import ConfigError
from taskpipes.runtime.runner import run_tick
from taskpipes.store.database import begin
from tests.app import snapshot_count
from tests.clirun import configuration_error
from web.api.app import create_app
from web.api.server import serve_in_thread

NOW = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
TIMEOUT_S = 60


@pytest.fixture
def client(simulator: Simulator) -> Iterator[GitHubClient]:
    simulator.set_clock(NOW)
    github = GitHubClient(simulator.url, None, 5)
    yield github
    github.close()


def search_requests(sim: Simulator) -> int:
    return int(sim.requests()["counts"].get("search", {}).get("total", 0))


@pytest.mark.parametrize(("top_n", "pages"), [(1, 1), (100, 1), (250, 3), (1000, 10)])
def test_the_ranking_is_read_one_search_page_per_hundred(
    simulator: Simulator, client: GitHubClient, top_n: int, pages: int
) -> None:
    # When the top N is fetched
    payload, _ = fetch_search(client, top_n)

    # Then one request per hundred brought N distinct repositories, ranked by their counts
    assert search_requests(simulator) == pages
    top = normalize_top(payload, top_n)
    assert len(top.records) == top_n
    assert len({record.id for record in top.records}) == top_n
    stars = [record.stars for record in top.records]
    assert stars == sorted(stars, reverse=True)
    # the first hundred are the bundled top 100, exactly as GitHub's first page lists them
    first_page = simulator.top(NOW, min(top_n, 100))
    assert {r.id for r in top.records[:100]} == {item["id"] for item in first_page}


def test_a_thousand_is_all_github_serves(simulator: Simulator, client: GitHubClient) -> None:
    payload, _ = fetch_search(client, 1000)

    assert len(payload["items"]) == 1000
    assert payload["total_count"] > 1000  # more match the query than search lets one read
    assert search_requests(simulator) == 10


def test_pages_wait_for_a_window_that_holds_them_all() -> None:
    # Given a search quota of 4 requests a minute and a top 300 (3 pages)
    with Simulator(search_limit=4) as sim:
        sim.set_clock(NOW)
        github = GitHubClient(sim.url, None, 5)
        try:
            # When the top 300 is fetched twice in one window
            first, _ = fetch_search(github, 300)
            with pytest.raises(RateLimited) as limited:
                fetch_search(github, 300)
        finally:
            github.close()

        # Then the first read all 3 pages; the second stopped after its first page, which
        # said 0 left for the 2 pages still needed, and waits for the window's reset
        assert len(first["items"]) == 300
        assert sim.requests()["counts"]["search"]["by_status"] == {"200": 4}
        assert 0 < limited.value.wait_seconds <= 60
        assert limited.value.resource == "search"


def test_github_top_ranks_top_n(app_env, sqlite_url, simulator: Simulator) -> None:
    # Given TASKPIPES_TOP_N=250
    app_env(sqlite_url, TASKPIPES_TOP_N="250")
    simulator.set_clock(NOW)

    # When a tick runs
    outcome = run_tick(registry.get("github_top"), NOW, TIMEOUT_S)

    # Then 250 snapshots are stored and the ranking served holds 250, ranked 1..250
    assert outcome.status == "succeeded", outcome.error
    assert snapshot_count() == 250
    with begin() as session:
        ranks = session.scalars(select(LatestRanking.rank).order_by(LatestRanking.rank)).all()
        assert session.scalar(select(func.count()).select_from(LatestRanking)) == 250
    assert list(ranks) == list(range(1, 251))
    assert search_requests(simulator) == 3
    # and the top page, "Top 100", lists the first 100 while /api/top serves them all
    with serve_in_thread(create_app()) as base:
        page = requests.get(f"{base}/", timeout=30).text
        served = requests.get(f"{base}/api/top?limit=1000", timeout=30).json()["repos"]
    top_table = page[page.index('<table id="top">') : page.index("</table>")]
    assert top_table.count('<td class="num rank">') == 100 and len(served) == 250


def test_the_default_is_100() -> None:
    assert TOP_N.load(None) == TOP_N.load("") == 100
    assert TOP_N.load("1000") == 1000


@pytest.mark.parametrize("broken", ["0", "1001", "-5", "ten", "2.5", "1e3"])
def test_a_bad_setting_is_refused_by_name(broken: str) -> None:
    with pytest.raises(ConfigError) as refused:
        TOP_N.load(broken)

    assert str(refused.value) == (
        "TASKPIPES_TOP_N must be a whole number from 1 to 1000 (GitHub search serves at "
        f"most 1,000 results), got {broken!r}"
    )


def test_the_command_stops_on_a_bad_top_n(tmp_path) -> None:
    assert configuration_error(tmp_path, TASKPIPES_TOP_N="5000") == (
        "taskpipes: configuration error: TASKPIPES_TOP_N must be a whole number from 1 to "
        "1000 (GitHub search serves at most 1,000 results), got '5000'"
    )
