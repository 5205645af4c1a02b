"""GitHub-shaped JSON objects: repositories, owners and stargazers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from taskpipes.githubsim import identity
from taskpipes.githubsim.catalog import SimRepo

# Public web host used in html_url fields; the API host is whatever the client called.
WEB_ROOT = "https://github.com"


def iso_z(ts: int) -> str:
    """Epoch seconds as GitHub prints times: 2026-08-15T00:00:00Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """ISO 8601 (a trailing Z allowed) to an aware UTC datetime; naive means UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def owner_item(login: str) -> dict[str, Any]:
    kind = identity.owner_type(login)
    number = identity.owner_id(login)
    return {
        "login": login,
        "id": number,
        "node_id": identity.node_id(kind, number),
        "html_url": f"{WEB_ROOT}/{login}",
        "type": kind,
        "site_admin": False,
    }


def user_item(number: int) -> dict[str, Any]:
    login = f"user{number}"
    return {
        "login": login,
        "id": number,
        "node_id": identity.node_id("User", number),
        "html_url": f"{WEB_ROOT}/{login}",
        "type": "User",
        "site_admin": False,
    }


def last_star_time(repo: SimRepo, stars: int) -> int | None:
    return repo.curve.starred_at(stars - 1) if stars > 0 else None


def updated_epoch(repo: SimRepo, pushed_at: str, stars: int) -> int:
    """GitHub bumps updated_at on every new star, so it is the later of push and star."""
    pushed = int(parse_iso(pushed_at).timestamp())
    return max(pushed, last_star_time(repo, stars) or repo.created)


def repo_item(repo: SimRepo, full_name: str, at: int) -> dict[str, Any]:
    """The repository object of GET /repos/{owner}/{repo} at simulated time `at`."""
    owner, name = full_name.split("/", 1)
    snapshot = repo.snapshot_near(at)
    stars = repo.stars_at(at)
    return {
        "id": repo.id,
        "node_id": identity.node_id("Repository", repo.id),
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": owner_item(owner),
        "html_url": f"{WEB_ROOT}/{full_name}",
        "description": snapshot.description,
        "fork": False,
        "created_at": iso_z(repo.created),
        "updated_at": iso_z(updated_epoch(repo, snapshot.pushed_at, stars)),
        "pushed_at": snapshot.pushed_at,
        "homepage": None,
        "stargazers_count": stars,
        "watchers_count": stars,
        "language": snapshot.language,
        "forks_count": snapshot.forks,
        "open_issues_count": snapshot.open_issues,
        "license": repo.license,
        "topics": [],
        "archived": False,
        "disabled": False,
        "visibility": "public",
        "forks": snapshot.forks,
        "open_issues": snapshot.open_issues,
        "watchers": stars,
        "default_branch": "main",
    }


def search_item(repo: SimRepo, full_name: str, at: int) -> dict[str, Any]:
    """A search hit: the repository object plus GitHub's relevance score."""
    return {**repo_item(repo, full_name, at), "score": 1.0}


def stargazer_entry(repo: SimRepo, index: int, with_time: bool) -> dict[str, Any]:
    """Stargazer `index` (0-based, oldest first); with_time is the star+json media type."""
    user = user_item(identity.stargazer_id(repo.id, index))
    if not with_time:
        return user
    starred = repo.curve.starred_at(index)
    return {"starred_at": iso_z(starred) if starred is not None else None, "user": user}
