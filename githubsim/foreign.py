"""The foreign_link fault: an answer that sends the client to another origin.

A misbehaving proxy or a tampered answer: the `link` names another host (and a search page
comes back short, so a client must follow it), or a repository answers with a redirect
there. GitHub never does either; a client that follows would hand that host its token.
"""

from __future__ import annotations

from urllib.parse import urlencode

from githubsim.endpoints import DOCS, Answer
from githubsim.messages import Request
from githubsim.pagination import page_number


def next_page_elsewhere(request: Request, to: str) -> str:
    query = [(key, value) for key, value in request.query if key != "page"]
    query.append(("page", str(page_number(request) + 1)))
    return f'<{to}{request.path}?{urlencode(query)}>; rel="next"'


def point_elsewhere(answer: Answer, request: Request, endpoint: str, to: str) -> Answer:
    """Rewrite a 200 answer of `endpoint` so that what comes next lives on origin `to`."""
    if answer.status != 200:
        return answer
    if endpoint == "repo":
        url = f"{to}/repositories/{answer.payload['id']}"
        body = {"message": "Moved Permanently", "url": url, "documentation_url": DOCS}
        return Answer(301, body, {"location": url})
    items = answer.payload.get("items") if isinstance(answer.payload, dict) else None
    if isinstance(items, list):
        del items[len(items) // 2 :]
    answer.headers["link"] = next_page_elsewhere(request, to)
    return answer
