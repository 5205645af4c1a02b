"""The kit's HTTP pieces, as a FastAPI router any application includes: health, readiness,
the run history, the pipelines' pages and the metrics.

    from fastapi import FastAPI
    from taskpipes.http import equip, router

    app = equip(FastAPI())          # optional: the kit's security headers and timing
    app.include_router(router())    # /healthz /readyz /api/runs /pipelines /metrics

`create_app()` is that app alone: what `taskpipes serve` runs when the application names
no web app of its own (`taskpipes.Application(web=...)`).
"""

from __future__ import annotations

from taskpipes.http.factory import create_app, equip, router

__all__ = ["create_app", "equip", "router"]
