"""Headers every answer carries, HEAD wherever GET works, and bounded echoes of input.

The JSON API is read-only and unauthenticated by design (README, "Security"); what it can
still do is keep a browser from running, framing or sniffing what it serves, and never
send back more of a caller's input than fits a line.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Every answer: no MIME sniffing, no address of ours in another site's logs.
COMMON_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
# JSON and metrics are data, never a document: nothing may load, run or frame them. Pages
# set their own policy (taskpipes.http.policy), which this one then does not replace.
API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
CSP = b"content-security-policy"
# At most this many characters of a caller's input go back in an error body.
ECHO_LIMIT = 80


def bounded(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to `limit` characters, saying so: input quoted in an error stays a line."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


class SecurityHeaders:
    """ASGI middleware: answers HEAD as GET without the body, and adds the headers above."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        inner = {**scope, "method": "GET"} if head else scope

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": secured(list(message.get("headers", [])))}
            elif head and message["type"] == "http.response.body":
                # The GET's headers (Content-Length included), none of its body.
                message = {**message, "body": b""}
            await send(message)

        await self.app(inner, receive, send_secured)


def secured(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    names = {name.lower() for name, _ in headers}
    added = [header for header in COMMON_HEADERS if header[0] not in names]
    if CSP not in names:
        added.append((CSP, API_POLICY))
    return headers + added


def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 body, with each echoed input cut to ECHO_LIMIT characters."""
    errors = [_bounded_error(error) for error in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def _bounded_error(error: dict[str, Any]) -> dict[str, Any]:
    echoed = dict(error)
    if "input" in echoed:
        echoed["input"] = _bounded_value(echoed["input"])
    if "ctx" in echoed:
        echoed["ctx"] = {key: _bounded_value(value) for key, value in echoed["ctx"].items()}
    return echoed


def _bounded_value(value: Any) -> Any:
    """Numbers as they are; anything else as text of at most ECHO_LIMIT characters."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return bounded(value if isinstance(value, str) else repr(value))
