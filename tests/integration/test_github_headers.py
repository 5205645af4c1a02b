"""What the GitHub client sends, read off the wire by a loopback server playing the API:
the token's exact value, and every header the REST docs ask for."""

from __future__ import annotations

from pipelines.github import GitHubClient
from pipelines.stargazers import STAR_JSON
from tests.foreign_host import foreign_host

TOKEN = "ghp_HEADERMARKER0123456789abcdefghij"


def sent_headers(token: str | None, **get: str) -> dict[str, str]:
    with foreign_host() as api:
        client = GitHubClient(api.url, token, 5)
        try:
            client.get(**get)  # type: ignore[arg-type]
        finally:
            client.close()
        (request,) = api.received
    return {k.lower(): v for k, v in request["headers"].items()}  # type: ignore[attr-defined]


def test_a_search_carries_the_token_and_the_documented_headers() -> None:
    headers = sent_headers(TOKEN, endpoint="search", url="/search/repositories?q=stars:>1")

    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["user-agent"].startswith("taskpipes/")
    assert "if-none-match" not in headers


def test_a_stargazer_page_asks_for_star_json_and_sends_its_etag() -> None:
    headers = sent_headers(
        TOKEN, endpoint="stargazers", url="/repos/a/b/stargazers?page=2", etag='W/"e1"',
        accept=STAR_JSON,
    )  # fmt: skip

    assert headers["accept"] == "application/vnd.github.star+json"
    assert headers["if-none-match"] == 'W/"e1"'
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["x-github-api-version"] == "2022-11-28"


def test_without_a_token_no_authorization_is_sent() -> None:
    headers = sent_headers(None, endpoint="search", url="/search/repositories?q=stars:>1")

    assert "authorization" not in headers
    assert headers["user-agent"].startswith("taskpipes/")


def test_a_stargazer_page_asked_with_its_etag_is_a_free_304(simulator) -> None:
    # GitHub answers If-None-Match on stargazer pages (weak ETags, W/"..."); search answers
    # carry none, so this is where a 304 can really come back.
    client = GitHubClient(simulator.url, None, 5)
    url = "/repos/axios/axios/stargazers?per_page=100&page=1"
    try:
        first = client.get("stargazers", url, accept=STAR_JSON)
        assert first.status == 200 and first.payload and first.etag
        weak = first.etag if first.etag.startswith("W/") else f"W/{first.etag}"
        again = [
            client.get("stargazers", url, etag=tag, accept=STAR_JSON) for tag in (first.etag, weak)
        ]
    finally:
        client.close()

    assert [(p.status, p.payload, p.etag) for p in again] == [(304, None, first.etag)] * 2
    assert simulator.requests()["counts"]["stargazers"]["by_status"] == {"200": 1, "304": 2}
