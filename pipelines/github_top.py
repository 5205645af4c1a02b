"""The github_top pipeline: fetch -> normalize -> store -> aggregate, one tick at a time.

Stages hand each other the run id only. fetch keeps the raw answer; normalize (pure, about
a millisecond) validates it; store normalizes the accepted answer again and writes it in
one transaction; aggregate refreshes the ranking the API serves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import RawResponse, Run
from db.session import begin
from pipelines import runs
from pipelines.aggregate import refresh_latest_ranking
from pipelines.errors import InvalidPayload
from pipelines.github import GitHubClient
from pipelines.normalize import TOP_SIZE, TopList, normalize_top
from pipelines.schedule import Schedule
from pipelines.store import store_snapshot
from taskpipes import metrics

PIPELINE = "github_top"
# The API only knows the present, so after downtime only the newest missed tick is run.
SCHEDULE = Schedule("*/10 * * * *", catchup="latest")
SEARCH_PATH = "/search/repositories?q=stars:>50000&sort=stars&order=desc&per_page=100"
# A suspect answer (incomplete, short, duplicated id) is fetched again this often.
MAX_SUSPECT_FETCHES = 3


def fetch_search(client: GitHubClient) -> tuple[Any, str | None]:
    """GET the top list, following `link` pages until it holds TOP_SIZE items.

    Unconditional: GitHub's search answers carry no ETag (and say `no-cache`), so a
    conditional search would never be answered 304."""
    page = client.get("search", SEARCH_PATH)
    payload, next_url = page.payload, page.next_url
    while next_url and isinstance(payload, dict) and _short(payload):
        more = client.get("search", next_url)
        payload = {**payload, "items": payload["items"] + list(more.payload.get("items", []))}
        next_url = more.next_url
    return payload, page.etag


def _short(payload: dict[str, Any]) -> bool:
    items = payload.get("items")
    return isinstance(items, list) and len(items) < TOP_SIZE


def fetch(run_id: int, client: GitHubClient, now: datetime) -> int:
    """Fetch and keep the raw answer for this run."""
    with begin() as session:
        tick = session.get_one(Run, run_id).tick
    payload, etag = fetch_search(client)
    with begin() as session:
        session.add(
            RawResponse(
                run_id=run_id,
                tick=tick,
                fetched_at=now,
                http_status=200,
                etag=etag,
                payload=payload,
            )
        )
    metrics.rows_written("raw_responses", 1)
    return 1


def _latest_raw(session: Session, run_id: int) -> RawResponse | None:
    return session.scalars(
        select(RawResponse).where(RawResponse.run_id == run_id).order_by(RawResponse.id.desc())
    ).first()


def latest_raw(run_id: int) -> RawResponse:
    with begin() as session:
        raw = _latest_raw(session, run_id)
    if raw is None:
        raise InvalidPayload(f"run {run_id} has no fetched answer to normalize")
    return raw


def normalize(run_id: int) -> TopList:
    return normalize_top(latest_raw(run_id).payload)


def store(run_id: int, now: datetime) -> int:
    """Store the accepted answer, and how out of order GitHub listed it, in one transaction."""
    top = normalize(run_id)
    with begin() as session:
        run = session.get_one(Run, run_id)
        written = store_snapshot(session, run.tick, top.records, now)
        run.details = {**(run.details or {}), "rank_inversions": top.inversions}
    metrics.rows_written("snapshots", written)
    metrics.github_rank_inversions(top.inversions)
    return written


def aggregate(run_id: int) -> int:
    with begin() as session:
        tick = session.get_one(Run, run_id).tick
        written = refresh_latest_ranking(session, tick)
    metrics.rows_written("latest_ranking", written)
    return written


def suspect_fetches(run_id: int) -> int:
    with begin() as session:
        return len(
            session.scalars(select(RawResponse.id).where(RawResponse.run_id == run_id)).all()
        )


def refetch(run_id: int) -> None:
    """Reject the run's latest answer and reopen fetch; the next fetch asks afresh."""
    with begin() as session:
        runs.reopen_stage(session, run_id, "fetch")
