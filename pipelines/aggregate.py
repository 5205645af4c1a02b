"""aggregate: the latest ranking with stars gained since the previous tick. Pure core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from db.models import LatestRanking, Repository, Snapshot
from pipelines.records import RankingEntry, RepoSnapshot


def rank_latest(
    current: Sequence[RepoSnapshot], previous_stars: Mapping[int, int]
) -> list[RankingEntry]:
    """Rank `current`; stars_gained is None for a repository absent from the previous tick."""
    return [
        RankingEntry(
            rank=r.rank,
            repo_id=r.id,
            full_name=r.full_name,
            stars=r.stars,
            forks=r.forks,
            language=r.language,
            stars_gained=(r.stars - previous_stars[r.id]) if r.id in previous_stars else None,
        )
        for r in sorted(current, key=lambda r: r.rank)
    ]


def refresh_latest_ranking(session: Session, tick: datetime) -> int:
    """Replace the served ranking with the one at `tick`, unless a newer tick is served."""
    served = session.scalar(select(func.max(LatestRanking.tick)))
    if served is not None and served > tick:
        return 0
    entries = rank_latest(_snapshot_at(session, tick), _previous_stars(session, tick))
    session.execute(delete(LatestRanking))
    session.add_all(LatestRanking(tick=tick, **asdict(entry)) for entry in entries)
    return len(entries)


def _snapshot_at(session: Session, tick: datetime) -> list[RepoSnapshot]:
    rows = session.execute(
        select(Snapshot, Repository)
        .join(Repository, Repository.id == Snapshot.repo_id)
        .where(Snapshot.tick == tick)
    )
    return [
        RepoSnapshot(
            id=repo.id,
            full_name=repo.full_name,
            rank=snap.rank,
            stars=snap.stars,
            forks=snap.forks,
            open_issues=snap.open_issues,
            language=repo.language,
            license=repo.license,
            description=repo.description,
        )
        for snap, repo in rows
    ]


def _previous_stars(session: Session, tick: datetime) -> dict[int, int]:
    previous_tick = session.scalar(select(func.max(Snapshot.tick)).where(Snapshot.tick < tick))
    if previous_tick is None:
        return {}
    rows = session.execute(
        select(Snapshot.repo_id, Snapshot.stars).where(Snapshot.tick == previous_tick)
    )
    return {repo_id: stars for repo_id, stars in rows}
