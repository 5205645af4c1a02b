"""The GitHub client against the simulator over loopback HTTP: rate limits, caps, bad bodies.

Each answer shape is one the simulator serves as GitHub (or a broken network) sends it;
the client must turn each into a wait, a retry or a clear permanent error.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from githubsim import Simulator
from pipelines.github import GitHubClient, rate_limit_wait
from pipelines.github_body import MAX_BODY_BYTES
from pipelines.github_errors import (
    GitHubRequestError,
    MalformedResponse,
    RateLimited,
    ResponseTooLarge,
    TransientError,
)

SEARCH = "/search/repositories?q=stars:>50000&sort=stars&order=desc&per_page=100"
NOW = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def sim(simulator: Simulator) -> Simulator:
    simulator.set_clock(NOW)
    return simulator


@pytest.fixture
def client(sim: Simulator) -> Iterator[GitHubClient]:
    github = GitHubClient(sim.url, None, 5)
    yield github
    github.close()


# --- rate limits as GitHub sends them ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1787313630"}, 30.0),
        (429, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1787313610"}, 10.0),
        (403, {"retry-after": "7", "x-ratelimit-remaining": "4000"}, 7.0),
        (
            403,
            {"x-ratelimit-remaining": "12", "_body": "You have exceeded a secondary rate limit"},
            60.0,
        ),
        (429, {}, 60.0),
        (403, {"x-ratelimit-remaining": "12", "_body": "Resource not accessible"}, None),
        (422, {"retry-after": "7"}, None),
    ],
)
def test_rate_limit_wait_reads_githubs_headers(
    status: int, headers: dict[str, str], wait: float | None
) -> None:
    assert rate_limit_wait(status, headers, NOW) == wait


@pytest.mark.parametrize(
    ("fault", "params", "low", "high"),
    [
        ("rate_limit_403", {"reset_in": 30}, 28, 30),
        ("primary_limit_429", {"reset_in": 30}, 28, 30),
        ("secondary_limit", {"retry_after": 7}, 7, 7),
        ("secondary_limit_no_retry_after", {}, 60, 60),
        ("rate_limit_429", {"retry_after": 3}, 3, 3),
    ],
)
def test_every_rate_limit_shape_becomes_githubs_wait(
    sim: Simulator, client: GitHubClient, fault: str, params: dict[str, Any], low: int, high: int
) -> None:
    sim.add_fault("search", fault, **params)

    with pytest.raises(RateLimited) as limited:
        client.get("search", SEARCH)

    assert low <= limited.value.wait_seconds <= high
    assert limited.value.resource == "search"


def test_a_secondary_limit_is_a_403_with_quota_left(sim: Simulator) -> None:
    sim.add_fault("search", "secondary_limit", retry_after=7)

    answer = requests.get(sim.url + SEARCH, timeout=10)

    assert answer.status_code == 403 and answer.headers["retry-after"] == "7"
    assert int(answer.headers["x-ratelimit-remaining"]) > 0
    assert "secondary rate limit" in answer.json()["message"]


def test_search_beyond_1000_results_is_a_422_named_clearly(client: GitHubClient) -> None:
    with pytest.raises(GitHubRequestError, match="HTTP 422: .*Only the first 1000 search results"):
        client.get("search", "/search/repositories?q=stars:>1&per_page=100&page=11")


# --- bad bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        ("server_error", TransientError, "HTTP 500"),
        ("bad_gateway_html", TransientError, "HTTP 502"),
        ("unavailable", TransientError, "HTTP 503"),
        ("connection_reset", TransientError, "ConnectionError"),
        ("truncated_body", TransientError, "answer cut off"),
        ("malformed_json", MalformedResponse, r"not valid JSON \(application/json"),
        ("html_body", MalformedResponse, r"not valid JSON \(text/html"),
        ("huge_body", ResponseTooLarge, "10485760 bytes announced"),
    ],
)
def test_a_broken_answer_is_a_named_error(
    sim: Simulator, client: GitHubClient, fault: str, error: type[Exception], message: str
) -> None:
    sim.add_fault("search", fault)

    with pytest.raises(error, match=message):
        client.get("search", SEARCH)

    # And the next answer, sound again, is read on the same client.
    assert len(client.get("search", SEARCH).payload["items"]) == 100


# Reads a 10 MB body sent without content-length in a process of its own, so that only
# the client's allocations are traced, and prints the traced peak in bytes.
READ_UNANNOUNCED = """
import sys, tracemalloc
from pipelines.github_errors import ResponseTooLarge
from pipelines.github import GitHubClient
client = GitHubClient(sys.argv[1], None, 10)
tracemalloc.start()
try:
    client.get("search", sys.argv[2])
except ResponseTooLarge as exc:
    print(exc, file=sys.stderr)
print(tracemalloc.get_traced_memory()[1])
"""


def test_a_10_mb_body_is_cut_at_the_cap_with_memory_bounded(sim: Simulator) -> None:
    # Given a 10 MB answer that does not announce its length
    sim.add_fault("search", "huge_body", megabytes=10, announce=0)

    # When a client reads it
    result = subprocess.run(
        [sys.executable, "-c", READ_UNANNOUNCED, sim.url, SEARCH],
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then it stops at the cap, saying so, having held little more than the cap
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < MAX_BODY_BYTES * 1.5
    assert f"exceeds {MAX_BODY_BYTES} bytes (more than that sent)" in result.stderr
