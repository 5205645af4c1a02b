"""The GitHub REST client: headers, timeouts, pagination and rate-limit answers.

It raises RateLimited with GitHub's own wait, TransientError for what backoff can fix and
PermanentError subclasses for the rest. The token is sent only to the configured API
origin (scheme, host and port of GITHUB_API_URL), never logged or echoed: a `link`, a
redirect or a stored URL naming any other origin is refused before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from pipelines import github_metrics
from pipelines.config import GITHUB_API_URL, GITHUB_TIMEOUT, GITHUB_TOKEN
from pipelines.github_body import error_message, parse_json, read_body
from pipelines.github_errors import (
    ForeignOrigin,
    GitHubRequestError,
    MalformedResponse,
    RateLimited,
    TransientError,
)
from taskpipes.declare import clock

USER_AGENT = "taskpipes/0.1 (+https://github.com/taskpipes)"
API_VERSION = "2022-11-28"
# Connect fast or not at all; a search answer can take GitHub several seconds.
CONNECT_TIMEOUT_S = 5.0
# With no usable header GitHub asks for at least a minute of backoff on secondary limits.
SECONDARY_LIMIT_WAIT_S = 60.0
# GitHub redirects a renamed repository once; more hops than this is a loop.
MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Page:
    """One answer: status 200 with a JSON payload, or 304 with none; and the requests left
    in this rate-limit window, with the window's reset (epoch seconds), when GitHub said."""

    status: int
    payload: Any
    etag: str | None
    next_url: str | None
    remaining: int | None = None
    reset: int | None = None


def rate_limit_wait(status: int, headers: dict[str, str], now: datetime) -> float | None:
    """Seconds to wait before asking again, or None when this is no rate-limit answer."""
    if status not in (403, 429):
        return None
    retry_after = headers.get("retry-after")
    if retry_after is not None and retry_after.strip().isdigit():
        return float(retry_after)
    if headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            return max(1.0, int(reset) - now.timestamp())
    if status == 429 or "rate limit" in headers.get("_body", "").lower():
        return SECONDARY_LIMIT_WAIT_S
    return None


def next_link(link_header: str | None) -> str | None:
    """The rel="next" URL of a `link` header."""
    for part in (link_header or "").split(","):
        url, _, params = part.partition(";")
        if 'rel="next"' in params:
            return url.strip().strip("<>")
    return None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: what a token binds to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def failed(endpoint: str, url: str, what: str) -> str:
    """A request's failure, naming the method and the host (never the token, which rides
    in a header, nor the path)."""
    return f"GitHub {endpoint}: {what} ({request_of(url)})"


def request_of(url: str) -> str:
    _, host, port = origin(url)
    return f"GET {host}" + (f":{port}" if port else "")


def show_origin(url: str) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{host}" + (f":{port}" if port else "")


class GitHubClient:
    def __init__(self, base_url: str, token: str | None, read_timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.origin = origin(self.base_url)
        self.timeout = (CONNECT_TIMEOUT_S, read_timeout)
        # Kept off the session, which would send it to any URL: see api_headers.
        self._authorization = f"Bearer {token}" if token else None
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": USER_AGENT,
            }
        )

    def close(self) -> None:
        self.session.close()

    def get(
        self, endpoint: str, url: str, etag: str | None = None, accept: str | None = None
    ) -> Page:
        """GET one page. `endpoint` is a bounded metric label such as "search"."""
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if accept:
            headers["Accept"] = accept
        url = self.base_url + url if url.startswith("/") else url
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(endpoint, url, headers)
            location = response.headers.get("location")
            if response.status_code not in REDIRECTS or not location:
                return self._page(endpoint, response)
            response.close()
            url = urljoin(url, location)
        raise GitHubRequestError(failed(endpoint, url, f"more than {MAX_REDIRECTS} redirects"))

    def api_headers(self, endpoint: str, url: str) -> dict[str, str]:
        """The token for the API origin; any other origin is refused, token or not."""
        if origin(url) != self.origin:
            raise ForeignOrigin(
                f"GitHub {endpoint}: refusing a URL on {show_origin(url)}, which is not the "
                f"configured API origin {show_origin(self.base_url)} (GITHUB_API_URL)"
            )
        return {"Authorization": self._authorization} if self._authorization else {}

    def _send(self, endpoint: str, url: str, headers: dict[str, str]) -> requests.Response:
        headers = {**headers, **self.api_headers(endpoint, url)}
        try:
            response = self.session.get(
                url, headers=headers, timeout=self.timeout, allow_redirects=False, stream=True
            )
        except (requests.Timeout, requests.ConnectionError) as exc:
            github_metrics.github_request(endpoint, type(exc).__name__)
            raise TransientError(failed(endpoint, url, type(exc).__name__)) from None
        github_metrics.github_request(endpoint, response.status_code)
        self._record_rate_limit(response)
        return response

    def _page(self, endpoint: str, response: requests.Response) -> Page:
        status = response.status_code
        headers = {k.lower(): v for k, v in response.headers.items()}
        if status >= 500:
            response.close()
            raise TransientError(failed(endpoint, response.url, f"HTTP {status}"))
        body = read_body(endpoint, response)
        headers["_body"] = body[:200].decode("utf-8", "replace") if status in (403, 429) else ""
        wait = rate_limit_wait(status, headers, clock.now())
        if wait is not None:
            raise RateLimited(wait, headers.get("x-ratelimit-resource", endpoint))
        if status == 304:
            return Page(304, None, headers.get("etag"), None)
        if status != 200:
            raise GitHubRequestError(
                failed(endpoint, response.url, f"HTTP {status}: {error_message(body)}")
            )
        try:
            payload = parse_json(endpoint, body, headers.get("content-type", ""))
        except MalformedResponse as exc:
            raise MalformedResponse(f"{exc} ({request_of(response.url)})") from None
        remaining, reset = (
            headers.get("x-ratelimit-remaining", ""),
            headers.get("x-ratelimit-reset", ""),
        )
        return Page(
            200,
            payload,
            headers.get("etag"),
            next_link(headers.get("link")),
            int(remaining) if remaining.isdigit() else None,
            int(reset) if reset.isdigit() else None,
        )

    @staticmethod
    def _record_rate_limit(response: requests.Response) -> None:
        remaining = response.headers.get("x-ratelimit-remaining", "")
        reset = response.headers.get("x-ratelimit-reset", "")
        resource = response.headers.get("x-ratelimit-resource", "")
        if remaining.isdigit() and reset.isdigit() and resource.isidentifier():
            github_metrics.github_ratelimit(resource, int(remaining), float(reset))


@contextmanager
def github_client() -> Iterator[GitHubClient]:
    """A client on the configured API and token, closed afterwards: one per message."""
    client = GitHubClient(GITHUB_API_URL.get(), GITHUB_TOKEN.get(), GITHUB_TIMEOUT.get())
    try:
        yield client
    finally:
        client.close()
