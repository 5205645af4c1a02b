"""The simulated clock: wall-clock UTC unless a test or operator pins it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class SimClock:
    """Simulated 'now'. Pinned times stay frozen unless `advance` lets them run on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._anchor: float | None = None  # pinned simulated epoch seconds
        self._anchor_wall = 0.0
        self._advance = False

    def set(self, moment: datetime, advance: bool = False) -> None:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        with self._lock:
            self._anchor = moment.timestamp()
            self._anchor_wall = time.time()
            self._advance = advance

    def reset(self) -> None:
        with self._lock:
            self._anchor = None

    def now(self) -> int:
        """Simulated epoch seconds, truncated: the star model works in whole seconds."""
        with self._lock:
            if self._anchor is None:
                return int(time.time())
            drift = time.time() - self._anchor_wall if self._advance else 0.0
            return int(self._anchor + drift)

    def describe(self) -> dict[str, object]:
        with self._lock:
            pinned, advance = self._anchor is not None, self._advance
        moment = datetime.fromtimestamp(self.now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"now": moment, "pinned": pinned, "advance": advance}
