"""The GitHub simulator over real HTTP on loopback (requests against a port-0 Simulator)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from githubsim import Simulator, identity
from githubsim.catalog import build_catalog
from githubsim.data import load_repos
from githubsim.longtail import TAIL_SIZE

AUG_15 = datetime(2026, 8, 15, tzinfo=UTC)
AUG_20 = datetime(2026, 8, 20, 12, tzinfo=UTC)
AUG_22 = datetime(2026, 8, 22, tzinfo=UTC)
STAR_JSON = {"Accept": "application/vnd.github.star+json"}
TOP_QUERY = {"q": "stars:>1000", "sort": "stars", "order": "desc", "per_page": 100}
ITEM_FIELDS = {
    "id", "node_id", "name", "full_name", "owner", "private", "html_url", "description",
    "fork", "created_at", "updated_at", "pushed_at", "stargazers_count", "watchers_count",
    "forks_count", "open_issues_count", "language", "license", "topics", "archived",
    "default_branch", "score",
}  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[Simulator]:
    with Simulator(search_limit=10_000, core_limit=100_000) as sim:
        yield sim


@pytest.fixture
def sim(server: Simulator) -> Iterator[Simulator]:
    server.reset()
    server.set_clock(AUG_20)
    yield server
    server.reset()


def search(sim: Simulator, **params: object) -> requests.Response:
    return requests.get(f"{sim.url}/search/repositories", params={**TOP_QUERY, **params})


def stargazer_page(sim: Simulator, full_name: str, page: int, per_page: int = 100) -> list[dict]:
    url = f"{sim.url}/repos/{full_name}/stargazers"
    response = requests.get(url, params={"per_page": per_page, "page": page}, headers=STAR_JSON)
    assert response.status_code == 200
    return response.json()


def test_search_returns_top_100_unique_with_all_fields(sim: Simulator) -> None:
    response = search(sim)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    items = body["items"]
    # the bundled 103 and the generated long tail (githubsim.longtail)
    assert body["incomplete_results"] is False and body["total_count"] == 103 + TAIL_SIZE
    assert len({item["id"] for item in items}) == 100
    stars = [item["stargazers_count"] for item in items]
    assert all(isinstance(s, int) for s in stars)
    assert all(ITEM_FIELDS <= item.keys() for item in items)
    assert items == sim.top(AUG_20)
    assert any(item["language"] is None for item in items)
    assert any("😎" in (item["description"] or "") for item in items)


def test_stars_grow_between_sim_times_and_ids_are_stable(sim: Simulator) -> None:
    before = {item["full_name"]: item for item in search(sim).json()["items"]}
    sim.set_clock(AUG_22)
    after = {item["full_name"]: item for item in search(sim).json()["items"]}

    common = before.keys() & after.keys()
    assert len(common) >= 95
    assert all(after[name]["id"] == before[name]["id"] for name in common)
    assert all(
        after[name]["stargazers_count"] >= before[name]["stargazers_count"] for name in common
    )
    assert sum(after[n]["stargazers_count"] - before[n]["stargazers_count"] for n in common) > 0


def test_stars_follow_the_snapshot_data_on_snapshot_days(sim: Simulator) -> None:
    sim.set_clock(AUG_15)
    repo = requests.get(f"{sim.url}/repos/codecrafters-io/build-your-own-x").json()
    assert repo["stargazers_count"] == 539779
    assert sim.stargazers("codecrafters-io/build-your-own-x", AUG_15) == 539779


def inversions(items: list[dict]) -> int:
    stars = [item["stargazers_count"] for item in items]
    return sum(1 for i, a in enumerate(stars) for b in stars[i + 1 :] if b > a)


def test_search_order_lags_the_counts_it_reports_as_github_does(sim: Simulator) -> None:
    # Given the default index lag: some neighbours come out of order, as on GitHub
    at_default = inversions(search(sim).json()["items"])

    # When the index lags three days, then not at all
    sim.set_index_lag(3 * 24 * 3600)
    lagging = search(sim).json()["items"]
    sim.set_index_lag(0)
    exact = search(sim).json()["items"]

    # Then more pairs are out of order, then none; the counts reported stay the live ones
    assert 0 < at_default < inversions(lagging)
    assert inversions(exact) == 0
    live = {item["id"]: item["stargazers_count"] for item in exact}
    assert all(
        live[item["id"]] == item["stargazers_count"] for item in lagging if item["id"] in live
    )


def test_index_lag_switch_over_the_control_api(sim: Simulator) -> None:
    url = f"{sim.url}/_sim/index-lag"

    assert requests.put(url, json={"max_lag_seconds": 0}).json() == {"max_lag_seconds": 0}
    assert inversions(search(sim).json()["items"]) == 0
    refused = requests.put(url, json={"max_lag_seconds": -1})
    assert refused.status_code == 400 and "non-negative" in refused.json()["message"]
    sim.reset()
    assert inversions(search(sim).json()["items"]) > 0


def test_top_100_membership_changes_over_time(sim: Simulator) -> None:
    # The bundled data keeps the same 100 repos from Aug 15 to Aug 22 (only the order
    # changes); with their growth rates, browser-use overtakes tauri in early September.
    def members(at: datetime) -> set[str]:
        return {item["full_name"] for item in sim.top(at)}

    later = datetime(2026, 9, 15, tzinfo=UTC)
    assert members(AUG_22) != members(later)
    sim.set_clock(later)
    served = {item["full_name"] for item in search(sim).json()["items"]}
    assert served == members(later)
    assert "browser-use/browser-use" in served - members(AUG_22)


def test_link_header_pages_through_all_results(sim: Simulator) -> None:
    url, seen, pages = f"{sim.url}/search/repositories", [], 0
    params: dict | None = {"q": "stars:>0", "per_page": 30}
    first = requests.get(url, params=params)
    assert 'rel="next"' in first.headers["link"] and 'rel="last"' in first.headers["link"]
    assert 'rel="prev"' not in first.headers["link"]
    while url:
        response = requests.get(url, params=params)
        seen += [item["id"] for item in response.json()["items"]]
        url, params, pages = response.links.get("next", {}).get("url"), None, pages + 1
    # 1,203 match, and search serves the first 1,000 of them: 34 pages of 30
    assert pages == 34 and len(seen) == len(set(seen)) == 1000
    assert response.links["first"]["url"].endswith("page=1")
    assert response.links["prev"]["url"].startswith(sim.url)


def test_search_has_no_etag_and_is_never_answered_304(sim: Simulator) -> None:
    first = search(sim)

    again = requests.get(
        f"{sim.url}/search/repositories", params=TOP_QUERY, headers={"If-None-Match": "*"}
    )

    assert "etag" not in first.headers and first.headers["cache-control"] == "no-cache"
    assert again.status_code == 200 and again.json() == first.json()


def test_a_stargazer_page_weak_etag_304_does_not_count_against_the_limit(
    sim: Simulator,
) -> None:
    url = f"{sim.url}/repos/axios/axios/stargazers"
    first = requests.get(url, params={"per_page": 100}, headers=STAR_JSON)
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and etag.endswith('"')

    again = requests.get(
        url, params={"per_page": 100}, headers={**STAR_JSON, "If-None-Match": etag}
    )

    assert again.status_code == 304 and again.content == b""
    assert again.headers["x-ratelimit-remaining"] == first.headers["x-ratelimit-remaining"]
    assert sim.requests()["last"]["stargazers"]["if_none_match"] is True


def test_stargazer_headers_are_githubs(sim: Simulator) -> None:
    repo_id = sim.state.names.resolve("axios/axios").repo_id
    url = f"{sim.url}/repos/axios/axios/stargazers"

    starred = requests.get(url, params={"per_page": 100, "page": 2}, headers=STAR_JSON)
    plain = requests.get(url, params={"per_page": 100, "page": 2})

    assert starred.headers["x-github-media-type"] == "github.v3; param=star; format=json"
    assert plain.headers["x-github-media-type"] == "github.v3; format=json"
    by_id = f"{sim.url}/repositories/{repo_id}/stargazers?per_page=100&page="
    assert starred.links["next"]["url"] == by_id + "3"
    assert starred.links["prev"]["url"] == by_id + "1"
    followed = requests.get(starred.links["next"]["url"], headers=STAR_JSON)
    assert followed.status_code == 200 and len(followed.json()) == 100


@pytest.mark.parametrize(
    ("fault", "status"),
    [("rate_limit_403", 403), ("rate_limit_429", 429), ("server_error", 500)],
)
def test_error_faults_hit_the_next_request_only(sim: Simulator, fault: str, status: int) -> None:
    sim.add_fault("search", fault)

    before = time.time()
    failed = search(sim)
    after = time.time()

    assert failed.status_code == status
    assert "message" in failed.json()
    if fault == "rate_limit_403":
        assert failed.headers["x-ratelimit-remaining"] == "0"
        # The reset is the fault's 2 s after the moment it answered, in whole epoch seconds
        assert int(before + 2) <= int(failed.headers["x-ratelimit-reset"]) <= int(after + 2)
        assert "retry-after" not in failed.headers
    if fault == "rate_limit_429":
        assert failed.headers["retry-after"] == "1"
    assert search(sim).status_code == 200


def test_stall_fault_outlasts_the_client_timeout(sim: Simulator) -> None:
    sim.add_fault("stargazers", "stall", seconds=5)
    with pytest.raises(requests.Timeout):
        requests.get(f"{sim.url}/repos/axios/axios/stargazers", timeout=0.3)
    sim.reset()  # wakes the stalled handler
    assert requests.get(f"{sim.url}/repos/axios/axios/stargazers", timeout=2).status_code == 200


def test_malformed_json_fault(sim: Simulator) -> None:
    sim.add_fault("search", "malformed_json")
    response = search(sim)
    assert response.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_incomplete_results_fault_drops_a_large_repo(sim: Simulator) -> None:
    sim.add_fault("search", "incomplete_results")
    body = search(sim).json()
    assert body["incomplete_results"] is True
    assert len(body["items"]) == 99
    assert sim.top(AUG_20)[0]["id"] not in {item["id"] for item in body["items"]}


def test_duplicate_id_fault_repeats_an_id(sim: Simulator) -> None:
    sim.add_fault("search", "duplicate_id")
    items = search(sim).json()["items"]
    assert len(items) == 100 and len({item["id"] for item in items}) == 99


def test_exhausted_limit_answers_403_with_headers() -> None:
    with Simulator(search_limit=3) as sim:
        token = {"Authorization": "Bearer sekrit-token-123"}
        before = time.time()
        answers = [search(sim) for _ in range(3)]
        blocked = requests.get(f"{sim.url}/search/repositories", params=TOP_QUERY, headers=token)
        anonymous = search(sim)
        after = time.time()
        log = sim.requests()

    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0"]
    assert anonymous.status_code == 403
    assert "API rate limit exceeded" in anonymous.json()["message"]
    headers = anonymous.headers
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("3", "0")
    assert (headers["x-ratelimit-used"], headers["x-ratelimit-resource"]) == ("3", "search")
    # The window opened with the first request and lasts the search limit's minute
    assert int(before + 60) <= int(headers["x-ratelimit-reset"]) <= int(after + 60)
    # The token is its own client with a fresh window; its value never comes back.
    assert blocked.status_code == 200
    assert "sekrit" not in str(log) and log["counts"]["search"]["by_status"]["403"] == 1


def test_rename_keeps_the_id_and_redirects_the_old_name(sim: Simulator) -> None:
    original = requests.get(f"{sim.url}/repos/axios/axios").json()

    renamed = requests.post(
        f"{sim.url}/_sim/rename", json={"from": "axios/axios", "to": "axios-org/axios"}
    )

    assert renamed.status_code == 200 and renamed.json()["id"] == original["id"]
    fresh = requests.get(f"{sim.url}/repos/axios-org/axios").json()
    assert (fresh["id"], fresh["full_name"]) == (original["id"], "axios-org/axios")
    old = requests.get(f"{sim.url}/repos/axios/axios")
    assert old.history[0].status_code == 301
    assert old.json()["id"] == original["id"]


def test_stargazers_total_equals_stars_at_the_clock(sim: Simulator) -> None:
    # Given a clock one second after the 250th star, early in the repo's life
    name = "axios/axios"
    star_250 = stargazer_page(sim, name, page=3)[49]["starred_at"]
    sim.set_clock(datetime.fromisoformat(star_250) + timedelta(seconds=1))
    now = datetime.fromisoformat(star_250) + timedelta(seconds=1)
    # When listing every page
    listed = [entry for page in (1, 2, 3, 4) for entry in stargazer_page(sim, name, page)]
    # Then the list is exactly the repo's star count, all given by now
    stars = requests.get(f"{sim.url}/repos/{name}").json()["stargazers_count"]
    assert stars == len(listed) == 250
    assert datetime.fromisoformat(listed[-1]["starred_at"]) <= now
    assert stargazer_page(sim, name, page=251, per_page=1) == []


def test_stargazer_pagination_is_capped_at_400_pages(sim: Simulator) -> None:
    url = f"{sim.url}/repos/axios/axios/stargazers"
    last_page = requests.get(url, params={"per_page": 100, "page": 400})
    too_far = requests.get(url, params={"per_page": 100, "page": 401})

    assert last_page.status_code == 200 and len(last_page.json()) == 100
    assert too_far.status_code == 422
    assert "pagination is limited" in too_far.json()["message"]
    first = requests.get(url, params={"per_page": 100})
    assert first.links["last"]["url"].endswith("page=400")
    assert set(first.json()[0]) >= {"login", "id", "type"}  # plain users without star+json


def test_stargazer_ids_never_collide_within_a_repo(sim: Simulator) -> None:
    # 40,000 hashed ids would collide with ~33% odds; the ids are a bijection of the index.
    repo = build_catalog(load_repos())[identity.repo_id("axios/axios")]
    ids = [identity.stargazer_id(repo.id, index) for index in range(40_000)]
    assert len(set(ids)) == len(ids)
    assert all(1 <= number <= identity.MAX_ID for number in ids)
    pages = [stargazer_page(sim, "axios/axios", page) for page in (1, 2)]
    listed = [entry["user"]["id"] for page in pages for entry in page]
    assert listed == ids[:200]


def test_starred_at_is_ordered_and_stable_across_clock_changes(sim: Simulator) -> None:
    page = stargazer_page(sim, "microsoft/TypeScript", page=7)
    sim.set_clock(AUG_22)
    later = stargazer_page(sim, "microsoft/TypeScript", page=7)

    times = [entry["starred_at"] for entry in page]
    assert times == sorted(times) and page == later


def test_star_curve_inverse_agrees_with_the_count() -> None:
    for repo in list(build_catalog(load_repos()).values())[:10]:
        for index in (0, 1, 999, 123_456, repo.stars_at(int(AUG_22.timestamp()))):
            starred = repo.curve.starred_at(index)
            assert starred is not None
            assert repo.stars_at(starred) >= index + 1 > repo.stars_at(starred - 1)


def test_control_api_and_request_log(sim: Simulator) -> None:
    clock = requests.put(f"{sim.url}/_sim/clock", json={"now": "2026-08-21T00:00:00Z"})
    unknown = requests.post(f"{sim.url}/_sim/faults", json={"endpoint": "search", "fault": "x"})
    added = requests.post(
        f"{sim.url}/_sim/faults",
        json={"endpoint": "search", "fault": "rate_limit_429", "retry_after": 7},
    )
    limited = search(sim, per_page=5)
    requests.get(
        f"{sim.url}/repos/axios/axios",
        headers={"Authorization": "token abc", "User-Agent": "taskpipes-test"},
    )

    assert clock.json()["now"] == "2026-08-21T00:00:00Z"
    assert unknown.status_code == 400 and "unknown fault" in unknown.json()["message"]
    assert added.status_code == 201 and limited.headers["retry-after"] == "7"
    log = requests.get(f"{sim.url}/_sim/requests").json()
    assert log["counts"]["search"]["by_status"] == {"429": 1}
    last_repo = log["last"]["repo"]
    assert last_repo["authorization"] is True and last_repo["if_none_match"] is False
    assert last_repo["user_agent"] == "taskpipes-test" and "abc" not in str(log)
    assert requests.post(f"{sim.url}/_sim/reset").status_code == 200
    assert requests.get(f"{sim.url}/_sim/requests").json()["counts"] == {}


def test_errors_are_github_shaped(sim: Simulator) -> None:
    unknown_repo = requests.get(f"{sim.url}/repos/nobody/nothing")
    unknown_path = requests.get(f"{sim.url}/no/such/path")
    bad_query = requests.get(f"{sim.url}/search/repositories", params={"q": "language:go"})

    assert unknown_repo.status_code == unknown_path.status_code == 404
    assert unknown_repo.json()["message"] == "Not Found"
    assert bad_query.status_code == 422 and bad_query.json()["message"] == "Validation Failed"
    assert "x-ratelimit-remaining" in unknown_repo.headers
