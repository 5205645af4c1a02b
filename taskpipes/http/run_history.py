"""GET /api/runs: the run history, newest tick first, and the paused pipelines; and
GET /api/runs/{id}: one run, each stage with what it handed on (its output, cut)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from taskpipes.declare import clock
from taskpipes.http.deps import SessionDep
from taskpipes.observe.report import stage_json
from taskpipes.observe.status import pause_notes, stage_rows
from taskpipes.store.run_search import MAX_PAGE, RunFilter, SearchError, page, parse_detail
from taskpipes.store.tables import Run

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
    # Set when `taskpipes retry` ran the run again from its unfinished stage: who, when.
    retried_by: str | None = None
    retried_at: datetime | None = None
    # The OpenTelemetry trace of the run (its tick's), when tracing is on.
    trace_id: str | None = None


class StageOut(BaseModel):
    stage: str
    status: str
    attempts: int
    rows_written: int
    # What the stage handed on (its JSON), cut to a readable length (report.MAX_SHOWN_OUTPUT).
    output: str | None


class RunDetail(RunOut):
    stages: list[StageOut]


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
        as_of=clock.now(), paused=pause_notes(session), runs=[run_out(r) for r in rows]
    )


def run_out(run: Run) -> RunOut:
    return RunOut(
        id=run.id,
        pipeline=run.pipeline,
        tick=run.tick,
        status=run.status,
        attempts=run.attempts,
        started_at=run.started_at,
        finished_at=run.finished_at,
        error=run.error,
        cancelled_by=run.cancelled_by,
        cancelled_at=run.cancelled_at,
        retried_by=run.retried_by,
        retried_at=run.retried_at,
        trace_id=run.trace_id,
    )


@router.get("/api/runs/{run_id}", response_model=RunDetail, responses={404: {}})
def get_run(session: SessionDep, run_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> RunDetail:
    """One run and its stages in the order they began, each with its output."""
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id}")
    # Each stage as `taskpipes status --json` shows it.
    stages = [StageOut(**stage_json(row)) for row in stage_rows(session, run_id)]
    return RunDetail(**run_out(run).model_dump(), stages=stages)
