"""Typed records passed between stages, separate from the ORM models."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RepoSnapshot:
    """One repository as the top-100 search saw it at one tick."""

    id: int
    full_name: str
    rank: int
    stars: int
    forks: int
    open_issues: int
    language: str | None
    license: str | None
    description: str | None


@dataclass(frozen=True)
class RankingEntry:
    """One row of the latest ranking the read API serves."""

    rank: int
    repo_id: int
    full_name: str
    stars: int
    forks: int
    language: str | None
    stars_gained: int | None
