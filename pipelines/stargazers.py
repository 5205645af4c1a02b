"""The stargazers pipeline: targets -> plan -> pages, each page an independent, paced message.

targets looks up the one repository a run names, if any (outside any transaction), and
hands it on; plan lists the pages to fetch (that repository, or the latest top 100) from
each repository's cursor; pages is a fan-out: the waves (actors/stargazers.py) send them spaced by
`spread.page_gap`; each page is fetched, its events upserted and counted in one
transaction. The page that completes a repository rebuilds that repository's daily
counts and moves its cursor; the page that completes the run lets the actor close it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from db.models import (
    LatestRanking,
    StarDay,
    StarEvent,
    StargazerCursor,
    StargazerPacing,
    StargazerPage,
    StargazerPlan,
    StargazerRun,
)
from pipelines import spread
from pipelines.config import GITHUB_TOKEN
from pipelines.github import GitHubClient, github_client
from pipelines.github_errors import InvalidPayload, PermanentError
from pipelines.star_history import Stargazer, daily_cumulative, parse_stargazers
from taskpipes import Context, FanOut, Pipeline, Retries, Stage
from taskpipes.declare.pipeline import STAGE_TIME_LIMIT_MS
from taskpipes.observe import metrics
from taskpipes.store import runs
from taskpipes.store.database import affected_rows, begin
from taskpipes.store.tables import Run
from taskpipes.store.upsert import upsert

PIPELINE = "stargazers"
TARGETS, PLAN, PAGES = "targets", "plan", "pages"
STAR_JSON = "application/vnd.github.star+json"
# Transient failures back off from 2 s to 5 min, 6 tries in all. Time limits stay far
# below RabbitMQ's 30-minute consumer_timeout: a page or a wave takes seconds, a plan
# may list a hundred repositories' cursors.
RETRIES = Retries(max=5, min_backoff_ms=2_000, max_backoff_ms=300_000, time_limit_ms=2 * 60_000)
PLAN_RETRIES = replace(RETRIES, time_limit_ms=STAGE_TIME_LIMIT_MS)


@dataclass(frozen=True)
class RunOptions:
    repo: str | None
    rate: int
    api_rate: int


@dataclass(frozen=True)
class Target:
    """A repository to list, with the star count (and its time) the plan relies on."""

    repo_id: int
    full_name: str
    stars: int
    counted_at: datetime


@dataclass(frozen=True)
class Progress:
    status: str
    planned: int
    done: int
    rows: int


@dataclass(frozen=True)
class PageJob:
    """What a page message needs, read in one query."""

    repo_id: int
    full_name: str
    page: int
    run_status: str
    stored: bool


def record_options(session: Session, run_id: int, given: Mapping[str, Any]) -> None:
    """Keep the run's options (a re-opened run takes the new ones) with fresh counters."""
    options = RunOptions(
        repo=given.get("repo"),
        rate=given.get("rate") or spread.DEFAULT_RATE,
        api_rate=given.get("api_rate") or spread.default_api_rate(bool(GITHUB_TOKEN.get())),
    )
    upsert(
        session,
        StargazerRun.__table__,
        [
            {
                "run_id": run_id,
                "repo": options.repo,
                "rate": options.rate,
                "api_rate": options.api_rate,
            }
        ],
        key=("run_id",),
    )


def named_repo(ctx: Context) -> dict[str, Any] | None:
    """The repository the run names (`--repo`), as GitHub describes it now; None when the
    run names none (plan then takes the latest top 100). Its input is the tick's options."""
    repo = (ctx.input or {}).get("repo")
    if repo is None:
        return None
    found = look_up(repo, ctx.now)
    return {**asdict(found), "counted_at": found.counted_at.isoformat()}


def look_up(repo: str, now: datetime) -> Target:
    with github_client() as client:
        payload = client.get("repo", f"/repos/{repo}").payload
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), int):
        raise InvalidPayload(f"GitHub repo {repo}: answer has no numeric id")
    return Target(payload["id"], payload["full_name"], int(payload["stargazers_count"]), now)


def chosen_targets(ctx: Context, options: RunOptions) -> list[Target]:
    """The repository `targets` handed on, else the latest top 100 as ranked."""
    if ctx.input is not None:
        found = ctx.input
        return [Target(**{**found, "counted_at": datetime.fromisoformat(found["counted_at"])})]
    if options.repo is not None:
        # A run planned before stages handed on outputs: no `targets` record to read.
        return [look_up(options.repo, ctx.now)]
    ranking = ctx.session.scalars(select(LatestRanking).order_by(LatestRanking.rank)).all()
    if not ranking:
        raise PermanentError("no top 100 stored yet: run `taskpipes run github_top` first")
    return [Target(r.repo_id, r.full_name, r.stars, r.tick) for r in ranking]


def stored_full_pages(session: Session, repo_id: int) -> set[int]:
    """Pages of a repository stored full by any run, killed or failed ones included."""
    return set(
        session.scalars(
            select(StargazerPage.page).where(
                StargazerPage.repo_id == repo_id,
                StargazerPage.rows == spread.PER_PAGE,
                StargazerPage.stored_at.is_not(None),
            )
        )
    )


