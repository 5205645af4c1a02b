"""GET /api/runs: the run history, newest tick first, and the paused pipelines."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from taskpipes.declare import clock
from taskpipes.http.deps import SessionDep
from taskpipes.observe.status import pause_notes
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


class RunsResponse(BaseModel):
    as_of: datetime
    # The paused pipelines (`taskpipes pause`), each with who paused it, when and why.
    paused: dict[str, str]
    runs: list[RunOut]


@router.get("/api/runs", response_model=RunsResponse)
def list_runs(
    session: SessionDep,
    pipeline: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RunsResponse:
    """The run history, newest tick first (indexed on pipeline, status, tick)."""
    query = select(Run).order_by(Run.tick.desc(), Run.id.desc()).limit(limit)
    if pipeline is not None:
        query = query.where(Run.pipeline == pipeline)
    rows = session.scalars(query).all()
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
