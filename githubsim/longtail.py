"""The long tail: generated repositories ranked below the bundled top 100, so that search
pages through 1,000 results as GitHub's does (TASKPIPES_TOP_N up to 1,000).

Pure and deterministic. Every tail repository has fewer stars than the bundled data's
smallest (109k) and at most TAIL_MAX_STARS (under the classic `stars:>50000` query), so
the top 100 and everything asked of it stay exactly as before; `stars:>10000` finds over
1,000 repositories, as it does on GitHub.
"""

from __future__ import annotations

from functools import cache

from githubsim.catalog import SimRepo, build_catalog
from githubsim.data import DaySnapshot, RepoRecord, day_epoch

# Enough that a 1,000-result search is full with the bundled top 100 left out.
TAIL_SIZE = 1_100
# Stars of the tail's first and last repository on the first snapshot day.
TAIL_MAX_STARS = 48_000
TAIL_MIN_STARS = 11_000
# The bundled data's snapshot days, and stars gained per day (a tenth of a percent, more
# or less, as mid-ranking repositories grow).
DAYS = ("2026-08-15", "2026-08-21", "2026-08-22")
LANGUAGES = ("Python", "TypeScript", "Go", "Rust", "JavaScript", "C++", "Java", None)


def tail_stars(index: int) -> int:
    """Stars of tail repository `index` on the first day: geometric from max to min."""
    ratio = (TAIL_MIN_STARS / TAIL_MAX_STARS) ** (index / (TAIL_SIZE - 1))
    return round(TAIL_MAX_STARS * ratio)


def tail_record(index: int, days: tuple[int, ...]) -> RepoRecord:
    stars = tail_stars(index)
    daily = max(1, stars // (700 + index % 900))
    snapshots = tuple(
        DaySnapshot(
            day=day,
            stars=stars + daily * (day - days[0]) // 86_400,
            forks=stars // (5 + index % 11),
            open_issues=index % 400,
            language=LANGUAGES[index % len(LANGUAGES)],
            pushed_at=f"{DAYS[n]}T{index % 24:02d}:00:00Z",
            description=f"Long-tail project {index + 1} of the simulator",
        )
        for n, day in enumerate(days)
    )
    return RepoRecord(full_name=f"tail-org-{index % 97}/project-{index + 1}", snapshots=snapshots)


def long_tail() -> list[RepoRecord]:
    days = tuple(day_epoch(day) for day in DAYS)
    return [tail_record(index, days) for index in range(TAIL_SIZE)]


# Pure memoisation: the bundled tail depends on no configuration.
@cache
def tail_catalog() -> dict[int, SimRepo]:
    """The tail's repositories by id, built once per process (they are immutable; a new
    simulator copies the mapping)."""
    return build_catalog(long_tail())