def plan(ctx: Context) -> int:
    """Write the run's page plan in send order; hands on the number of pages planned."""
    row = ctx.session.get_one(StargazerRun, ctx.run_id)
    options = RunOptions(row.repo, row.rate, row.api_rate)
    chosen = chosen_targets(ctx, options)
    gap = spread.page_gap(options.rate, options.api_rate)
    planned = ctx.wrote(_write_plan(ctx.session, ctx.run_id, chosen, ctx.now), "stargazer_pages")
    ctx.session.execute(
        update(StargazerRun)
        .where(StargazerRun.run_id == ctx.run_id)
        .values(
            gap_seconds=gap,
            planned_pages=planned,
            sent_pages=0,
            done_pages=0,
            rows_stored=0,
            wave=0,
            # A --repo plan spent one request: the first page waits one gap for it.
            next_wave_at=ctx.now + timedelta(seconds=gap if options.repo else 0),
        )
    )
    return planned


def _write_plan(session: Session, run_id: int, chosen: list[Target], now: datetime) -> int:
    # A re-opened run plans afresh.
    session.execute(delete(StargazerPage).where(StargazerPage.run_id == run_id))
    session.execute(delete(StargazerPlan).where(StargazerPlan.run_id == run_id))
    seq = 0
    for target in chosen:
        cursor = session.get(StargazerCursor, target.repo_id)
        next_page = cursor.next_page if cursor else 1
        pages = spread.pages_to_fetch(
            target.stars, next_page, stored_full_pages(session, target.repo_id)
        )
        if cursor is not None and not pages and spread.is_capped(target.stars):
            cursor.complete = False  # grew past the cap since its list was stored full
        if not pages:
            continue
        session.add(
            StargazerPlan(
                run_id=run_id,
                repo_id=target.repo_id,
                full_name=target.full_name,
                stars=target.stars,
                counted_at=target.counted_at,
            )
        )
        session.add_all(
            StargazerPage(run_id=run_id, repo_id=target.repo_id, page=page, seq=seq + i)
            for i, page in enumerate(pages)
        )
        seq += len(pages)
    return seq


@dataclass(frozen=True)
class Wave:
    """The pages one wave sends, one gap apart; or how long it must wait first."""

    pages: list[tuple[int, int]]  # (repo_id, page) in send order
    gap_s: float
    more: bool  # another wave follows this one
    wait_s: float = 0.0


def take_wave(session: Session, run_id: int, wave: int, now: datetime) -> Wave | None:
    """Claim wave number `wave` of a running run; None for a stale or duplicate message.

    The counter row is locked, so a duplicate delivery waits here, then finds the wave
    number moved on. The next wave may start one gap after this wave's last page, and no
    wave of another run starts before then either (StargazerPacing).
    """
    state = session.get(StargazerRun, run_id, with_for_update=True)
    run = runs.get_run(session, run_id)
    if state is None or state.wave != wave or run is None or run.status != runs.RUNNING:
        return None
    gap, sent, planned = state.gap_seconds, state.sent_pages, state.planned_pages
    shared = _shared_pacing(session, now)  # locked after the run's row, always in this order
    start = max(state.next_wave_at or now, shared.next_wave_at)
    if now < start:
        return Wave([], gap, True, wait_s=(start - now).total_seconds())
    if wave == 0:
        runs.begin_stage(session, run_id, PAGES)
    pages = _next_pages(session, run_id, sent, spread.wave_size(gap))
    until = now + timedelta(seconds=len(pages) * gap)
    shared.next_wave_at = until
    session.execute(
        update(StargazerRun)
        .where(StargazerRun.run_id == run_id)
        .values(sent_pages=sent + len(pages), wave=wave + 1, next_wave_at=until)
    )
    return Wave(pages, gap, sent + len(pages) < planned)


def _shared_pacing(session: Session, now: datetime) -> StargazerPacing:
    """The pacing row every run shares, created if absent, locked for this transaction."""
    row = {"name": PIPELINE, "next_wave_at": now}
    upsert(session, StargazerPacing.__table__, [row], key=("name",), update=())
    return session.get_one(StargazerPacing, PIPELINE, with_for_update=True)


def _next_pages(session: Session, run_id: int, first_seq: int, count: int) -> list[tuple[int, int]]:
    rows = session.execute(
        select(StargazerPage.repo_id, StargazerPage.page)
        .where(StargazerPage.run_id == run_id, StargazerPage.seq >= first_seq)
        .order_by(StargazerPage.seq)
        .limit(count)
    )
    return [(repo_id, page) for repo_id, page in rows]


def page_job(run_id: int, repo_id: int, page: int) -> PageJob | None:
    with begin() as session:
        row = session.execute(
            select(StargazerPlan.full_name, StargazerPage.stored_at, Run.status)
            .join(
                StargazerPlan,
                (StargazerPlan.run_id == StargazerPage.run_id)
                & (StargazerPlan.repo_id == StargazerPage.repo_id),
            )
            .join(Run, Run.id == StargazerPage.run_id)
            .where(
                StargazerPage.run_id == run_id,
                StargazerPage.repo_id == repo_id,
                StargazerPage.page == page,
            )
        ).first()
    if row is None:
        return None
    full_name, stored_at, status = row
    return PageJob(repo_id, full_name, page, status, stored_at is not None)


