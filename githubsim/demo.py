"""`taskpipes demo`: a simulated day of github_top ticks against the bundled simulator."""

from __future__ import annotations

from datetime import datetime, timedelta

import requests
from sqlalchemy import select

from db.models import LatestRanking, Snapshot
from taskpipes.runtime.runner import run_tick
from taskpipes.store.database import begin
from taskpipes.store.runs import SUCCEEDED

TICKS_PER_DAY = 144


def replay_day(day: datetime, sim_url: str, timeout_s: float) -> list[str]:
    """Run every 10-minute tick of `day`, moving the simulator's clock along."""
    import actors  # noqa: F401  (the broker and the actors runs are sent to)
    from taskpipes import registry

    entry = registry.get("github_top")
    failures = []
    for i in range(TICKS_PER_DAY):
        tick = day + timedelta(minutes=10 * i)
        requests.put(
            f"{sim_url}/_sim/clock", json={"now": tick.isoformat()}, timeout=5
        ).raise_for_status()
        outcome = run_tick(entry, tick, timeout_s)
        if outcome.status != SUCCEEDED:
            failures.append(f"{tick.isoformat()}: {outcome.status}: {outcome.error}")
        if i % 18 == 17:
            print(f"  {tick:%H:%M} UTC  {i + 1}/{TICKS_PER_DAY} ticks stored", flush=True)
    return failures


def top_table(limit: int = 10) -> str:
    """The served ranking with each repository's gain over the whole stored history."""
    with begin() as session:
        ranking = session.scalars(
            select(LatestRanking).order_by(LatestRanking.rank).limit(limit)
        ).all()
        first_tick = session.scalar(select(Snapshot.tick).order_by(Snapshot.tick).limit(1))
        first_stars = dict(
            session.execute(
                select(Snapshot.repo_id, Snapshot.stars).where(Snapshot.tick == first_tick)
            ).all()
        )
    if not ranking:
        return "no ranking stored yet"
    lines = [
        f"top {limit} as of {ranking[0].tick:%Y-%m-%d %H:%M} UTC",
        f"{'rank':>4}  {'repository':<42} {'stars':>9} {'+10 min':>8} {'+day':>7}",
    ]
    for r in ranking:
        day_gain = r.stars - first_stars[r.repo_id] if r.repo_id in first_stars else None
        lines.append(
            f"{r.rank:>4}  {r.full_name:<42} {r.stars:>9,} {_signed(r.stars_gained):>8} {_signed(day_gain):>7}"
        )
    return "\n".join(lines)


def _signed(value: int | None) -> str:
    return "new" if value is None else f"+{value:,}"
