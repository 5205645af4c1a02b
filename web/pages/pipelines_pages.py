"""GET /pipelines and GET /pipelines/{name}: the pipelines for the people who run them.

Read-only, like the rest of the read API (which has no authentication): pause, resume,
cancel and dead-letter replay stay CLI commands, and the pages say so. Not cached: they
show runs in progress.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from taskpipes.declare import clock
from taskpipes.declare.registry import registry
from taskpipes.observe.status import gather
from web.pages import operations, reads
from web.pages.pages import (
    data_freshness,
    notice,
    page_frame,
    page_headers,
    page_reads,
    render,
)

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines_page() -> Response:
    now = clock.now()
    statuses = gather(now)
    with page_reads() as (session, connection):
        frame = page_frame(now, reads.read_version(connection), data_freshness(session, now))
    rows = operations.pipeline_rows(registry.pipelines, statuses, now)
    return render("pipelines.html", NO_STORE | page_headers(), rows=rows, **frame)


@router.get("/pipelines/{name}", response_class=HTMLResponse)
def pipeline_page(name: str) -> Response:
    now = clock.now()
    with page_reads() as (session, connection):
        frame = page_frame(now, reads.read_version(connection), data_freshness(session, now))
        try:
            pipeline = registry.get(name)
        except KeyError:
            known = ", ".join(p.name for p in registry.pipelines)
            return notice(404, f"No pipeline named {name}", f"The pipelines are {known}.", frame)
        chart = operations.gantt(pipeline, operations.recent_runs(session, name))
    status = next(s for s in gather(now) if s.pipeline == name)
    row = operations.pipeline_rows([pipeline], [status], now)[0]
    return render(
        "pipeline.html",
        NO_STORE | page_headers(),
        row=row,
        chart=chart,
        recent=operations.RECENT_RUNS,
        geometry=operations,
        **frame,
    )
