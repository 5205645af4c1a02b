"""GET / (the top 100 and trending) and GET /repos/{owner}/{name}: HTML for people.

Both pages are rendered on the server from the precomputed tables (web.pages.reads)
and carry a weak ETag derived from the data's version (the served ranking's tick, the
rollup state, the freshness verdict): a matching If-None-Match is answered 304 before
anything is rendered. Cache-Control lets a page be reused until the next github_top tick.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import Any, cast
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader, PrefixLoader, select_autoescape
from markupsafe import Markup
from periodiq import CronSpec
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from pipelines.charts import age_text, entity_tag, moment_text, seconds_until, tag_matches
from pipelines.trending import WINDOWS
from taskpipes.declare import clock
from taskpipes.declare.registry import registry
from taskpipes.declare.schedule import floor_tick
from taskpipes.http.deps import read_connection
from taskpipes.http.pipeline_pages import template_loader
from taskpipes.http.policy import page_policy, show_controls, site_css, stylesheet
from taskpipes.http.security import bounded
from taskpipes.observe.report import PipelineStatus
from taskpipes.observe.status import freshness
from web.api.history import find_repository
from web.api.languages import languages_response
from web.api.trending import Window, trending_response
from web.pages import reads, views

router = APIRouter(include_in_schema=False)

# The pipelines whose tables the pages show (the top list, its rollups, the languages
# table): their freshness is the page's.
SHOWN_PIPELINES = ("github_top", "rollup", "language_stats")
# The star history's y scales: ?scale=log reads the early history of a big repository.
SCALES = ("linear", "log")
# Trending rows shown per window.
TRENDING_ROWS = 25


# Pure memoisation, here, in templates() and in the formatters below: the stylesheets,
# the templates and their filters depend on no configuration.
@cache
def pages_css() -> Markup:
    """What the pages inline: the kit's stylesheet (their frame is the kit's base.html),
    then ours."""
    return site_css() + stylesheet("web.pages")


@cache
def templates() -> Environment:
    # Ours first; the kit's under taskpipes/, for base.html to extend the kit's frame.
    loader = ChoiceLoader(
        [PackageLoader("web.pages", "templates"), PrefixLoader({"taskpipes": template_loader()})]
    )
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=show_controls,
    )
    env.globals["site_css"] = pages_css()
    # Numbers and moments we format hold no markup: Markup skips escaping and the bidi
    # filter, a repository page's ~1,000 small strings.
    env.filters["count"] = lambda n: Markup("" if n is None else f"{n:,}")
    env.filters["signed"] = lambda n: Markup("n/a" if n is None else f"{n:+,}")
    # Every row links to its repository: each name is quoted once per process, not per page.
    env.filters["urlencode"] = repo_path
    env.filters["when"] = when
    env.filters["iso"] = iso
    return env


@lru_cache(maxsize=4096)
def when(moment: datetime | None) -> Markup:
    """A moment as the pages print it; a repository page prints ~300 bucket starts, the
    same ones until the next rollup, so each is formatted once."""
    return Markup("never" if moment is None else moment_text(moment))


@lru_cache(maxsize=4096)
def iso(moment: datetime) -> Markup:
    """A `<time datetime>` value, formatted once per bucket start like `when`."""
    return Markup(moment.isoformat())


@lru_cache(maxsize=4096)
def repo_path(full_name: str) -> str:
    """`owner/name` quoted for a URL path, as Jinja's urlencode does it (the slash kept)."""
    return quote(full_name, safe="/")


@contextmanager
def page_reads() -> Iterator[tuple[Session, Connection]]:
    with read_connection() as connection, Session(bind=connection) as session:
        yield session, connection


def data_freshness(session: Session, now: datetime) -> list[PipelineStatus]:
    entries = [registry.get(name) for name in SHOWN_PIPELINES]
    return list(freshness(session, entries, now).values())


def cache_headers(tag: str, now: datetime) -> dict[str, str]:
    """Reusable until the next github_top tick: the earliest the page can change."""
    spec, period = _github_top_cadence()
    next_tick = floor_tick(spec, now) + period
    return {
        **page_headers(),
        "ETag": tag,
        "Cache-Control": f"public, max-age={seconds_until(now, next_tick)}",
    }


