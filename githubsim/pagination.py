"""Page arithmetic and GitHub's `link` header."""

from __future__ import annotations

from urllib.parse import urlencode

from githubsim.messages import Request

# GitHub's default and maximum page sizes.
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100


def int_param(request: Request, name: str, default: int) -> int:
    """GitHub ignores malformed numbers rather than failing; so do we."""
    text = request.param(name)
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def page_size(request: Request) -> int:
    return min(max(int_param(request, "per_page", DEFAULT_PER_PAGE), 1), MAX_PER_PAGE)


def page_number(request: Request) -> int:
    return max(int_param(request, "page", 1), 1)


def page_count(total: int, per_page: int) -> int:
    return max((total + per_page - 1) // per_page, 1)


def page_url(request: Request, page: int, base: str | None = None) -> str:
    query = [(key, value) for key, value in request.query if key != "page"]
    return f"{base or request.base_url()}?{urlencode([*query, ('page', str(page))])}"


def link_header(request: Request, page: int, last: int, base: str | None = None) -> str | None:
    """prev/next/last/first relations, as GitHub orders them; None for a single page.

    `base` is the URL the links point at when GitHub names another form of the resource
    (stargazer links use /repositories/{id}/..., however the client asked)."""
    if last <= 1:
        return None
    relations = []
    if page > 1:
        relations.append(("prev", min(page - 1, last)))
    if page < last:
        relations += [("next", page + 1), ("last", last)]
    if page > 1:
        relations.append(("first", 1))
    return ", ".join(
        f'<{page_url(request, number, base)}>; rel="{rel}"' for rel, number in relations
    )
