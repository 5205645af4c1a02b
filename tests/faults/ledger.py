"""What the database must hold after a scenario, counted from its public tables.

Only the tables and columns every version of the pipelines keeps are read (runs,
stage_runs, snapshots, rollup_buckets, stargazer and star tables), so the checks survive
a rewrite of the actors. Each tally says how many ticks were expected and stored, how many
rows are missing and how many were stored or counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.faults.report import Tally

# The rollup at tick T closes the bucket [T - 15 min, T).
BUCKET = timedelta(minutes=15)
# A snapshot is stamped stored_at a moment before its transaction commits.
COMMIT_MARGIN = timedelta(seconds=10)
# The snapshot of a tick holds this many repositories.
TOP_SIZE = 100
# GitHub serves at most this many stargazers of one repository.
STARGAZER_CAP = 40_000


def run_status(engine: Engine, pipeline: str, tick: datetime) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(
            text("SELECT status FROM runs WHERE pipeline = :p AND tick = :t"),
            {"p": pipeline, "t": naive(tick)},
        )


def naive(moment: datetime) -> datetime:
    """Times are stored as naive UTC."""
    return moment.replace(tzinfo=None) if moment.tzinfo else moment


def _runs(engine: Engine, pipeline: str, tick: datetime) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.scalars(
                text("SELECT status FROM runs WHERE pipeline = :p AND tick = :t"),
                {"p": pipeline, "t": naive(tick)},
            )
        )


def _tick_run(engine: Engine, pipeline: str, tick: datetime) -> Tally:
    statuses = _runs(engine, pipeline, tick)
    tally = Tally(expected=1, duplicates=max(0, len(statuses) - 1))
    if statuses == ["succeeded"]:
        tally.stored = 1
    else:
        tally.problems.append(f"{pipeline} {tick:%m-%d %H:%M}: runs {statuses}")
    return tally


def github_top(engine: Engine, ticks: Iterable[datetime]) -> Tally:
    """One succeeded run per tick and its snapshot: every repository of the answer GitHub
    gave that run (its last kept raw answer), once, with the stars GitHub reported."""
    total = Tally()
    for tick in ticks:
        tally = _tick_run(engine, "github_top", tick)
        with engine.connect() as conn:
            payload = conn.scalar(
                text(
                    "SELECT r.payload FROM raw_responses r JOIN runs ON runs.id = r.run_id"
                    " WHERE runs.pipeline = 'github_top' AND runs.tick = :t"
                    " ORDER BY r.id DESC LIMIT 1"
                ),
                {"t": naive(tick)},
            )
            rows = conn.execute(
                text("SELECT repo_id, stars FROM snapshots WHERE tick = :t"), {"t": naive(tick)}
            ).all()
        items = (payload or {}).get("items", [])[:TOP_SIZE]
        want = {item["id"]: item["stargazers_count"] for item in items}
        got = dict(rows)
        tally.duplicates += len(rows) - len(got)
        tally.lost += TOP_SIZE - len(want) + len(set(want) - set(got))
        wrong = sum(1 for repo_id, stars in got.items() if want.get(repo_id) != stars)
        if wrong:
            tally.problems.append(f"github_top {tick:%H:%M}: {wrong} rows differ from GitHub")
            tally.lost += wrong
        total += tally
    return total


def rollup(engine: Engine, ticks: Iterable[datetime]) -> Tally:
    """One succeeded run per tick, and every snapshot stored before the last rollup began
    (with a margin for its commit) rolled into its repository's 15-minute bucket."""
    total = Tally()
    for tick in ticks:
        total += _tick_run(engine, "rollup", tick)
    with engine.connect() as conn:
        total.lost += conn.scalar(
            text(
                "SELECT count(*) FROM (SELECT DISTINCT repo_id,"
                " date_bin('15 minutes', tick, TIMESTAMP '2000-01-01') AS bucket"
                " FROM snapshots WHERE stored_at < (SELECT max(started_at) FROM runs"
                " WHERE pipeline = 'rollup' AND status = 'succeeded') - :margin) s"
                " WHERE NOT EXISTS (SELECT 1 FROM rollup_buckets b"
                " WHERE b.repo_id = s.repo_id AND b.bucket_start = s.bucket)"
            ),
            {"margin": COMMIT_MARGIN},
        )
    return total


def stargazers(engine: Engine, run_ids: Iterable[int]) -> Tally:
    """Each run succeeded, every planned page stored once, every stargazer GitHub lists
    (up to its cap) stored, and no page or row counted twice."""
    total = Tally()
    for run_id in run_ids:
        with engine.connect() as conn:
            status = conn.scalar(text("SELECT status FROM runs WHERE id = :r"), {"r": run_id})
            planned, done, counted = conn.execute(
                text(
                    "SELECT planned_pages, done_pages, rows_stored FROM stargazer_runs"
                    " WHERE run_id = :r"
                ),
                {"r": run_id},
            ).one()
            unstored = conn.scalar(
                text(
                    "SELECT count(*) FROM stargazer_pages WHERE run_id = :r AND stored_at IS NULL"
                ),
                {"r": run_id},
            )
            page_rows = conn.scalar(
                text("SELECT coalesce(sum(rows), 0) FROM stargazer_pages WHERE run_id = :r"),
                {"r": run_id},
            )
            repos = conn.execute(
                text(
                    "SELECT p.stars, (SELECT count(*) FROM star_events e"
                    " WHERE e.repo_id = p.repo_id) FROM stargazer_plans p WHERE p.run_id = :r"
                ),
                {"r": run_id},
            ).all()
        tally = Tally(expected=1, stored=int(status == "succeeded"))
        if status != "succeeded":
            tally.problems.append(f"stargazers run {run_id}: {status}")
        tally.lost += unstored + sum(max(0, min(s, STARGAZER_CAP) - n) for s, n in repos)
        tally.duplicates += max(0, done - planned) + max(0, counted - page_rows)
        total += tally
    return total
