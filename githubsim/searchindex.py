"""The search index: GitHub ranks `sort=stars` hits by a star count that lags the live one.

Each repository's indexed count is its count some seconds ago (a stable per-repository lag
up to the index's maximum), while the hit reports the live count. Neighbours close in stars
therefore come out of order, as in answers recorded from api.github.com.
"""

from __future__ import annotations

import threading
from functools import cache

from githubsim import identity
from githubsim.catalog import SimRepo

# A day of lag by default: a few inversions per top 100 on the bundled data, like GitHub.
DEFAULT_MAX_LAG_S = 24 * 3600


# Pure memoisation: a function of its arguments alone, no configuration.
@cache
def lag_of(repo_id: int, max_lag_s: int) -> int:
    """This repository's index lag, stable across processes and runs."""
    return identity.stable_int("index-lag", repo_id) % (max_lag_s + 1)


def indexed_ranking(
    repos: dict[int, SimRepo], at: int, max_lag_s: int
) -> list[tuple[SimRepo, int]]:
    """(repo, indexed stars) by indexed stars descending, then id: the search order."""
    scored = [(repo, repo.stars_at(at - lag_of(repo.id, max_lag_s))) for repo in repos.values()]
    return sorted(scored, key=lambda pair: (-pair[1], pair[0].id))


class SearchIndex:
    """The index-lag switch: how far behind the live counts search ranks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._max_lag_s = DEFAULT_MAX_LAG_S

    @property
    def max_lag_s(self) -> int:
        with self._lock:
            return self._max_lag_s

    def set_lag(self, max_lag_s: int) -> None:
        """0 makes search strictly sorted by the counts it reports."""
        if isinstance(max_lag_s, bool) or not isinstance(max_lag_s, int) or max_lag_s < 0:
            raise ValueError("max_lag_seconds must be a non-negative integer")
        with self._lock:
            self._max_lag_s = max_lag_s

    def reset(self) -> None:
        self.set_lag(DEFAULT_MAX_LAG_S)

    def ranking(self, repos: dict[int, SimRepo], at: int) -> list[tuple[SimRepo, int]]:
        return indexed_ranking(repos, at, self.max_lag_s)
