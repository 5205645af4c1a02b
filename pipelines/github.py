"""The GitHub REST client: headers, timeouts, pagination and rate-limit answers.

It raises RateLimited with GitHub's own wait, TransientError for what backoff can fix and
PermanentError subclasses for the rest. The token is sent, never logged or echoed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from pipelines.errors import GitHubRequestError, MalformedResponse, RateLimited, TransientError
from taskpipes import metrics
from taskpipes.settings import get_settings

USER_AGENT = "taskpipes/0.1 (+https://github.com/taskpipes)"
API_VERSION = "2022-11-28"
# Connect fast or not at all; a search answer can take GitHub several seconds.
CONNECT_TIMEOUT_S = 5.0
# With no usable header GitHub asks for at least a minute of backoff on secondary limits.
SECONDARY_LIMIT_WAIT_S = 60.0


@dataclass(frozen=True)
class Page:
    """One answer: status 200 with a JSON payload, or 304 with none."""

    status: int
    payload: Any
    etag: str | None
    next_url: str | None


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


class GitHubClient:
    def __init__(self, base_url: str, token: str | None, read_timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (CONNECT_TIMEOUT_S, read_timeout)
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": USER_AGENT,
            }
        )
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

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
        if not url.startswith("http"):
            url = self.base_url + url
        try:
            response = self.session.get(url, headers=headers, timeout=self.timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            metrics.github_request(endpoint, type(exc).__name__)
            raise TransientError(f"GitHub {endpoint}: {type(exc).__name__}") from None
        metrics.github_request(endpoint, response.status_code)
        self._record_rate_limit(response)
        return self._page(endpoint, response)

    def _page(self, endpoint: str, response: requests.Response) -> Page:
        status = response.status_code
        headers = {k.lower(): v for k, v in response.headers.items()}
        headers["_body"] = response.text[:200] if status in (403, 429) else ""
        wait = rate_limit_wait(status, headers, datetime.now(UTC))
        if wait is not None:
            raise RateLimited(wait, headers.get("x-ratelimit-resource", endpoint))
        if status >= 500:
            raise TransientError(f"GitHub {endpoint}: HTTP {status}")
        if status == 304:
            return Page(304, None, headers.get("etag"), None)
        if status != 200:
            raise GitHubRequestError(f"GitHub {endpoint}: HTTP {status}: {_message(response)}")
        try:
            payload = response.json()
        except (ValueError, json.JSONDecodeError) as exc:
            raise MalformedResponse(f"GitHub {endpoint} answer is not valid JSON: {exc}") from None
        return Page(200, payload, headers.get("etag"), next_link(headers.get("link")))

    @staticmethod
    def _record_rate_limit(response: requests.Response) -> None:
        remaining = response.headers.get("x-ratelimit-remaining", "")
        reset = response.headers.get("x-ratelimit-reset", "")
        resource = response.headers.get("x-ratelimit-resource", "")
        if remaining.isdigit() and reset.isdigit() and resource.isidentifier():
            metrics.github_ratelimit(resource, int(remaining), float(reset))


def _message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200]
    except (ValueError, AttributeError):
        return response.text[:200]


@contextmanager
def github_client() -> Iterator[GitHubClient]:
    """A client on the configured API and token, closed afterwards: one per message."""
    settings = get_settings()
    client = GitHubClient(settings.github_api_url, settings.github_token, settings.github_timeout)
    try:
        yield client
    finally:
        client.close()
