"""What clients sent: counts per endpoint and status, and the last request's headers.

Only the presence of Authorization and If-None-Match is kept, never their values.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any


def header_facts(headers: Mapping[str, str], path: str, status: int) -> dict[str, Any]:
    return {
        "path": path,
        "status": status,
        "authorization": bool(headers.get("Authorization")),
        "if_none_match": bool(headers.get("If-None-Match")),
        "user_agent": headers.get("User-Agent"),
        "accept": headers.get("Accept"),
        "x_github_api_version": headers.get("X-GitHub-Api-Version"),
    }


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._counts: dict[str, Counter[int]] = {}
            self._last: dict[str, dict[str, Any]] = {}

    def record(self, endpoint: str, status: int, path: str, headers: Mapping[str, str]) -> None:
        with self._lock:
            self._counts.setdefault(endpoint, Counter())[status] += 1
            self._last[endpoint] = header_facts(headers, path, status)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            counts = {
                endpoint: {
                    "total": sum(by_status.values()),
                    "by_status": {str(code): n for code, n in sorted(by_status.items())},
                }
                for endpoint, by_status in self._counts.items()
            }
            return {"counts": counts, "last": {k: dict(v) for k, v in self._last.items()}}
