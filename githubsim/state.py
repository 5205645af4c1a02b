"""Everything mutable in one simulator: clock, names, faults, rate limits, request log.

Each part guards itself with its own lock, so handler threads can share one `SimState`.
"""

from __future__ import annotations

import threading

from githubsim.catalog import SimRepo, build_catalog
from githubsim.data import load_repos
from githubsim.faults import FaultBook
from githubsim.hostile import hostile_record
from githubsim.longtail import tail_catalog
from githubsim.names import RepoNames
from githubsim.ratelimit import RateLimiter
from githubsim.requestlog import RequestLog
from githubsim.searchindex import SearchIndex
from githubsim.sim_clock import SimClock


class SimState:
    def __init__(
        self, search_limit: int | None = None, core_limit: int | None = None, hostile: bool = False
    ) -> None:
        records = load_repos() + ([hostile_record()] if hostile else [])
        # The tail is its own catalog: its growth must not move the bundled repositories'
        # fallback slope.
        self.repos: dict[int, SimRepo] = build_catalog(records) | tail_catalog()
        self.names = RepoNames({rid: repo.original_name for rid, repo in self.repos.items()})
        self.clock = SimClock()
        self.faults = FaultBook()
        self.limiter = RateLimiter(search_limit=search_limit, core_limit=core_limit)
        self.log = RequestLog()
        self.index = SearchIndex()
        # Set to wake stalled requests on reset/close; replaced so later stalls still sleep.
        self.wakeup = threading.Event()

    def reset(self) -> None:
        self.names.reset()
        self.clock.reset()
        self.faults.clear()
        self.limiter.reset()
        self.log.reset()
        self.index.reset()
        self.wake_stalled()

    def wake_stalled(self) -> None:
        woken, self.wakeup = self.wakeup, threading.Event()
        woken.set()
