"""The GitHub REST endpoints the simulator serves, as functions of state and request.

Each returns an `Answer` (status, JSON payload, extra headers); the shared pipeline in
`github_api` adds faults, ETags and rate limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from githubsim.catalog import SimRepo
from githubsim.items import repo_item, search_item, stargazer_entry
from githubsim.messages import Request
from githubsim.pagination import link_header, page_count, page_number, page_size
from githubsim.state import SimState

# The only search query the simulator understands.
STARS_QUERY = re.compile(r"^\s*stars:>(\d+)\s*$")
# GitHub search exposes at most this many results, whatever total_count says.
SEARCH_RESULT_CAP = 1000
# GitHub lists at most this many pages of stargazers.
STARGAZER_PAGE_CAP = 400
DOCS = "https://docs.github.com/rest"
NOT_FOUND = {"message": "Not Found", "documentation_url": DOCS}
PAGINATION_LIMITED = {
    "message": "In order to keep the API fast for everyone, pagination is limited for this "
    "resource. Check the rel=last link relation in the Link response header to see how far "
    "back you can traverse.",
    "documentation_url": f"{DOCS}/guides/using-pagination-in-the-rest-api",
}


@dataclass
class Answer:
    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


def validation_failed(field_name: str, message: str) -> Answer:
    error = {"resource": "Search", "field": field_name, "code": "invalid", "message": message}
    body = {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS}
    return Answer(422, body)


def paged(request: Request, page: int, last: int, base: str | None = None) -> dict[str, str]:
    link = link_header(request, page, last, base)
    return {"link": link} if link else {}


def search_repositories(state: SimState, request: Request) -> Answer:
    match = STARS_QUERY.match(request.param("q") or "")
    if not match:
        return validation_failed("q", "the simulator only supports q=stars:>N")
    if request.param("sort") not in (None, "stars"):
        return validation_failed("sort", "the simulator only supports sort=stars")
    per_page, page = page_size(request), page_number(request)
    if (page - 1) * per_page >= SEARCH_RESULT_CAP:
        return validation_failed("page", "Only the first 1000 search results are available")
    at, minimum = state.clock.now(), int(match.group(1))
    # Ranked and filtered by the lagging index; each hit reports its live count.
    hits = [repo for repo, indexed in state.index.ranking(state.repos, at) if indexed > minimum]
    if request.param("order") == "asc":
        hits.reverse()
    # The last page stops at the cap too: 1,000 results, never the 1,001st.
    shown = hits[:SEARCH_RESULT_CAP][(page - 1) * per_page : page * per_page]
    root = request.api_root()
    items = [search_item(repo, state.names.current(repo.id), at, root) for repo in shown]
    last = page_count(min(len(hits), SEARCH_RESULT_CAP), per_page)
    payload = {"total_count": len(hits), "incomplete_results": False, "items": items}
    return Answer(200, payload, paged(request, page, last))


def repository(state: SimState, request: Request, repo: SimRepo) -> Answer:
    item = repo_item(repo, state.names.current(repo.id), state.clock.now(), request.api_root())
    return Answer(200, item)


def stargazers(state: SimState, request: Request, repo: SimRepo) -> Answer:
    """Oldest first; only stars given by the simulated now, so the count matches the repo."""
    per_page, page = page_size(request), page_number(request)
    if page > STARGAZER_PAGE_CAP:
        return Answer(422, PAGINATION_LIMITED)
    total = repo.stars_at(state.clock.now())
    with_time = "star+json" in (request.headers.get("Accept") or "")
    indices = range((page - 1) * per_page, min(page * per_page, total))
    root = request.api_root()
    entries = [stargazer_entry(repo, index, with_time, root) for index in indices]
    last = min(page_count(total, per_page), STARGAZER_PAGE_CAP)
    by_id = f"{root}/repositories/{repo.id}/stargazers"
    return Answer(200, entries, paged(request, page, last, by_id))


def moved(request: Request, repo_id: int, suffix: str) -> Answer:
    """GitHub's answer for a former repository name: 301 to the id-based URL."""
    host = request.headers.get("Host", "localhost")
    query = f"?{urlencode(request.query)}" if request.query else ""
    url = f"http://{host}/repositories/{repo_id}{suffix}{query}"
    body = {"message": "Moved Permanently", "url": url, "documentation_url": DOCS}
    return Answer(301, body, {"location": url})


def not_found() -> Answer:
    return Answer(404, NOT_FOUND)
