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
