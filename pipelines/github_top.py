"""The github_top pipeline: fetch -> normalize -> store -> aggregate, one tick at a time.

fetch asks GitHub (outside any transaction) and hands on the answer, cut to the fields
normalize reads; normalize keeps that answer in raw_responses (for reprocessing) and hands
on the validated, ranked records; store writes them; aggregate refreshes the ranking the
API serves. Each stage's writes commit with its output and the record that it is done.

A run fetched before stages handed on their outputs finds its answer in raw_responses
(`ctx.input` is None then).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import RawResponse
from pipelines import github_metrics
from pipelines.aggregate import refresh_latest_ranking
from pipelines.config import SUSPECT_REFETCH_S, TOP_N
from pipelines.github import GitHubClient, Page, github_client
from pipelines.github_errors import InvalidPayload, PermanentError, RateLimited, SuspectSnapshot
from pipelines.normalize import COUNT_FIELDS, TopList, normalize_top
from pipelines.records import RepoSnapshot
from pipelines.store_snapshot import store_snapshot
from taskpipes import Context, Later, Pipeline, Schedule, Stage
from taskpipes.declare import clock
from taskpipes.store.tables import Run

FETCH, NORMALIZE, STORE, AGGREGATE = "fetch", "normalize", "store", "aggregate"
# GitHub's largest search page. The star floor is low enough that over 1,000 repositories
# pass it (fewer than 1,000 have 50,000 stars), so any TASKPIPES_TOP_N fills its ranking.
SEARCH_PER_PAGE = 100
SEARCH_PATH = (
    f"/search/repositories?q=stars:>10000&sort=stars&order=desc&per_page={SEARCH_PER_PAGE}"
)
# A suspect answer (incomplete, short, duplicated id) is fetched again this often.
MAX_SUSPECT_FETCHES = 3
# The fields of a search item normalize reads: a thousand whole items would be over the
# 1 MiB a stage may hand on; these are about a tenth of that.
ITEM_FIELDS = ("id", "full_name", *COUNT_FIELDS, "language", "license", "description")


def fetch_top(ctx: Context) -> dict[str, Any]:
    """The top list as GitHub answers it now: `payload` (its items cut to ITEM_FIELDS),
    `etag` and `fetched_at`."""
    with github_client() as client:
        payload, etag = fetch_search(client, TOP_N.get())
    return {"payload": kept_fields(payload), "etag": etag, "fetched_at": ctx.now.isoformat()}


def kept_fields(payload: Any) -> Any:
    """The answer with each well-formed item cut to ITEM_FIELDS; anything malformed is
    left as it is, for normalize to name."""
    items = payload.get("items") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return payload
    cut = [
        {k: item[k] for k in ITEM_FIELDS if k in item} if isinstance(item, dict) else item
        for item in items
    ]
    return {**payload, "items": cut}


def search_pages(top_n: int) -> int:
    return math.ceil(top_n / SEARCH_PER_PAGE)


def fetch_search(client: GitHubClient, top_n: int) -> tuple[Any, str | None]:
    """GET the top list, following `link` pages until it holds `top_n` items: one page
    per hundred, all inside one search rate-limit window.

    When the first page says the window has fewer requests left than the pages still
    needed, nothing more is asked: RateLimited defers the fetch to the window's reset
    (GitHub allows at least 10 searches a minute, and 1,000 results are 10 pages), instead
    of a half-read ranking that the next page's 403 would throw away. Unconditional:
    GitHub's search answers carry no ETag (and say `no-cache`), so a conditional search
    would never be answered 304."""
    page = client.get("search", SEARCH_PATH)
    payload, next_url = page.payload, page.next_url
    left = search_pages(top_n) - 1
    if next_url and left and _short(payload, top_n):
        _check_quota(page, left)
    while next_url and _short(payload, top_n):
        more = client.get("search", next_url)
        payload = merge_pages(payload, more.payload)
        next_url = more.next_url
    return payload, page.etag


def _check_quota(page: Page, needed: int) -> None:
    if page.remaining is not None and page.remaining < needed:
        wait = max(1.0, (page.reset or 0) - clock.now().timestamp())
        raise RateLimited(wait, "search")


def merge_pages(payload: dict[str, Any], more: Any) -> dict[str, Any]:
    """One answer of two pages: the items in order, incomplete if either page was."""
    items = more.get("items") if isinstance(more, dict) else None
    if not isinstance(items, list):
        raise InvalidPayload("a later search page has no 'items' list")
    incomplete = payload.get("incomplete_results") is True or more.get("incomplete_results")
    return {**payload, "items": payload["items"] + items, "incomplete_results": incomplete}


def _short(payload: Any, top_n: int) -> bool:
    items = payload.get("items") if isinstance(payload, dict) else None
    return isinstance(items, list) and len(items) < top_n


def keep_answer(ctx: Context, fetched: dict[str, Any]) -> None:
    """Keep the fetched answer for this run (raw_responses: for reprocessing)."""
    ctx.session.add(
        RawResponse(
            run_id=ctx.run_id,
            tick=ctx.tick,
            fetched_at=datetime.fromisoformat(fetched["fetched_at"]),
            http_status=200,
            etag=fetched["etag"],
            payload=fetched["payload"],
        )
    )
    ctx.wrote(1, "raw_responses")


def latest_raw(session: Session, run_id: int) -> RawResponse:
    raw = session.scalars(
        select(RawResponse).where(RawResponse.run_id == run_id).order_by(RawResponse.id.desc())
    ).first()
    if raw is None:
        raise InvalidPayload(f"run {run_id} has no fetched answer to normalize")
    return raw


def normalize(ctx: Context) -> dict[str, Any]:
    """Keep the fetched answer and hand on its validated, ranked records."""
    if ctx.input is None:  # fetched before stages handed on outputs: the answer is kept
        top = normalize_top(latest_raw(ctx.session, ctx.run_id).payload, TOP_N.get())
    else:
        top = normalize_top(ctx.input["payload"], TOP_N.get())
        keep_answer(ctx, ctx.input)
    return {"records": [asdict(r) for r in top.records], "inversions": top.inversions}


def normalized(ctx: Context) -> TopList:
    """normalize's output; a run normalized before stages handed on outputs normalizes
    its kept answer again."""
    if ctx.input is None:
        return normalize_top(latest_raw(ctx.session, ctx.run_id).payload, TOP_N.get())
    records = [RepoSnapshot(**record) for record in ctx.input["records"]]
    return TopList(records, ctx.input["inversions"])


def store(ctx: Context) -> None:
    """Store the accepted records, and how out of order GitHub listed them."""
    top = normalized(ctx)
    ctx.wrote(store_snapshot(ctx.session, ctx.tick, top.records, ctx.now), "snapshots")
    run = ctx.session.get_one(Run, ctx.run_id)
    run.details = {**(run.details or {}), "rank_inversions": top.inversions}
    github_metrics.github_rank_inversions(top.inversions)


def aggregate(ctx: Context) -> None:
    ctx.wrote(refresh_latest_ranking(ctx.session, ctx.tick), "latest_ranking")


def refetch_later(ctx: Context, exc: Exception) -> Later:
    """Keep the suspect answer, then fetch again later (the next fetch asks afresh),
    backing off; after MAX_SUSPECT_FETCHES suspect answers the run fails."""
    if ctx.input is not None:
        keep_answer(ctx, ctx.input)
    fetched = ctx.session.scalar(
        select(func.count()).select_from(RawResponse).where(RawResponse.run_id == ctx.run_id)
    )
    fetched = fetched or 0
    if fetched >= MAX_SUSPECT_FETCHES:
        raise PermanentError(f"{exc} ({fetched} suspect answers in a row; nothing stored)")
    return Later(refetch_delay_s(fetched, SUSPECT_REFETCH_S.get()), stage=FETCH)


def refetch_delay_s(fetched: int, first_s: float) -> float:
    """The wait before fetching again after `fetched` suspect answers: `first_s`
    (TASKPIPES_SUSPECT_REFETCH_S) after the first, doubling after each one since."""
    return first_s * 2 ** (fetched - 1)


# The API only knows the present, so after downtime only the newest missed tick is run.
# Overlap "skip": it keeps no state between ticks, so a tick that comes while the last one
# still runs (deferred by a rate limit, most often) loses nothing the next tick does not
# fetch afresh, and running both would spend the same rate limit twice.
github_top = Pipeline(
    "github_top",
    schedule=Schedule("*/10 * * * *", catchup="latest"),
    overlap="skip",
    stages=(
        Stage(FETCH, fetch_top, outside=True, defer_on=(RateLimited,)),
        Stage(NORMALIZE, normalize, defer_on=(SuspectSnapshot,), later=refetch_later),
        Stage(STORE, store),
        Stage(AGGREGATE, aggregate),
    ),
)
