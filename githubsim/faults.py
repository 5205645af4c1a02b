"""One-shot fault switches: the next `times` requests of an endpoint misbehave."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

# Endpoints a fault can target (search results, stargazer pages, single repositories).
ENDPOINTS = ("search", "stargazers", "repo")
# Fault name -> its numeric parameters and their defaults.
FAULT_PARAMS: dict[str, dict[str, float]] = {
    "rate_limit_403": {"reset_in": 2},
    "rate_limit_429": {"retry_after": 1},
    # A primary limit answered 429: remaining 0 and a reset, no retry-after.
    "primary_limit_429": {"reset_in": 2},
    # Secondary limits: 403 with the message, quota left; with retry-after or without.
    "secondary_limit": {"retry_after": 1},
    "secondary_limit_no_retry_after": {},
    "server_error": {},
    "stall": {"seconds": 30},
    "malformed_json": {},
    "incomplete_results": {},
    "duplicate_id": {},
    # Links (and, for a repository, a redirect) naming another origin, given as `to`.
    "foreign_link": {},
    # Bad outside data (badbodies.py).
    "bad_gateway_html": {},
    "unavailable": {},
    "connection_reset": {},
    "html_body": {},
    "truncated_body": {},
    # announce=0 sends no content-length: the body ends when the connection closes.
    "huge_body": {"megabytes": 10, "announce": 1},
    "short_page": {},
    "negative_count": {},
    "null_full_name": {},
    "unicode_everywhere": {},
}
# Faults that reshape search results and make no sense elsewhere.
SEARCH_ONLY = (
    "incomplete_results",
    "duplicate_id",
    "short_page",
    "negative_count",
    "null_full_name",
    "unicode_everywhere",
)


class FaultError(ValueError):
    """A fault request the simulator cannot honour; the message is shown to the caller."""


@dataclass
class Fault:
    endpoint: str
    name: str
    times: int
    params: dict[str, float] = field(default_factory=dict)
    to: str | None = None  # the foreign origin of foreign_link

    def describe(self) -> dict[str, Any]:
        described = {"endpoint": self.endpoint, "fault": self.name, "times": self.times}
        return {**described, **self.params, **({"to": self.to} if self.to else {})}


def check_fault(endpoint: str, name: str, times: int) -> None:
    if endpoint not in ENDPOINTS:
        raise FaultError(f"unknown endpoint {endpoint!r}; expected one of {list(ENDPOINTS)}")
    if name not in FAULT_PARAMS:
        raise FaultError(f"unknown fault {name!r}; expected one of {sorted(FAULT_PARAMS)}")
    if name in SEARCH_ONLY and endpoint != "search":
        raise FaultError(f"fault {name!r} only applies to the 'search' endpoint")
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise FaultError("times must be a positive integer")


def fault_params(name: str, given: dict[str, Any]) -> dict[str, float]:
    defaults = FAULT_PARAMS[name]
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = sorted(defaults)
        raise FaultError(f"fault {name!r} takes no parameter(s) {unknown}; known: {known}")
    params = {**defaults, **given}
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise FaultError(f"parameter {key!r} must be a non-negative number")
    return params


def foreign_origin(name: str, params: dict[str, Any]) -> str | None:
    """Take foreign_link's `to` (http(s)://host:port) out of the parameters."""
    if name != "foreign_link":
        return None
    to = params.pop("to", None)
    if not isinstance(to, str) or not to.startswith(("http://", "https://")):
        raise FaultError("fault 'foreign_link' needs 'to': the foreign origin, http(s)://host:port")
    return to.rstrip("/")


class FaultBook:
    """Pending faults per endpoint, applied first-in first-out."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, endpoint: str, name: str, times: int = 1, **params: Any) -> Fault:
        check_fault(endpoint, name, times)
        to = foreign_origin(name, params)
        fault = Fault(endpoint, name, times, fault_params(name, params), to)
        with self._lock:
            self._pending.append(fault)
        return fault

    def take(self, endpoint: str) -> Fault | None:
        """The fault for this request, if any, using up one of its `times`."""
        with self._lock:
            for fault in self._pending:
                if fault.endpoint == endpoint:
                    fault.times -= 1
                    if fault.times == 0:
                        self._pending.remove(fault)
                    return Fault(endpoint, fault.name, 1, dict(fault.params), fault.to)
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.describe() for fault in self._pending]

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
