"""Reading a GitHub answer's body: bounded in size, decoded with errors that say what broke.

The biggest real answer we ask for (100 search items) is about 0.5 MB; a body past
MAX_BODY_BYTES is refused before it is read whole, so a broken proxy or a hostile answer
cannot make a worker hold it in memory.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from pipelines.github_errors import MalformedResponse, ResponseTooLarge, TransientError

# Eight times the largest answer GitHub sends us.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Bytes read from the socket at a time.
CHUNK_BYTES = 64 * 1024


def read_body(endpoint: str, response: requests.Response) -> bytes:
    """The whole body, or ResponseTooLarge past the cap; a cut-off body is transient."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        response.close()
        raise _too_large(endpoint, f"{int(declared)} bytes announced")
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                response.close()
                raise _too_large(endpoint, "more than that sent")
            chunks.append(chunk)
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientError(f"GitHub {endpoint}: answer cut off ({type(exc).__name__})") from None
    return b"".join(chunks)


def _too_large(endpoint: str, how: str) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"GitHub {endpoint} answer exceeds {MAX_BODY_BYTES} bytes ({how}); not read"
    )


def parse_json(endpoint: str, body: bytes, content_type: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        kind = content_type.split(";")[0] or "no content type"
        raise MalformedResponse(
            f"GitHub {endpoint} answer is not valid JSON ({kind}, {len(body)} bytes): {exc}"
        ) from None


def error_message(body: bytes) -> str:
    """GitHub's message, with the details of a 422 ("Only the first 1000 search results")."""
    try:
        answer = json.loads(body)
        errors = answer.get("errors") or []
        details = [str(e.get("message", "")) for e in errors if isinstance(e, dict)]
        return "; ".join([str(answer.get("message", "")), *filter(None, details)])[:200]
    except (ValueError, AttributeError, TypeError):
        return body[:200].decode("utf-8", "replace")
