"""The token goes only to the configured API origin (issue 15, item 1).

A second loopback server plays a foreign host; the simulator's foreign_link fault points a
search `link`, a stargazer `link` or a repository redirect at it. Nothing may arrive there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.github import GitHubClient
from pipelines.github_errors import ForeignOrigin
from taskpipes import registry
from taskpipes.runtime.runner import Outcome, run_tick
from tests.app import snapshot_count
from tests.foreign_host import ForeignHost, foreign_host

TOKEN = "ghp_ORIGINMARKER0123456789abcdefghij"
T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
TIMEOUT_S = 60
REPO = "axios/axios"


@pytest.fixture
def foreign() -> Iterator[ForeignHost]:
    with foreign_host() as host:
        yield host


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("https://evil.example/search?page=2", "https://evil.example:443"),
        ("https://api.github.com:8443/search", "https://api.github.com:8443"),
        ("http://api.github.com/search", "http://api.github.com:80"),
        ("//evil.example/x", "://evil.example"),
    ],
)
def test_a_url_off_the_api_origin_is_refused_naming_its_host(url: str, named: str) -> None:
    client = GitHubClient("https://api.github.com", TOKEN, 5)

    with pytest.raises(ForeignOrigin) as refused:
        client.api_headers("search", url)

    assert named in str(refused.value) and "https://api.github.com:443" in str(refused.value)
    assert TOKEN not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["https://api.github.com/search", "https://API.github.com:443/repositories/1"]
)
def test_the_api_origin_gets_the_token(url: str) -> None:
    client = GitHubClient("https://api.github.com/", TOKEN, 5)

    assert client.api_headers("search", url) == {"Authorization": f"Bearer {TOKEN}"}
    assert GitHubClient("https://api.github.com", None, 5).api_headers("search", url) == {}


def assert_nothing_arrived(foreign: ForeignHost, outcome: Outcome) -> None:
    assert not any(TOKEN in str(request) for request in foreign.received), "the token leaked"
    assert foreign.received == []
    assert TOKEN not in (outcome.error or "")


def test_github_top_refuses_a_search_link_to_another_host(
    app_env, sqlite_url, simulator, foreign
) -> None:
    # Given a stored tick, then a short search page whose `link` names another host
    app_env(sqlite_url, GITHUB_TOKEN=TOKEN)
    simulator.set_clock(T0)
    assert run_tick(registry.get("github_top"), T0, TIMEOUT_S).status == "succeeded"
    simulator.add_fault("search", "foreign_link", to=foreign.url, times=5)

    # When the next tick runs
    later = T0 + timedelta(minutes=10)
    simulator.set_clock(later)
    outcome = run_tick(registry.get("github_top"), later, TIMEOUT_S)

    # Then it fails naming the host, the foreign host received nothing, the stored tick stays
    assert_nothing_arrived(foreign, outcome)
    assert outcome.status == "failed"
    assert f"refusing a URL on {foreign.url}" in (outcome.error or "")
    assert snapshot_count() == 100


def test_stargazers_refuses_a_redirect_to_another_host(
    app_env, sqlite_url, simulator, foreign
) -> None:
    app_env(sqlite_url, GITHUB_TOKEN=TOKEN)
    simulator.set_clock(T0)
    simulator.add_fault("repo", "foreign_link", to=foreign.url)

    outcome = run_tick(registry.get("stargazers"), T0, TIMEOUT_S, {"repo": REPO})

    assert_nothing_arrived(foreign, outcome)
    assert outcome.status == "failed"
    assert f"refusing a URL on {foreign.url}" in (outcome.error or "")


def test_stargazers_pages_never_follow_a_link_to_another_host(
    app_env, sqlite_url, simulator, foreign
) -> None:
    # Given a young repository (3 pages) whose stargazer pages all link elsewhere
    app_env(sqlite_url, GITHUB_TOKEN=TOKEN)
    repo = simulator.state.repos[simulator.state.names.resolve(REPO).repo_id]
    at = datetime.fromtimestamp(repo.curve.starred_at(249) + 1, UTC)
    simulator.set_clock(at)
    simulator.add_fault("stargazers", "foreign_link", to=foreign.url, times=10)
    options = {"repo": REPO, "rate": 1_000_000, "api_rate": 100_000_000}

    outcome = run_tick(registry.get("stargazers"), T0, TIMEOUT_S, options)

    # Then every page came from the API origin only, asked by id as GitHub's links name it
    assert outcome.status == "succeeded", outcome.error
    assert simulator.requests()["counts"]["stargazers"]["by_status"] == {"200": 3}
    assert simulator.requests()["last"]["stargazers"]["path"] == (
        f"/repositories/{repo.id}/stargazers"
    )
    assert_nothing_arrived(foreign, outcome)
