"""The FastAPI application: the kit's router and one router per resource of ours, timed
for Prometheus."""

from __future__ import annotations

from fastapi import FastAPI

import pipelines.catalog  # noqa: F401  (the declarations /readyz and the pages read)
from taskpipes.http import equip, router
from web.api import history, languages, stars, top, trending
from web.pages import pages


def create_app(metrics_route: bool = True) -> FastAPI:
    """The API; without `metrics_route`, /metrics is served elsewhere (serve --metrics-port)."""
    # No /docs or /redoc: both load script from a CDN, which the pages' policy forbids;
    # the schema stays at /openapi.json.
    app = equip(FastAPI(title="taskpipes read API", version="0.1.0", docs_url=None, redoc_url=None))
    for module in (top, trending, languages, history, stars, pages):
        app.include_router(module.router)
    # /healthz, /readyz, /api/runs, /pipelines and /metrics.
    app.include_router(router(metrics_route))
    return app
