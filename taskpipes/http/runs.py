"""GET /api/runs: the run history, newest tick first, and the paused pipelines."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from taskpipes.declare import clock
from taskpipes.http.deps import SessionDep
from taskpipes.observe.status import pause_notes
from taskpipes.store.run_search import MAX_PAGE, RunFilter, SearchError, page, parse_detail

router = APIRouter()


class RunOut(BaseModel):
    id: int
    pipeline: str
    tick: datetime
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    # Set when `taskpipes cancel` (or the cancel_previous overlap policy) ended the run.
    cancelled_by: str | None = None
    cancelled_at: datetime | None = None


class RunsResponse(BaseModel):
    as_of: datetime
    # The paused pipelines (`taskpipes pause`), each with who paused it, when and why.
    paused: dict[str, str]
    runs: list[RunOut]


@router.get("/api/runs", response_model=RunsResponse)
def list_runs(
    session: SessionDep,
    pipeline: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    status: Annotated[list[str] | None, Query(max_length=20)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    detail: Annotated[str | None, Query(max_length=200, description="KEY=VALUE")] = None,
    after: Annotated[
        int | None, Query(ge=1, description="the last run id of the page before")
    ] = None,
) -> RunsResponse:
    """The run history, newest tick first, filtered as `taskpipes runs` filters it, a page
    at a time (indexed on pipeline, status, tick)."""
    try:
        runs = RunFilter(
            pipeline=pipeline,
            statuses=tuple(status or ()),
            since=since,
            until=until,
            error=error,
            detail=parse_detail(detail) if detail else None,
        )
        rows = page(session, runs, limit, after)
    except SearchError as exc:
        # The shape of every other 422 here (the OpenAPI schema's HTTPValidationError).
        problem = {"loc": ["query"], "msg": str(exc), "type": "value_error", "input": None}
        raise RequestValidationError([problem]) from None
    return RunsResponse(
        as_of=clock.now(),
        paused=pause_notes(session),
        runs=[
            RunOut(
                id=r.id,
                pipeline=r.pipeline,
                tick=r.tick,
                status=r.status,
                attempts=r.attempts,
                started_at=r.started_at,
                finished_at=r.finished_at,
                error=r.error,
                cancelled_by=r.cancelled_by,
                cancelled_at=r.cancelled_at,
            )
            for r in rows
        ],
    )
