"""Routing and the shared pipeline for GitHub endpoints: faults, ETag/304, rate limits."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from githubsim import badbodies, endpoints
from githubsim.endpoints import Answer
from githubsim.faults import Fault
from githubsim.foreign import point_elsewhere
from githubsim.messages import (
    JSON_TYPE,
    Request,
    Response,
    encode_json,
    etag_matches,
    etag_of,
)
from githubsim.ratelimit import Quota
from githubsim.state import SimState

BY_NAME = re.compile(r"^/repos/([^/]+/[^/]+?)(/stargazers)?/?$")
BY_ID = re.compile(r"^/repositories/(\d+)(/stargazers)?/?$")
RATE_LIMITED = {
    "message": "API rate limit exceeded. (But here's the good news: Authenticated requests get "
    "a higher rate limit. Check out the documentation for more details.)",
    "documentation_url": f"{endpoints.DOCS}/overview/rate-limits-for-the-rest-api",
}
SECONDARY_LIMITED = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you "
    "try again.",
    "documentation_url": f"{endpoints.DOCS}/overview/rate-limits-for-the-rest-api",
}
# Sent on every GitHub answer, as api.github.com does.
GITHUB_HEADERS = {"x-github-media-type": "github.v3; format=json"}
# What GitHub says of a star+json answer.
STAR_MEDIA_TYPE = "github.v3; param=star; format=json"
# Search answers are never cached nor revalidated: no ETag, this Cache-Control.
SEARCH_CACHE = {"cache-control": "no-cache"}

Handler = Callable[[SimState, Request], Answer]


@dataclass(frozen=True)
class Route:
    endpoint: str  # name in the request log and for faults
    resource: str  # rate-limit resource
    handler: Handler
    counted: bool = True  # GET /rate_limit is free, as on GitHub


def by_name(state: SimState, request: Request) -> Answer:
    match = BY_NAME.match(request.path)
    assert match
    resolved = state.names.resolve(match.group(1))
    suffix = match.group(2) or ""
    if resolved is None:
        return endpoints.not_found()
    if resolved.moved:
        return endpoints.moved(request, resolved.repo_id, suffix)
    return serve_repo(state, request, resolved.repo_id, suffix)


def by_id(state: SimState, request: Request) -> Answer:
    match = BY_ID.match(request.path)
    assert match
    return serve_repo(state, request, int(match.group(1)), match.group(2) or "")


def serve_repo(state: SimState, request: Request, repo_id: int, suffix: str) -> Answer:
    repo = state.repos.get(repo_id)
    if repo is None:
        return endpoints.not_found()
    if suffix:
        return endpoints.stargazers(state, request, repo)
    return endpoints.repository(state, request, repo)


def rate_limit_status(state: SimState, request: Request) -> Answer:
    auth, wall = request.headers.get("Authorization"), time.time()
    resources = {
        resource: quota_json(state.limiter.peek(resource, auth, wall))
        for resource in ("core", "search")
    }
    return Answer(200, {"resources": resources, "rate": resources["core"]})


def quota_json(quota: Quota) -> dict[str, Any]:
    used = quota.limit - quota.remaining
    return {"limit": quota.limit, "remaining": quota.remaining, "reset": quota.reset, "used": used}


def find_route(request: Request) -> Route:
    path = request.path
    if request.method not in ("GET", "HEAD"):
        return Route("other", "core", lambda state, request: endpoints.not_found())
    if path.rstrip("/") == "/search/repositories":
        return Route("search", "search", endpoints.search_repositories)
    if path.rstrip("/") == "/rate_limit":
        return Route("rate_limit", "core", rate_limit_status, counted=False)
    for pattern, handler in ((BY_NAME, by_name), (BY_ID, by_id)):
        match = pattern.match(path)
        if match:
            return Route("stargazers" if match.group(2) else "repo", "core", handler)
    return Route("other", "core", lambda state, request: endpoints.not_found())


def reshape(answer: Answer, fault: Fault | None) -> Answer:
    """Search faults that return 200 with subtly wrong content."""
    if fault is None or answer.status != 200:
        return answer
    items = answer.payload.get("items", []) if isinstance(answer.payload, dict) else []
    if fault.name == "incomplete_results":
        answer.payload["incomplete_results"] = True
        if items:
            items.remove(max(items, key=lambda item: item["stargazers_count"]))
    if fault.name == "duplicate_id" and len(items) > 1:
        items[-1] = dict(items[0])
    return answer


def with_headers(status: int, body: bytes, quota: Quota, extra: dict[str, str]) -> Response:
    headers = {"content-type": JSON_TYPE, **GITHUB_HEADERS, **quota.headers(), **extra}
    return Response(status, body, headers)


def fault_response(state: SimState, request: Request, route: Route, fault: Fault) -> Response:
    """The error faults: answered before any real work, not charged to the quota."""
    auth, wall = request.headers.get("Authorization"), time.time()
    quota = state.limiter.peek(route.resource, auth, wall)
    if fault.name == "rate_limit_403":
        reset = int(wall + fault.params["reset_in"])
        quota = Quota(route.resource, quota.limit, 0, reset)
        return with_headers(403, encode_json(RATE_LIMITED), quota, {})
    if fault.name == "rate_limit_429":
        retry = {"retry-after": str(int(fault.params["retry_after"]))}
        return with_headers(429, encode_json(SECONDARY_LIMITED), quota, retry)
    if fault.name in LIMIT_FAULTS:
        return limit_response(fault, quota, wall)
    if fault.name in badbodies.BROKEN:
        return badbodies.broken_answer(fault, with_headers(200, b"", quota, {}).headers)
    return with_headers(500, encode_json({"message": "Server Error"}), quota, {})


def limit_response(fault: Fault, quota: Quota, wall: float) -> Response:
    """Rate limits as GitHub words them: a primary one spends the quota (403 or 429 with
    remaining 0 and the reset); a secondary one is a 403 saying so, quota left over."""
    if fault.name == "primary_limit_429":
        spent = Quota(quota.resource, quota.limit, 0, int(wall + fault.params["reset_in"]))
        return with_headers(429, encode_json(RATE_LIMITED), spent, {})
    retry = {}
    if "retry_after" in fault.params:
        retry["retry-after"] = str(int(fault.params["retry_after"]))
    return with_headers(403, encode_json(SECONDARY_LIMITED), quota, retry)


# Rate-limit faults beyond the two historical ones.
LIMIT_FAULTS = ("primary_limit_429", "secondary_limit", "secondary_limit_no_retry_after")
# Faults answered without computing the real response.
ERROR_FAULTS = (
    "rate_limit_403",
    "rate_limit_429",
    "server_error",
    *LIMIT_FAULTS,
    *badbodies.BROKEN,
)


def answer_github(state: SimState, request: Request) -> tuple[str, Response]:
    """(endpoint name, response) for one GitHub API request."""
    route = find_route(request)
    fault = state.faults.take(route.endpoint)
    if fault is not None and fault.name in ERROR_FAULTS:
        return route.endpoint, fault_response(state, request, route, fault)
    if fault is not None and fault.name == "stall":
        state.wakeup.wait(fault.params["seconds"])
    answer = badbodies.misshape(reshape(route.handler(state, request), fault), fault)
    if fault is not None and fault.to is not None:
        answer = point_elsewhere(answer, request, route.endpoint, fault.to)
    body = encode_json(answer.payload)
    if fault is not None and fault.name == "malformed_json":
        body = body[: len(body) // 2]
    body, abort = badbodies.spoil(body, fault)
    response = finish(state, request, route, answer, body)
    response.abort = abort
    return route.endpoint, response


def answer_headers(request: Request, route: Route) -> dict[str, str]:
    """Media type and caching as GitHub states them for this kind of answer."""
    headers = {}
    if "star+json" in (request.headers.get("Accept") or ""):
        headers["x-github-media-type"] = STAR_MEDIA_TYPE
    if route.endpoint == "search":
        return {**headers, **SEARCH_CACHE}
    audience = "private" if request.headers.get("Authorization") else "public"
    return {**headers, "cache-control": f"{audience}, max-age=60, s-maxage=60", "vary": "Accept"}


def finish(
    state: SimState, request: Request, route: Route, answer: Answer, body: bytes
) -> Response:
    """ETag and conditional requests, then the rate limit, then the headers."""
    auth, wall = request.headers.get("Authorization"), time.time()
    extra = {**answer.headers, **answer_headers(request, route)}
    if answer.status == 200 and route.endpoint != "search":
        extra["etag"] = etag_of(body)
        if etag_matches(request.headers.get("If-None-Match"), extra["etag"]):
            # A 304 is free on GitHub, which is the point of sending If-None-Match.
            quota = state.limiter.peek(route.resource, auth, wall)
            return with_headers(304, b"", quota, {"etag": extra["etag"]})
    if not route.counted:
        quota = state.limiter.peek(route.resource, auth, wall)
        return with_headers(answer.status, body, quota, extra)
    allowed, quota = state.limiter.consume(route.resource, auth, wall)
    if not allowed:
        return with_headers(403, encode_json(RATE_LIMITED), quota, {})
    return with_headers(answer.status, body, quota, extra)
