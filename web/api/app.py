"""The FastAPI application: one router per resource, timed for Prometheus."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

import pipelines.catalog  # noqa: F401  (the declarations /readyz and the pages read)
from taskpipes.store.database import describe_error
from web.api import history, languages, observe, runs, stars, top, trending
from web.api.observe import time_request
from web.api.schemas import Health
from web.api.security import SecurityHeaders, invalid_request
from web.pages import pages, pipelines_pages

logger = logging.getLogger("taskpipes")


def create_app(metrics_route: bool = True) -> FastAPI:
    """The API; without `metrics_route`, /metrics is served elsewhere (serve --metrics-port)."""
    # No /docs or /redoc: both load script from a CDN, which the pages' policy forbids;
    # the schema stays at /openapi.json.
    app = FastAPI(title="taskpipes read API", version="0.1.0", docs_url=None, redoc_url=None)
    app.middleware("http")(time_request)
    # Added last, so it wraps the rest: HEAD reaches the routes as GET.
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]

    @app.get("/healthz", response_model=Health)
    def healthz() -> Health:
        return Health(status="ok")

    @app.exception_handler(SQLAlchemyError)
    def database_unavailable(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        # A database outage is the server's trouble, not the caller's: 503, say so, no trace.
        # The operator's log gets the driver's line; the caller only the error's class.
        logger.error("%s: database unavailable: %s", request.url.path, describe_error(exc))
        return JSONResponse(
            {"detail": f"database unavailable: {type(exc).__name__}"}, status_code=503
        )

    for module in (top, trending, languages, history, stars, runs, pages, pipelines_pages):
        app.include_router(module.router)
    if metrics_route:
        app.include_router(observe.router)
    return app
