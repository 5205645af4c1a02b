"""The GitHub application's own settings (taskpipes.Setting): where GitHub is, how to call
it, how much of it to rank and how long to keep its answers.

Listed in `actors.application`, so every `taskpipes` command and every worker checks them
at start; the pipelines read them with `.get()` when they run.
"""

from __future__ import annotations

from taskpipes import Setting
from taskpipes.declare.app_settings import positive

DEFAULT_GITHUB_API_URL = "https://api.github.com"
# The ranking's size: GitHub search serves at most 1,000 results of a query.
DEFAULT_TOP_N, MAX_TOP_N = 100, 1000
TOP_N_MUST_BE = (
    f"a whole number from 1 to {MAX_TOP_N} (GitHub search serves at most {MAX_TOP_N:,} results)"
)


def digits(text: str) -> int:
    """A whole number written in digits alone: no sign, no `_`, no exponent."""
    if not text.strip().isdigit():
        raise ValueError(text)
    return int(text)


def top_n_range(count: int) -> str | None:
    return None if 1 <= count <= MAX_TOP_N else TOP_N_MUST_BE


GITHUB_API_URL = Setting(
    "GITHUB_API_URL",
    parse=lambda url: url.rstrip("/"),
    default=DEFAULT_GITHUB_API_URL,
    help="the GitHub API (the simulator's URL in demos and tests)",
)
GITHUB_TOKEN: Setting[str | None] = Setting(
    "GITHUB_TOKEN",
    default=None,
    secret=True,
    help="sent as a bearer token, only to the origin of GITHUB_API_URL",
)
GITHUB_TIMEOUT = Setting(
    "TASKPIPES_GITHUB_TIMEOUT",
    parse=float,
    default=10.0,
    check=positive,
    help="read timeout of a GitHub request, seconds",
)
RAW_RETENTION_DAYS = Setting(
    "TASKPIPES_RAW_RETENTION_DAYS",
    parse=int,
    default=30,
    check=positive,
    help="how long maintenance keeps raw API answers",
)
TOP_N = Setting(
    "TASKPIPES_TOP_N",
    parse=digits,
    default=DEFAULT_TOP_N,
    check=top_n_range,
    must_be=TOP_N_MUST_BE,
    help="how many repositories github_top ranks",
)
# Tests shrink it so that a refetch costs no real seconds.
SUSPECT_REFETCH_S = Setting(
    "TASKPIPES_SUSPECT_REFETCH_S",
    parse=float,
    default=5.0,
    check=positive,
    help="github_top asks again this long after a suspect answer, doubling each time",
)

ALL = (GITHUB_API_URL, GITHUB_TOKEN, GITHUB_TIMEOUT, RAW_RETENTION_DAYS, TOP_N, SUSPECT_REFETCH_S)
