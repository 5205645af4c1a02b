"""GitHub-style fixed-window rate limits per resource and client, on wall-clock time.

A client is its Authorization header, kept only as a hash so the token itself is never
stored, logged or echoed.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

# Window length per resource, seconds (GitHub: search per minute, core per hour).
WINDOWS = {"search": 60, "core": 3600}
# GitHub's default limits, keyed by (resource, authenticated).
DEFAULT_LIMITS = {
    ("search", True): 30,
    ("search", False): 10,
    ("core", True): 5000,
    ("core", False): 60,
}


@dataclass(frozen=True)
class Quota:
    """What the x-ratelimit-* headers report for one response."""

    resource: str
    limit: int
    remaining: int
    reset: int  # epoch seconds, wall-clock

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-used": str(self.limit - self.remaining),
            "x-ratelimit-reset": str(self.reset),
            "x-ratelimit-resource": self.resource,
        }


@dataclass
class Window:
    started: float
    used: int


def client_key(authorization: str | None) -> str:
    if not authorization:
        return "anonymous"
    return hashlib.sha256(authorization.encode("utf-8")).hexdigest()


class RateLimiter:
    """Counts requests per (resource, client) in fixed windows."""

    def __init__(self, search_limit: int | None = None, core_limit: int | None = None) -> None:
        # An explicit limit applies to authenticated and anonymous clients alike.
        self._overrides = {"search": search_limit, "core": core_limit}
        self._windows: dict[tuple[str, str], Window] = {}
        self._lock = threading.Lock()

    def limit(self, resource: str, authorization: str | None) -> int:
        override = self._overrides[resource]
        if override is not None:
            return override
        return DEFAULT_LIMITS[(resource, bool(authorization))]

    def _window(self, resource: str, authorization: str | None, wall: float) -> Window:
        key = (resource, client_key(authorization))
        window = self._windows.get(key)
        if window is None or wall >= window.started + WINDOWS[resource]:
            window = self._windows[key] = Window(started=wall, used=0)
        return window

    def _quota(self, resource: str, authorization: str | None, window: Window) -> Quota:
        limit = self.limit(resource, authorization)
        return Quota(
            resource=resource,
            limit=limit,
            remaining=max(limit - window.used, 0),
            reset=int(window.started + WINDOWS[resource]),
        )

    def peek(self, resource: str, authorization: str | None, wall: float) -> Quota:
        with self._lock:
            window = self._window(resource, authorization, wall)
            return self._quota(resource, authorization, window)

    def consume(self, resource: str, authorization: str | None, wall: float) -> tuple[bool, Quota]:
        """Take one request from the window; False (and nothing taken) when exhausted."""
        with self._lock:
            window = self._window(resource, authorization, wall)
            allowed = window.used < self.limit(resource, authorization)
            window.used += allowed
            return allowed, self._quota(resource, authorization, window)

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
