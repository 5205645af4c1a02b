"""language_stats: per language over the tracked repositories, the repository count, total
stars and stars gained over 24h and 7d; a long query precomputed every 30 minutes and
served from its result (/api/languages, the web page's languages table).

The tracked repositories are those of the newest snapshot at or before the run's tick (the
top 100 then). A repository's gain over a window is its stars there minus its stars at its
latest snapshot at or before that tick minus the window, read the way trending reads it
(one bucket lookup per repository); a language's gain is the sum over its repositories
that have such a snapshot, and null when none has.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from db.models import LanguageStat, Repository, Snapshot
from pipelines.trending import stars_before
from taskpipes import Context, Pipeline, Retries, Schedule, Stage
from taskpipes.observe import metrics

# The windows of the two gains.
DAY, WEEK = timedelta(hours=24), timedelta(days=7)
# stars_before reads "strictly before": this much later makes it "at or before".
INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True)
class TrackedRepo:
    """One repository of the newest snapshot, reduced to what the totals need."""

    repo_id: int
    language: str | None
    stars: int


@dataclass(frozen=True)
class LanguageTotal:
    """One row of the languages table, ranked by stars."""

    rank: int
    language: str | None
    repositories: int
    stars: int
    stars_gained_24h: int | None
    stars_gained_7d: int | None


def gain(repos: Iterable[TrackedRepo], earlier: Mapping[int, int]) -> int | None:
    """Stars gained by the repositories since `earlier`; None when none of them is in it."""
    gains = [repo.stars - earlier[repo.repo_id] for repo in repos if repo.repo_id in earlier]
    return sum(gains) if gains else None


def language_totals(
    repos: Iterable[TrackedRepo], day_ago: Mapping[int, int], week_ago: Mapping[int, int]
) -> list[LanguageTotal]:
    """Totals per language, by stars desc, then repositories desc, then name; the
    repositories without a language form one row (language None), ranked like any other."""
    by_language: dict[str | None, list[TrackedRepo]] = defaultdict(list)
    for repo in repos:
        by_language[repo.language].append(repo)
    rows = [
        (language, len(members), sum(r.stars for r in members), members)
        for language, members in by_language.items()
    ]
    rows.sort(key=lambda row: (-row[2], -row[1], row[0] is None, row[0] or ""))
    return [
        LanguageTotal(rank, language, count, stars, gain(members, day_ago), gain(members, week_ago))
        for rank, (language, count, stars, members) in enumerate(rows, 1)
    ]


def tracked_repos(session: Session, tick: datetime) -> tuple[datetime | None, list[TrackedRepo]]:
    """The newest snapshot tick at or before `tick` and its repositories with their language."""
    newest = session.scalar(select(func.max(Snapshot.tick)).where(Snapshot.tick <= tick))
    if newest is None:
        return None, []
    rows = session.execute(
        select(Snapshot.repo_id, Repository.language, Snapshot.stars)
        .join(Repository, Repository.id == Snapshot.repo_id)
        .where(Snapshot.tick == newest)
    )
    return newest, [TrackedRepo(*row) for row in rows]


def refresh_language_stats(session: Session, tick: datetime) -> int:
    """Replace the languages table with the totals as of `tick`; returns the rows written.

    A run for a tick older than the served one (a re-run of the past) leaves it alone:
    the table only moves forward.
    """
    served = session.scalar(select(func.max(LanguageStat.as_of)))
    if served is not None and served > tick:
        return 0
    newest, repos = tracked_repos(session, tick)
    session.execute(delete(LanguageStat))
    if newest is None:
        return 0
    day_ago = stars_before(session, newest, newest - DAY + INSTANT)
    week_ago = stars_before(session, newest, newest - WEEK + INSTANT)
    rows = [{**asdict(total), "as_of": tick} for total in language_totals(repos, day_ago, week_ago)]
    if rows:
        session.execute(insert(LanguageStat), rows)
    return len(rows)


def count_languages(ctx: Context) -> int:
    """The one stage: the totals as of the run's tick, in the stage's transaction."""
    written = refresh_language_stats(ctx.session, ctx.tick)
    metrics.rows_written("language_stats", written)
    return written


# Every 30 minutes; a missed tick is only worth running once, the newest (the table only
# shows the newest). Database work only: a few quick retries.
# Overlap "skip": each run recomputes the totals from stored data, so a newer tick loses
# nothing by skipping while the last one still runs.
language_stats = Pipeline(
    "language_stats",
    overlap="skip",
    schedule=Schedule("*/30 * * * *", catchup="latest"),
    stages=(Stage("languages", count_languages),),
    retries=Retries(max=5, min_backoff_ms=1_000, max_backoff_ms=120_000),
)
