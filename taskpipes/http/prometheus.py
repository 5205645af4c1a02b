"""Request timing for taskpipes_api_request_duration_seconds, and the /metrics route."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from taskpipes.observe import metrics

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def prometheus_metrics() -> Response:
    return Response(metrics.metrics_text(), media_type=CONTENT_TYPE_LATEST)


async def time_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    # The route template, never the raw path: label values stay bounded.
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    metrics.api_request(template, response.status_code, time.perf_counter() - started)
    return response
