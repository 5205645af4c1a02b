"""Pacing of the stargazers pages: which pages to fetch, how far apart, in what waves. Pure.

One page message inserts at most PER_PAGE rows and spends one GitHub request, so the gap
between two page messages is the slower of the two budgets: PER_PAGE / rate seconds for
the inserts, 3600 / api_rate seconds for the API. Page messages go out in waves: a wave
sends the next few pages with delays 0, gap, 2 gap, ... and schedules the next wave one
gap after its last page, so no delay comes near the broker's limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# GitHub's largest stargazer page, and the last page it serves at all.
PER_PAGE = 100
PAGE_CAP = 400
# Star events inserted per second when --rate is not given.
DEFAULT_RATE = 2000
# GitHub requests per hour when --api-rate is not given: below the 5000/h and 60/h core
# limits, leaving room for other clients of the same token or address.
API_RATE_WITH_TOKEN = 4000
API_RATE_ANONYMOUS = 50
# A wave's delays span at most this long: well under taskpipes.runtime.stages.MAX_DELAY_S.
WAVE_SPAN_S = 5 * 60
# Delayed messages wait in worker memory until due, so a wave holds at most this many.
MAX_WAVE_PAGES = 200


def default_api_rate(has_token: bool) -> int:
    return API_RATE_WITH_TOKEN if has_token else API_RATE_ANONYMOUS


def page_gap(rate: float, api_rate: float, per_page: int = PER_PAGE) -> float:
    """Seconds between two page messages so that both budgets hold."""
    if rate <= 0 or api_rate <= 0:
        raise ValueError(f"rates must be positive, got rate={rate} api_rate={api_rate}")
    return max(per_page / rate, 3600 / api_rate)


def wave_size(gap: float) -> int:
    """Pages per wave: as many as fit in WAVE_SPAN_S, at least one, at most MAX_WAVE_PAGES."""
    fitting = math.floor(WAVE_SPAN_S / gap) if gap > 0 else MAX_WAVE_PAGES
    return max(1, min(MAX_WAVE_PAGES, fitting))


def wave_delays(count: int, gap: float) -> list[float]:
    return [i * gap for i in range(count)]


def last_page(stars: int) -> int:
    """The last page worth asking for: page 1 even for no stars, never past the cap."""
    return min(max(math.ceil(stars / PER_PAGE), 1), PAGE_CAP)


def is_capped(stars: int) -> bool:
    """True when GitHub's page cap hides the newest stars of a repository."""
    return stars > PER_PAGE * PAGE_CAP


def first_unstored(stored_full: Iterable[int]) -> int:
    """The first page not stored full: where the next run starts."""
    stored = set(stored_full)
    page = 1
    while page in stored:
        page += 1
    return page


def pages_to_fetch(stars: int, next_page: int, stored_full: Iterable[int]) -> list[int]:
    """Pages from the cursor to the last one, skipping pages an earlier run stored full.

    GitHub lists the oldest stars first, so new stars fill the last, partly filled page and
    the pages after it: those are exactly the pages not yet stored full.
    """
    stored = set(stored_full)
    return [page for page in range(next_page, last_page(stars) + 1) if page not in stored]
