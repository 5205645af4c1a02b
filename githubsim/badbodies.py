"""Bad outside data: the answers a real network and a real API send on a bad day.

Three kinds of fault switch, each applied at its own point of answering:
- broken answers, sent instead of the real one (a proxy's HTML error page, a 503, a reset);
- misshapen search payloads, well-formed JSON with wrong content (99 items, a negative
  count, a null full_name, emoji and CJK in every string);
- spoiled bodies, the right JSON sent wrong (cut off mid-body, padded to 10 MB).
"""

from __future__ import annotations

from typing import Any

from githubsim.endpoints import Answer
from githubsim.faults import Fault
from githubsim.messages import Response

HTML_TYPE = "text/html; charset=utf-8"
BAD_GATEWAY_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"  # noqa: E501
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form action=/login><input name=user></form></body></html>"  # noqa: E501
UNAVAILABLE = (
    b'{"message":"Service Unavailable","documentation_url":"https://docs.github.com/rest"}'
)
# Text that every string of a unicode_everywhere answer is decorated with.
EMOJI_CJK = "🚀✨ 日本語の説明 中文 한국어"
# Faults that replace the answer before any work is done.
BROKEN = ("bad_gateway_html", "unavailable", "connection_reset", "html_body")
# Faults that reshape a search answer's items.
MISSHAPEN = ("short_page", "negative_count", "null_full_name", "unicode_everywhere")
# Faults that spoil the encoded body.
SPOILED = ("truncated_body", "huge_body")


def broken_answer(fault: Fault, headers: dict[str, str]) -> Response:
    """The answer sent instead of GitHub's; `headers` are the usual rate-limit ones."""
    if fault.name == "bad_gateway_html":
        return Response(502, BAD_GATEWAY_PAGE, {**headers, "content-type": HTML_TYPE})
    if fault.name == "unavailable":
        return Response(503, UNAVAILABLE, headers)
    if fault.name == "html_body":
        return Response(200, LOGIN_PAGE, {**headers, "content-type": HTML_TYPE})
    return Response(0, abort="reset")


def misshape(answer: Answer, fault: Fault | None) -> Answer:
    """A search answer that is valid JSON but not what GitHub promises."""
    if fault is None or fault.name not in MISSHAPEN or answer.status != 200:
        return answer
    items: list[dict[str, Any]] = answer.payload["items"]
    if fault.name == "short_page":
        # As if only 99 repositories matched: one item, and the next page, gone.
        del items[99:]
        answer.payload["total_count"] = len(items)
        answer.headers.pop("link", None)
    elif fault.name == "negative_count" and items:
        items[len(items) // 2]["forks_count"] = -1
    elif fault.name == "null_full_name" and items:
        items[len(items) // 3]["full_name"] = None
    elif fault.name == "unicode_everywhere":
        answer.payload["items"] = [decorate(item) for item in items]
    return answer


def decorate(value: Any) -> Any:
    """Every string gets emoji and CJK; a name's parts too, so owner/name stays a pair."""
    if isinstance(value, dict):
        return {key: decorate_field(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [decorate(item) for item in value]
    return value


def decorate_field(key: str, value: Any) -> Any:
    if key == "full_name" and isinstance(value, str):
        owner, name = value.split("/", 1)
        return f"{owner}-日本/{name}-🚀"
    if key in ("description", "language", "name", "login") and isinstance(value, str):
        return f"{value} {EMOJI_CJK}"
    return decorate(value)


def spoil(body: bytes, fault: Fault | None) -> tuple[bytes, str | None]:
    """(body, abort): a body padded past any sane size, or one to cut off mid-way."""
    if fault is None or fault.name not in SPOILED:
        return body, None
    if fault.name == "truncated_body":
        return body, "truncate"
    size = int(fault.params["megabytes"] * 1024 * 1024)
    # Still valid JSON: the padding is whitespace before the closing brace.
    padded = body[:-1] + b" " * max(size - len(body), 0) + body[-1:]
    return padded, None if fault.params["announce"] else "unannounced"
