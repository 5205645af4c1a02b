"""GET /api/runs (the run history) and GET /readyz (is the data fresh?)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from taskpipes.declare import clock
from taskpipes.declare.registry import registry
from taskpipes.observe.status import freshness, pause_notes
from taskpipes.store.tables import Run
from web.api.deps import SessionDep

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


class ReadyResponse(BaseModel):
    status: str
    as_of: datetime
    # One entry per check: "database" and each scheduled pipeline.
    checks: dict[str, str]


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


@router.get("/readyz", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
def readyz(session: SessionDep) -> JSONResponse:
    """200 when the database answers and every scheduled pipeline is fresh, else 503."""
    now = clock.now()
    checks = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks.update(_freshness(session, now))
    except SQLAlchemyError as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    ready = all(value == "ok" or value.startswith(("fresh", "paused")) for value in checks.values())
    body = ReadyResponse(status="ready" if ready else "not ready", as_of=now, checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


def _freshness(session: SessionDep, now: datetime) -> dict[str, str]:
    checks = {}
    for name, status in freshness(session, registry.scheduled(), now).items():
        if status.paused is not None:
            checks[name] = f"paused: {status.paused}"  # on purpose: not a reason to be unready
        elif status.last_success is None:
            checks[name] = "stale: never succeeded"
        else:
            state = "fresh" if status.fresh else "stale"
            checks[name] = f"{state}: last success tick {status.last_success.tick.isoformat()}"
    return checks
