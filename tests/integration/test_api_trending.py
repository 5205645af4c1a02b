"""The trending and history endpoints over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from githubsim import Simulator
from taskpipes import registry
from taskpipes.runtime.runner import run_tick
from taskpipes.store.database import begin
from tests.handmade import AS_OF, HISTORY, at, store

TIMEOUT_S = 60


def get(base: str, path: str, **params: object) -> requests.Response:
    return requests.get(f"{base}{path}", params=params, timeout=10)


@pytest.fixture
def handmade(app_env, database_url: str, api_server: str) -> str:
    """The hand-made history stored and rolled up as of 13:00 by the rollup pipeline."""
    app_env(database_url)
    with begin() as session:
        for tick, stars in HISTORY.items():
            store(session, at(tick), stars, at(tick) + timedelta(seconds=30))
    outcome = run_tick(registry.get("rollup"), AS_OF, TIMEOUT_S)
    assert outcome.status == "succeeded", outcome.error
    return api_server


def test_trending_serves_each_window_as_of_the_newest_rollup(handmade: str) -> None:
    answer = get(handmade, "/api/trending", window="1h")

    assert answer.status_code == 200
    assert answer.json() == {
        "window": "1h",
        "as_of": "2026-08-21T13:00:00Z",
        "repos": [
            {"rank": 1, "id": 1, "full_name": "owner1/repo1", "stars": 140, "stars_gained": 50},
            {"rank": 2, "id": 4, "full_name": "owner4/repo4", "stars": 526, "stars_gained": 26},
            {"rank": 3, "id": 5, "full_name": "owner5/repo5", "stars": 526, "stars_gained": 26},
            {"rank": 4, "id": 3, "full_name": "owner3/repo3", "stars": 71, "stars_gained": 26},
            {"rank": 5, "id": 2, "full_name": "b-owner/b-new", "stars": 221, "stars_gained": 23},
        ],
    }
    for window in ("24h", "7d"):
        repos = get(handmade, "/api/trending", window=window).json()["repos"]
        assert [(r["id"], r["stars_gained"]) for r in repos] == [(1, 130), (2, 71)]
    assert [
        r["id"] for r in get(handmade, "/api/trending", window="1h", limit=2).json()["repos"]
    ] == [1, 4]


@pytest.mark.parametrize(
    "params",
    [{"window": "2h"}, {"window": ""}, {"limit": 0}, {"limit": 101}, {"limit": "many"}],
)
def test_trending_rejects_bad_parameters_with_422(handmade: str, params: dict) -> None:
    answer = get(handmade, "/api/trending", **params)

    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["query", next(iter(params))]


def test_history_follows_a_rename_in_15_minute_buckets(handmade: str) -> None:
    answer = get(handmade, "/api/repos/b-owner/b-new/history", since="2026-08-21T12:00:00Z")

    assert answer.status_code == 200
    assert answer.json() == {
        "id": 2,
        "full_name": "b-owner/b-new",
        "bucket": "15m",
        "as_of": "2026-08-21T13:00:00Z",
        "points": [
            {"start": "2026-08-21T12:00:00Z", "stars": 205, "stars_gained": 7},
            {"start": "2026-08-21T12:15:00Z", "stars": 206, "stars_gained": 1},
            {"start": "2026-08-21T12:30:00Z", "stars": 220, "stars_gained": 14},
            {"start": "2026-08-21T12:45:00Z", "stars": 221, "stars_gained": 1},
        ],
    }
    old = get(handmade, "/api/repos/b-owner/b/history")
    assert old.status_code == 404
    assert old.json() == {"detail": "repository b-owner/b not found"}


def points(answer: requests.Response) -> list[tuple]:
    assert answer.status_code == 200, answer.text
    return [(p["start"], p["stars"], p["stars_gained"]) for p in answer.json()["points"]]


def test_history_merges_hours_and_days_and_defaults_to_the_last_week(handmade: str) -> None:
    path = "/api/repos/owner1/repo1/history"
    # The default window is the 7 days before as_of: the 2026-08-14 tick is outside.
    assert points(get(handmade, path, bucket="1h")) == [
        ("2026-08-21T11:00:00Z", 90, 80),
        ("2026-08-21T12:00:00Z", 140, 50),
    ]
    assert points(get(handmade, path, bucket="1d", since="2026-08-01")) == [
        ("2026-08-14T00:00:00Z", 10, None),
        ("2026-08-21T00:00:00Z", 140, 130),
    ]
    # C's first snapshot is in this day: no gain. It was missing at 12:20 and 12:30.
    assert points(get(handmade, "/api/repos/owner3/repo3/history", bucket="1d")) == [
        ("2026-08-21T00:00:00Z", 71, None)
    ]
    assert points(get(handmade, "/api/repos/owner3/repo3/history", since="2026-08-21T12:00")) == [
        ("2026-08-21T12:00:00Z", 55, 10),
        ("2026-08-21T12:30:00Z", 70, 15),
        ("2026-08-21T12:45:00Z", 71, 1),
    ]
    assert points(get(handmade, path, until="2026-08-21T12:15:00+00:00")) == [
        ("2026-08-21T11:45:00Z", 90, 80),
        ("2026-08-21T12:00:00Z", 110, 20),
    ]
    assert points(get(handmade, path, since="2026-08-22T00:00:00Z", until="2026-08-21")) == []


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/repos/owner1/repo1/history", {"bucket": "2h"}, 422),
        ("/api/repos/owner1/repo1/history", {"since": "yesterday"}, 422),
        ("/api/repos/owner1/repo1/history", {"until": "2026-13-45"}, 422),
        ("/api/repos/owner1/repo1/history", {"since": "0001-01-01T00:00:00+05:00"}, 200),
        ("/api/repos/owner1/repo1/history", {"until": "0001-01-01T00:00:00"}, 200),
        ("/api/repos/owner1/repo1/history", {"until": "9999-12-31T23:59:59-05:00"}, 200),
        ("/api/repos/no%00body/x/history", {}, 404),
        ("/api/repos/%ED%A0%80/x/history", {}, 404),
        ("/api/repos/%FF%FE/x/history", {}, 404),
        ("/api/repos/" + "o" * 300 + "/x/history", {}, 404),
        ("/api/repos/owner1/repo1%2Fx/history", {}, 404),
    ],
)
def test_history_answers_odd_input_without_a_server_error(
    handmade: str, path: str, params: dict, status: int
) -> None:
    answer = requests.get(f"{handmade}{path}", params=params, timeout=10)

    assert answer.status_code == status, answer.text
    if status == 422:
        assert answer.json()["detail"][0]["loc"][0] == "query"


def test_before_any_rollup_the_answers_are_empty(
    app_env, database_url: str, api_server: str
) -> None:
    app_env(database_url)
    with begin() as session:
        store(session, at("2026-08-21 12:00"), {1: 10}, at("2026-08-21 12:01"))

    assert get(api_server, "/api/trending").json() == {"window": "24h", "as_of": None, "repos": []}
    history = get(api_server, "/api/repos/owner1/repo1/history").json()
    assert history == {
        "id": 1,
        "full_name": "owner1/repo1",
        "bucket": "15m",
        "as_of": None,
        "points": [],
    }


def test_openapi_describes_the_responses(app_env, sqlite_url: str, api_server: str) -> None:
    app_env(sqlite_url)
    schema = get(api_server, "/openapi.json").json()

    assert {"TrendingResponse", "TrendingRepo", "HistoryResponse", "HistoryPoint"} <= set(
        schema["components"]["schemas"]
    )
    history = schema["paths"]["/api/repos/{owner}/{name}/history"]["get"]
    assert {"200", "404", "422"} <= set(history["responses"])


def test_github_top_then_rollup_then_trending_end_to_end(
    app_env, sqlite_url: str, simulator: Simulator, api_server: str
) -> None:
    # Given github_top run every 10 minutes from 11:50 to 12:50 against the simulator
    app_env(sqlite_url)
    first = at("2026-08-21 11:50")
    ticks = [first + timedelta(minutes=10 * i) for i in range(7)]
    for tick in ticks:
        simulator.set_clock(tick)
        assert run_tick(registry.get("github_top"), tick, TIMEOUT_S).status == "succeeded"

    # When the rollup runs for 13:00
    outcome = run_tick(registry.get("rollup"), AS_OF, TIMEOUT_S)

    # Then the API ranks the top list of 12:50 by its gain since 11:50
    assert outcome.status == "succeeded", outcome.error
    assert [stage for stage, *_ in outcome.stages] == ["buckets", "trending", "pages"]
    before = {i["id"]: i["stargazers_count"] for i in simulator.top(first)}
    now = simulator.top(ticks[-1])
    expected = sorted(
        (
            (
                i["stargazers_count"] - before[i["id"]],
                i["stargazers_count"],
                i["id"],
                i["full_name"],
            )
            for i in now
            if i["id"] in before
        ),
        key=lambda row: (-row[0], -row[1], row[2]),
    )[:10]
    answer = get(api_server, "/api/trending", window="1h", limit=10).json()
    assert answer["as_of"] == "2026-08-21T13:00:00Z"
    assert [
        (r["stars_gained"], r["stars"], r["id"], r["full_name"]) for r in answer["repos"]
    ] == expected