def page_path(repo_id: int, page: int) -> str:
    """The page as GitHub's own `link` URLs name it: by id, so a rename costs no redirect."""
    return f"/repositories/{repo_id}/stargazers?per_page={spread.PER_PAGE}&page={page}"


def fetch_page(client: GitHubClient, job: PageJob) -> list[Stargazer]:
    url = page_path(job.repo_id, job.page)
    payload = client.get("stargazers", url, accept=STAR_JSON).payload
    return parse_stargazers(payload, f"{job.full_name} stargazers page {job.page}")


def store_page(
    session: Session, run_id: int, repo_id: int, page: int, stars: list[Stargazer], now: datetime
) -> bool:
    """Upsert one page's events and count the page once; False when it was already counted.

    Marking the page stored is a conditional UPDATE, so of two deliveries of one page only
    one counts it. Every first store then increments the run's counter row, which on
    PostgreSQL locks it: first stores of one run take turns from there to commit, and
    each sees every earlier one, so exactly one of them sees its repository complete.
    """
    insert_star_events(session, repo_id, stars, now)
    first = affected_rows(
        session.execute(
            update(StargazerPage)
            .where(
                StargazerPage.run_id == run_id,
                StargazerPage.repo_id == repo_id,
                StargazerPage.page == page,
                StargazerPage.stored_at.is_(None),
            )
            .values(rows=len(stars), stored_at=now)
        )
    )
    if not first:
        return False
    session.execute(
        update(StargazerRun)
        .where(StargazerRun.run_id == run_id)
        .values(
            done_pages=StargazerRun.done_pages + 1,
            rows_stored=StargazerRun.rows_stored + len(stars),
        )
    )
    if not _pages_left(session, run_id, repo_id):
        finish_repo(session, run_id, repo_id, now)
    return True


def insert_star_events(
    session: Session, repo_id: int, stars: list[Stargazer], now: datetime
) -> int:
    """Insert events absent so far: an event is never duplicated nor rewritten."""
    rows = [
        {"repo_id": repo_id, "user_id": s.user_id, "starred_at": s.starred_at, "inserted_at": now}
        for s in stars
    ]
    written = upsert(session, StarEvent.__table__, rows, key=("repo_id", "user_id"), update=())
    metrics.rows_written("star_events", written)
    return written


def _pages_left(session: Session, run_id: int, repo_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(StargazerPage)
            .where(
                StargazerPage.run_id == run_id,
                StargazerPage.repo_id == repo_id,
                StargazerPage.stored_at.is_(None),
            )
        )
        or 0
    )


def finish_repo(session: Session, run_id: int, repo_id: int, now: datetime) -> None:
    """Rebuild the repository's daily counts from its events and move its cursor."""
    plan_row = session.get_one(StargazerPlan, (run_id, repo_id))
    starred = list(
        session.scalars(
            select(StarEvent.starred_at)
            .where(StarEvent.repo_id == repo_id)
            .order_by(StarEvent.starred_at)
        )
    )
    session.execute(delete(StarDay).where(StarDay.repo_id == repo_id))
    upsert(
        session,
        StarDay.__table__,
        [
            {"repo_id": repo_id, "day": day, "stars": stars}
            for day, stars in daily_cumulative(starred)
        ],
        key=("repo_id", "day"),
    )
    capped = spread.is_capped(plan_row.stars)
    cursor = {
        "repo_id": repo_id,
        "full_name": plan_row.full_name,
        "next_page": spread.first_unstored(stored_full_pages(session, repo_id)),
        "complete": not capped,
        # A capped list is exact up to its last (newest listed) star, no further.
        "as_of": starred[-1] if capped and starred else plan_row.counted_at,
        "updated_at": now,
    }
    upsert(session, StargazerCursor.__table__, [cursor], key=("repo_id",))


def rows_if_done(session: Session, run_id: int) -> int | None:
    """The rows the run stored once every planned page is stored; None before."""
    state = progress(session, run_id)
    return None if state is None or state.done < state.planned else state.rows


def progress(session: Session, run_id: int) -> Progress | None:
    row = session.execute(
        select(
            Run.status,
            StargazerRun.planned_pages,
            StargazerRun.done_pages,
            StargazerRun.rows_stored,
        )
        .join(StargazerRun, StargazerRun.run_id == Run.id)
        .where(Run.id == run_id)
    ).first()
    return None if row is None else Progress(*row)


stargazers = Pipeline(
    PIPELINE,
    stages=(
        Stage(TARGETS, named_repo, outside=True, retries=RETRIES),
        Stage(PLAN, plan, retries=PLAN_RETRIES),
        FanOut(PAGES, start="wave"),
    ),
    retries=RETRIES,
    tick_options=("repo", "rate", "api_rate"),
    on_claim=record_options,
)
