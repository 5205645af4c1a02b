"""GET /pipelines and GET /pipelines/{name}: the pipelines for the people who run them.

Read-only, like the rest of the kit's routes (which have no authentication): pause,
resume, cancel and dead-letter replay stay CLI commands, and the pages say so. Not cached:
they show runs in progress. They render the kit's own templates (templates/), whose
base.html a host's pages may extend (`{% extends "taskpipes/base.html" %}` through
`template_loader()`).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from taskpipes.declare import clock
from taskpipes.declare.registry import registry
from taskpipes.http import operations
from taskpipes.http.policy import page_policy, show_controls, site_css
from taskpipes.http.security import bounded
from taskpipes.observe.report import PipelineStatus, shown_output
from taskpipes.observe.status import freshness, gather, stage_rows
from taskpipes.store.database import reading
from taskpipes.store.tables import Run

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


def template_loader() -> PackageLoader:
    """The kit's templates: base.html (the frame and the paused and stale banners, which
    read `statuses` and a `when` filter), pipelines.html, pipeline.html, notice.html."""
    return PackageLoader("taskpipes.http", "templates")


def moment_text(moment: datetime | None) -> Markup:
    """`2026-08-21 13:00 UTC`; Markup: a formatted moment holds no markup to escape."""
    return Markup("never" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC"))


# Pure memoisation: the templates and their filters depend on no configuration.
@cache
def templates() -> Environment:
    env = Environment(
        loader=template_loader(),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=show_controls,
    )
    env.globals["site_css"] = site_css()
    env.filters["when"] = moment_text
    return env


def render(name: str, status_code: int = 200, **context: Any) -> Response:
    html = templates().get_template(name).render(**context)
    headers = NO_STORE | {"Content-Security-Policy": page_policy(str(site_css()))}
    return HTMLResponse(html, status_code=status_code, headers=headers)


def scheduled_freshness(now: datetime) -> list[PipelineStatus]:
    """What the banners show: each scheduled pipeline by /readyz's freshness rule."""
    with reading() as session:
        return list(freshness(session, registry.scheduled(), now).values())


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines_page() -> Response:
    now = clock.now()
    rows = operations.pipeline_rows(registry.pipelines, gather(now), now)
    return render("pipelines.html", rows=rows, now=now, statuses=scheduled_freshness(now))


@router.get("/pipelines/{name}", response_class=HTMLResponse)
def pipeline_page(name: str) -> Response:
    now = clock.now()
    statuses = scheduled_freshness(now)
    try:
        pipeline = registry.get(name)
    except KeyError:
        known = ", ".join(p.name for p in registry.pipelines)
        heading, message = f"No pipeline named {bounded(name)}", f"The pipelines are {known}."
        return render("notice.html", 404, heading=heading, message=message, statuses=statuses)
    with reading() as session:
        chart = operations.gantt(pipeline, operations.recent_runs(session, name))
    status = next(s for s in gather(now) if s.pipeline == name)
    row = operations.pipeline_rows([pipeline], [status], now)[0]
    return render(
        "pipeline.html",
        row=row,
        chart=chart,
        recent=operations.RECENT_RUNS,
        newest=[(stage, shown_output(stage.output)) for stage in status.newest_stages],
        geometry=operations,
        now=now,
        statuses=statuses,
    )


@router.get("/pipelines/{name}/runs/{run_id}", response_class=HTMLResponse)
def run_page(name: str, run_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> Response:
    """One run: its status, who retried it, its trace id (tracing on), and each stage with
    its output."""
    now = clock.now()
    with reading() as session:
        run = session.get(Run, run_id)
        stages = [] if run is None else stage_rows(session, run_id)
    if run is None or run.pipeline != name:
        heading = f"No run {run_id} of {bounded(name)}"
        message = "Its pipeline's page lists the recent runs."
        return render(
            "notice.html", 404, heading=heading, message=message, statuses=scheduled_freshness(now)
        )
    shown = [(stage, shown_output(stage.output)) for stage in stages]
    return render("run.html", run=run, stages=shown, now=now, statuses=scheduled_freshness(now))