def page_headers() -> dict[str, str]:
    """On every page and its 304: a revalidated page keeps the headers of the 304."""
    return {"Content-Security-Policy": page_policy(str(pages_css()))}


def _github_top_cadence() -> tuple[CronSpec, timedelta]:
    """Parsed once per configuration (TASKPIPES_SCHEDULE_GITHUB_TOP may override it): the
    registry hands out the same declaration each time, its cron parsed once."""
    schedule = registry.get("github_top").schedule
    assert schedule is not None, "github_top is scheduled"
    return schedule.spec, schedule.period


def not_modified(request: Request, headers: dict[str, str]) -> Response | None:
    if tag_matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return None


def render(name: str, headers: dict[str, str], status_code: int = 200, **context: Any) -> Response:
    html = templates().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def stale_of(statuses: list[PipelineStatus]) -> tuple[str, ...]:
    return tuple(status.pipeline for status in statuses if not status.fresh)


@router.get("/", response_class=HTMLResponse)
def top_page(request: Request, window: str = "24h") -> Response:
    now = clock.now()
    with page_reads() as (session, connection):
        version = reads.read_version(connection)
        statuses = data_freshness(session, now)
        frame = page_frame(now, version, statuses)
        if window not in WINDOWS:
            # A person followed a bad link: a page that says so, not the API's JSON.
            message = f"Trending covers {', '.join(WINDOWS)}."
            return notice(422, f"No trending window named {bounded(window)}", message, frame)
        headers = cache_headers(entity_tag("top", window, version, stale_of(statuses)), now)
        unchanged = not_modified(request, headers)
        if unchanged is not None:
            return unchanged
        rows = reads.top_rows(connection)
        trending = trending_response(connection, cast(Window, window), TRENDING_ROWS)
        languages = languages_response(connection)
    return render(
        "top.html",
        headers,
        rows=rows,
        trending=trending,
        windows=list(WINDOWS),
        languages=languages,
        **frame,
    )


@router.get("/repos/{owner}/{name}", response_class=HTMLResponse)
def repo_page(request: Request, owner: str, name: str, scale: str = "linear") -> Response:
    now = clock.now()
    with page_reads() as (session, connection):
        version = reads.read_version(connection)
        statuses = data_freshness(session, now)
        frame = page_frame(now, version, statuses)
        repo = find_repository(session, f"{owner}/{name}")
        if repo is None:
            message = "We only know the repositories that have been in the top 100."
            return notice(404, f"No repository named {bounded(f'{owner}/{name}')}", message, frame)
        if scale not in SCALES:
            message = f"The star history is drawn on a {' or a '.join(SCALES)} scale."
            return notice(422, f"No scale named {bounded(scale)}", message, frame)
        cursor = reads.stargazer_cursor(connection, repo.id)
        tag = entity_tag(
            "repo",
            scale,
            (repo.id, repo.full_name, repo.last_seen),
            None if cursor is None else cursor.updated_at,
            version,
            stale_of(statuses),
        )
        headers = cache_headers(tag, now)
        unchanged = not_modified(request, headers)
        if unchanged is not None:
            return unchanged
        stored = reads.repo_chart(connection, repo.id)
        precomputed = None if stored is None else views.ChartData.from_json(stored)
        page = views.repo_page(
            connection, repo, cursor, version.rollup_as_of, precomputed, scale == "log"
        )
    return render("repo.html", headers, page=page, **frame)


def page_frame(
    now: datetime, version: reads.Version, statuses: list[PipelineStatus]
) -> dict[str, Any]:
    """What every page's frame shows: the data's age and the stale banner."""
    return {"now": now, "version": version, "statuses": statuses, "age": _age(version, now)}


def notice(status_code: int, heading: str, message: str, frame: dict[str, Any]) -> Response:
    """A page that tells a person what was wrong with the address, in the site's frame."""
    headers = page_headers()
    return render("notice.html", headers, status_code, heading=heading, message=message, **frame)


def _age(version: reads.Version, now: datetime) -> str | None:
    return None if version.ranking_tick is None else age_text(version.ranking_tick, now)
