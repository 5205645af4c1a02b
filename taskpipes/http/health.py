"""GET /healthz (is the process up?) and GET /readyz (does the database answer, and is
every scheduled pipeline's data fresh?)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from taskpipes.declare import clock
from taskpipes.declare.registry import registry
from taskpipes.http.deps import SessionDep
from taskpipes.observe.status import freshness

router = APIRouter()


class Health(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str
    as_of: datetime
    # One entry per check: "database" and each scheduled pipeline.
    checks: dict[str, str]


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


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
