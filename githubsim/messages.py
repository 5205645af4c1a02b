"""Plain request/response values passed between the HTTP handler and the endpoints."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Every JSON answer carries this content type, as api.github.com does.
JSON_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    query: list[tuple[str, str]]  # decoded pairs, in order
    headers: Mapping[str, str]  # case-insensitive lookups (http.client.HTTPMessage)
    body: bytes = b""

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.query if key == name), None)

    def api_root(self) -> str:
        """The simulator's own address as the client called it (Host header)."""
        return f"http://{self.headers.get('Host', 'localhost')}"

    def base_url(self) -> str:
        """Absolute URL of this resource as the client addressed it."""
        return f"{self.api_root()}{self.path}"


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # A fault in the transport: "reset" the connection unanswered, "truncate" the body, or
    # send it "unannounced" (no content-length, ended by closing the connection).
    abort: str | None = None


def encode_json(payload: Any) -> bytes:
    # ensure_ascii=False keeps descriptions' emoji and accents as GitHub sends them.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, encode_json(payload), {"content-type": JSON_TYPE, **(headers or {})})


def etag_of(body: bytes) -> str:
    """A weak ETag, as GitHub sends on the pages it lets clients revalidate."""
    return 'W/"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match may list several tags, weak (W/) or not, or '*': a weak comparison."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags
