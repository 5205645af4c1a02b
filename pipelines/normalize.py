"""normalize: the GitHub search answer in, the top N (TASKPIPES_TOP_N) validated, ranked
RepoSnapshot records out.

Pure. GitHub's `sort=stars` orders by its search index, which lags the live count it
reports, so an answer is not always sorted by its own `stargazers_count`. We rank by the
reported count ourselves and count how far the answer's order was off (its inversions).
"""

from __future__ import annotations

import re
from bisect import bisect_right, insort
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from pipelines.github_errors import InvalidPayload, SuspectSnapshot
from pipelines.records import RepoSnapshot

# How many repositories a top snapshot holds unless TASKPIPES_TOP_N says otherwise.
TOP_SIZE = 100
# GitHub owner and repository names: no slash and no whitespace on either side.
FULL_NAME = re.compile(r"^[^/\s]+/[^/\s]+$")
COUNT_FIELDS = ("stargazers_count", "forks_count", "open_issues_count")
# The columns' bounds (db/models.py): past them a value fails here, named, not in the database.
MAX_ID = 2**63 - 1
MAX_COUNT = 2**31 - 1
MAX_CHARS = {"full_name": 200, "language": 100, "license.spdx_id": 100}
# How much of a bad value an error message shows.
SHOWN_CHARS = 80


@dataclass(frozen=True)
class TopList:
    """A validated top list, ranked by reported stars, and the answer's own disorder."""

    records: list[RepoSnapshot]
    inversions: int  # pairs the answer listed in the wrong order of its own counts


def normalize_top(payload: Any, size: int = TOP_SIZE) -> TopList:
    """Validate a search answer and rank its repositories.

    Raises InvalidPayload for a broken shape (never worth retrying) and SuspectSnapshot
    for an answer that is well formed but not a trustworthy top list: incomplete, short,
    or with a duplicated id. An unsorted answer is trustworthy: GitHub's index lags.
    """
    items = _items(payload)
    listed = [_record(item, index) for index, item in enumerate(items[:size])]
    _check_unique(listed)
    if len(listed) < size:
        raise SuspectSnapshot(f"search answer holds {len(listed)} repositories, expected {size}")
    return TopList(rank_by_stars(listed), count_inversions([r.stars for r in listed]))


def rank_by_stars(records: Sequence[RepoSnapshot]) -> list[RepoSnapshot]:
    """Records ranked by stars, most first, ties by id; `rank` renumbered from 1."""
    ordered = sorted(records, key=lambda r: (-r.stars, r.id))
    return [replace(record, rank=rank) for rank, record in enumerate(ordered, start=1)]


def count_inversions(stars: Sequence[int]) -> int:
    """Pairs listed above a repository with more stars: for each item, the items below it
    with more stars, counted in the sorted list of those below (n log n for 1,000 items)."""
    below: list[int] = []
    count = 0
    for above in reversed(stars):
        count += len(below) - bisect_right(below, above)
        insort(below, above)
    return count


def _items(payload: Any) -> list[Any]:
    if not isinstance(payload, dict):
        raise InvalidPayload(f"search answer must be a JSON object, got {type(payload).__name__}")
    items = payload.get("items")
    if not isinstance(items, list):
        raise InvalidPayload(f"field 'items' must be a list, got {type(items).__name__}")
    if payload.get("incomplete_results") is True:
        raise SuspectSnapshot("search answer has incomplete_results: true (GitHub timed out)")
    return items


def _record(item: Any, index: int) -> RepoSnapshot:
    where = f"items[{index}]"
    if not isinstance(item, dict):
        raise InvalidPayload(f"{where} must be an object, got {type(item).__name__}")
    repo_id = item.get("id")
    if not _is_int(repo_id) or not 0 < repo_id <= MAX_ID:
        raise InvalidPayload(
            f"{where}: field 'id' must be a positive integer, got {_shown(repo_id)}"
        )
    full_name = item.get("full_name")
    where = f"{where} (id {repo_id})"
    if not isinstance(full_name, str) or not FULL_NAME.fullmatch(full_name):
        raise InvalidPayload(
            f"{where}: field 'full_name' must be 'owner/name', got {_shown(full_name)}"
        )
    _check_text(full_name, "full_name", where)
    where = f"repository {full_name} (id {repo_id})"
    counts = [_count(item, name, where) for name in COUNT_FIELDS]
    return RepoSnapshot(
        id=repo_id,
        full_name=full_name,
        rank=index + 1,
        stars=counts[0],
        forks=counts[1],
        open_issues=counts[2],
        language=_optional_text(item, "language", where),
        license=_license(item.get("license"), where),
        description=_optional_text(item, "description", where),
    )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(item: dict[str, Any], name: str, where: str) -> int:
    if name not in item:
        raise InvalidPayload(f"{where}: field '{name}' is missing")
    value = item[name]
    if not _is_int(value) or not 0 <= value <= MAX_COUNT:
        raise InvalidPayload(
            f"{where}: field '{name}' must be a non-negative integer, got {_shown(value)}"
        )
    return value


def _optional_text(item: dict[str, Any], name: str, where: str) -> str | None:
    value = item.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidPayload(
            f"{where}: field '{name}' must be a string or null, got {_shown(value)}"
        )
    return None if value is None else _check_text(value, name, where)


def _check_text(value: str, name: str, where: str) -> str:
    """No NUL (PostgreSQL text cannot hold one) and no more than the column holds."""
    if "\x00" in value:
        raise InvalidPayload(f"{where}: field '{name}' holds a NUL character")
    limit = MAX_CHARS.get(name)
    if limit is not None and len(value) > limit:
        raise InvalidPayload(f"{where}: field '{name}' is longer than {limit} characters")
    return value


def _shown(value: Any) -> str:
    """A bad value as an error shows it: its repr, cut short (outside data is unbounded)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _license(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidPayload(
            f"{where}: field 'license' must be an object or null, got {_shown(value)}"
        )
    name = value.get("spdx_id") or value.get("key")
    if name is not None and not isinstance(name, str):
        raise InvalidPayload(
            f"{where}: field 'license.spdx_id' must be a string, got {_shown(name)}"
        )
    if name is not None:
        _check_text(name, "license.spdx_id", where)
    return name


def _check_unique(records: list[RepoSnapshot]) -> None:
    seen: dict[int, RepoSnapshot] = {}
    for record in records:
        if record.id in seen:
            first = seen[record.id]
            raise SuspectSnapshot(
                f"repository id {record.id} appears twice: {first.full_name} at rank "
                f"{first.rank} and {record.full_name} at rank {record.rank}"
            )
        seen[record.id] = record
