"""The simulator's own control API under /_sim/, for tests and operators in other processes.

GET  /_sim/clock                         -> {"now", "pinned", "advance"}
PUT  /_sim/clock    {"now": ISO, "advance": false}
POST /_sim/faults   {"endpoint", "fault", "times": 1, ...params}   -> 201
GET  /_sim/faults                        -> {"pending": [...]}
POST /_sim/rename   {"from": "o/n", "to": "o2/n2"}
PUT  /_sim/index-lag {"max_lag_seconds": 86400}  (0: search strictly sorted)
POST /_sim/reset
GET  /_sim/requests                      -> RequestLog.summary()
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from githubsim.faults import FaultError
from githubsim.items import parse_iso
from githubsim.messages import Request, Response, json_response
from githubsim.names import RenameError
from githubsim.state import SimState

# Path prefix of the control API; never rate limited or logged as GitHub traffic.
PREFIX = "/_sim/"


class BadRequest(ValueError):
    """A control request we reject with 400 and this message."""


def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as error:
        raise BadRequest(f"body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def get_clock(state: SimState, request: Request) -> Response:
    return json_response(200, state.clock.describe())


def put_clock(state: SimState, request: Request) -> Response:
    body = json_body(request)
    try:
        moment = parse_iso(str(body["now"]))
    except (KeyError, ValueError):
        raise BadRequest('expected {"now": "<ISO 8601 time>", "advance": false}') from None
    state.clock.set(moment, advance=bool(body.get("advance", False)))
    return json_response(200, state.clock.describe())


def post_fault(state: SimState, request: Request) -> Response:
    body = json_body(request)
    params = {k: v for k, v in body.items() if k not in ("endpoint", "fault", "times")}
    try:
        fault = state.faults.add(
            str(body.get("endpoint")), str(body.get("fault")), body.get("times", 1), **params
        )
    except FaultError as error:
        raise BadRequest(str(error)) from None
    return json_response(201, fault.describe())


def get_faults(state: SimState, request: Request) -> Response:
    return json_response(200, {"pending": state.faults.pending()})


def post_rename(state: SimState, request: Request) -> Response:
    body = json_body(request)
    old, new = body.get("from"), body.get("to")
    if not isinstance(old, str) or not isinstance(new, str):
        raise BadRequest('expected {"from": "owner/name", "to": "owner2/name2"}')
    try:
        repo_id = state.names.rename(old, new)
    except RenameError as error:
        return json_response(error.status, {"message": str(error)})
    return json_response(200, {"id": repo_id, "full_name": new, "previous": old})


def put_index_lag(state: SimState, request: Request) -> Response:
    lag = json_body(request).get("max_lag_seconds")
    try:
        state.index.set_lag(lag)  # type: ignore[arg-type]
    except ValueError as error:
        raise BadRequest(str(error)) from None
    return json_response(200, {"max_lag_seconds": state.index.max_lag_s})


def post_reset(state: SimState, request: Request) -> Response:
    state.reset()
    return json_response(200, {"reset": True})


def get_requests(state: SimState, request: Request) -> Response:
    return json_response(200, state.log.summary())


ROUTES: dict[tuple[str, str], Callable[[SimState, Request], Response]] = {
    ("GET", "clock"): get_clock,
    ("PUT", "clock"): put_clock,
    ("POST", "faults"): post_fault,
    ("GET", "faults"): get_faults,
    ("POST", "rename"): post_rename,
    ("PUT", "index-lag"): put_index_lag,
    ("POST", "reset"): post_reset,
    ("GET", "requests"): get_requests,
}


def answer_control(state: SimState, request: Request) -> Response:
    action = request.path.removeprefix(PREFIX).strip("/")
    handler = ROUTES.get((request.method, action))
    if handler is None:
        return json_response(404, {"message": f"no control action {request.method} {request.path}"})
    try:
        return handler(state, request)
    except BadRequest as error:
        return json_response(400, {"message": str(error)})
