"""GitHub-shaped JSON objects: repositories, owners and stargazers.

Every field GitHub's official schemas require is present (tests validate the bodies
against ../shared/github/openapi-subset.json). API URLs start at `api_root`, the
simulator's address as the client called it, so they stay on the simulator.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from githubsim import identity
from githubsim.catalog import SimRepo

# Public web host used in html_url fields; the API host is whatever the client called.
WEB_ROOT = "https://github.com"
AVATARS = "https://avatars.githubusercontent.com"
# A user's API links: (field, path after /users/{login}), as GitHub writes them.
USER_LINKS = (
    ("followers_url", "/followers"),
    ("following_url", "/following{/other_user}"),
    ("gists_url", "/gists{/gist_id}"),
    ("starred_url", "/starred{/owner}{/repo}"),
    ("subscriptions_url", "/subscriptions"),
    ("organizations_url", "/orgs"),
    ("repos_url", "/repos"),
    ("events_url", "/events{/privacy}"),
    ("received_events_url", "/received_events"),
)
# A repository's API links: (field, path after /repos/{owner}/{name}).
REPO_LINKS = (
    ("forks_url", "/forks"),
    ("keys_url", "/keys{/key_id}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("teams_url", "/teams"),
    ("hooks_url", "/hooks"),
    ("issue_events_url", "/issues/events{/number}"),
    ("events_url", "/events"),
    ("assignees_url", "/assignees{/user}"),
    ("branches_url", "/branches{/branch}"),
    ("tags_url", "/tags"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("trees_url", "/git/trees{/sha}"),
    ("statuses_url", "/statuses/{sha}"),
    ("languages_url", "/languages"),
    ("stargazers_url", "/stargazers"),
    ("contributors_url", "/contributors"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("commits_url", "/commits{/sha}"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("comments_url", "/comments{/number}"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("contents_url", "/contents/{+path}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("merges_url", "/merges"),
    ("archive_url", "/{archive_format}{/ref}"),
    ("downloads_url", "/downloads"),
    ("issues_url", "/issues{/number}"),
    ("pulls_url", "/pulls{/number}"),
    ("milestones_url", "/milestones{/number}"),
    ("notifications_url", "/notifications{?since,all,participating}"),
    ("labels_url", "/labels{/name}"),
    ("releases_url", "/releases{/id}"),
    ("deployments_url", "/deployments"),
)


def iso_z(ts: int) -> str:
    """Epoch seconds as GitHub prints times: 2026-08-15T00:00:00Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """ISO 8601 (a trailing Z allowed) to an aware UTC datetime; naive means UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def account_item(login: str, number: int, kind: str, api_root: str) -> dict[str, Any]:
    """A simple-user object: the owner of a repository or a stargazer."""
    url = f"{api_root}/users/{login}"
    return {
        "login": login,
        "id": number,
        "node_id": identity.node_id(kind, number),
        "avatar_url": f"{AVATARS}/u/{number}?v=4",
        "gravatar_id": "",
        "url": url,
        "html_url": f"{WEB_ROOT}/{login}",
        **{name: url + path for name, path in USER_LINKS},
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


def owner_item(login: str, api_root: str) -> dict[str, Any]:
    return account_item(login, identity.owner_id(login), identity.owner_type(login), api_root)


def user_item(number: int, api_root: str) -> dict[str, Any]:
    return account_item(f"user{number}", number, "User", api_root)


def license_item(license: dict[str, str] | None, api_root: str) -> dict[str, str] | None:
    if license is None:
        return None
    return {**license, "url": f"{api_root}/licenses/{license['key']}"}


def last_star_time(repo: SimRepo, stars: int) -> int | None:
    return repo.curve.starred_at(stars - 1) if stars > 0 else None


def updated_epoch(repo: SimRepo, pushed_at: str, stars: int) -> int:
    """GitHub bumps updated_at on every new star, so it is the later of push and star."""
    pushed = int(parse_iso(pushed_at).timestamp())
    return max(pushed, last_star_time(repo, stars) or repo.created)


def repo_links(full_name: str, api_root: str) -> dict[str, Any]:
    """The URL fields of a repository: API links, then git and web addresses."""
    url = f"{api_root}/repos/{full_name}"
    return {
        "url": url,
        **{name: url + path for name, path in REPO_LINKS},
        "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "clone_url": f"{WEB_ROOT}/{full_name}.git",
        "svn_url": f"{WEB_ROOT}/{full_name}",
        "mirror_url": None,
    }


def repo_item(repo: SimRepo, full_name: str, at: int, api_root: str) -> dict[str, Any]:
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
        "owner": owner_item(owner, api_root),
        "html_url": f"{WEB_ROOT}/{full_name}",
        "description": snapshot.description,
        "fork": False,
        **repo_links(full_name, api_root),
        "created_at": iso_z(repo.created),
        "updated_at": iso_z(updated_epoch(repo, snapshot.pushed_at, stars)),
        "pushed_at": snapshot.pushed_at,
        "homepage": None,
        "size": identity.size_kb(repo.original_name),
        "stargazers_count": stars,
        "watchers_count": stars,
        "language": snapshot.language,
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": True,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": snapshot.forks,
        "archived": False,
        "disabled": False,
        "open_issues_count": snapshot.open_issues,
        "license": license_item(repo.license, api_root),
        "allow_forking": True,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "public",
        "forks": snapshot.forks,
        "open_issues": snapshot.open_issues,
        "watchers": stars,
        "default_branch": "main",
    }


def search_item(repo: SimRepo, full_name: str, at: int, api_root: str) -> dict[str, Any]:
    """A search hit: the repository object plus GitHub's relevance score."""
    return {**repo_item(repo, full_name, at, api_root), "score": 1.0}


def stargazer_entry(repo: SimRepo, index: int, with_time: bool, api_root: str) -> dict[str, Any]:
    """Stargazer `index` (0-based, oldest first); with_time is the star+json media type."""
    user = user_item(identity.stargazer_id(repo.id, index), api_root)
    if not with_time:
        return user
    starred = repo.curve.starred_at(index)
    return {"starred_at": iso_z(starred) if starred is not None else None, "user": user}
