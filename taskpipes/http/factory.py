"""The kit's routes as one router, the middleware that goes with them, and the app
`taskpipes serve` runs when the application names no web app of its own."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from taskpipes.http import health, prometheus
from taskpipes.http import pipeline_pages as pages
from taskpipes.http import run_history as runs
from taskpipes.http.security import SecurityHeaders, invalid_request
from taskpipes.store.database import describe_error

logger = logging.getLogger("taskpipes")


def router(metrics_route: bool = True) -> APIRouter:
    """The kit's HTTP pieces, to include in any FastAPI app (`app.include_router(router())`):

    - GET /healthz: 200 while the process serves;
    - GET /readyz: 200 when the database answers and every scheduled pipeline is fresh,
      else 503, with one check per pipeline;
    - GET /api/runs?pipeline=&limit=: the run history, newest tick first, and the pauses;
    - GET /pipelines and /pipelines/{name}: HTML pages of the declared pipelines, their
      schedules, freshness, failures, dead letters and recent runs as a Gantt chart;
    - GET /metrics: the Prometheus text (left out with `metrics_route=False`, when the
      metrics have a port of their own: `taskpipes serve --metrics-port`).

    Every route reads the database `taskpipes.configure` (or DATABASE_URL) names and the
    pipelines declared on `taskpipes.registry`; none writes. `equip(app)` adds the
    middleware the kit's own app runs them with (security headers, request timing).
    """
    kit = APIRouter()
    for part in (health, runs, pages):
        kit.include_router(part.router)
    if metrics_route:
        kit.include_router(prometheus.router)
    return kit


def equip(app: FastAPI) -> FastAPI:
    """`app` with the kit's middleware and error handlers: security headers on every answer
    and HEAD wherever GET works, each request timed for
    taskpipes_api_request_duration_seconds, a 422 that echoes at most a line of the
    caller's input, and a 503 that names no more than the error's class when the database
    is down. Returns `app`."""
    app.middleware("http")(prometheus.time_request)
    # Added last, so it wraps the rest: HEAD reaches the routes as GET.
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(SQLAlchemyError, database_unavailable)  # type: ignore[arg-type]
    return app


def create_app(metrics_route: bool = True, title: str = "taskpipes") -> FastAPI:
    """A FastAPI app serving `router(metrics_route)` alone, `equip`ped."""
    # No /docs or /redoc: both load script from a CDN, which the pages' policy forbids;
    # the schema stays at /openapi.json.
    app = FastAPI(title=title, version="0.1.0", docs_url=None, redoc_url=None)
    equip(app).include_router(router(metrics_route))
    return app


def database_unavailable(request: Request, exc: SQLAlchemyError) -> JSONResponse:
    # A database outage is the server's trouble, not the caller's: 503, say so, no trace.
    # The operator's log gets the driver's line; the caller only the error's class.
    logger.error("%s: database unavailable: %s", request.url.path, describe_error(exc))
    return JSONResponse({"detail": f"database unavailable: {type(exc).__name__}"}, status_code=503)
