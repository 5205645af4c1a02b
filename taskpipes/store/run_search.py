"""Finding runs by what an operator knows of them: pipeline, status, tick range, error
text, a key of the run's details. Newest tick first, a page at a time.

`taskpipes runs`, `/api/runs` and the bulk actions (`taskpipes retry|cancel --pipeline`)
read the same filter, so the preview of a bulk action lists exactly what a search shows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session

from taskpipes.store.runs import STATUSES
from taskpipes.store.tables import Run

# The most runs one page holds (the API's bound too).
MAX_PAGE = 500


class SearchError(ValueError):
    """A filter that names something impossible; the message names the part."""


@dataclass(frozen=True)
class RunFilter:
    """Which runs: every part given must hold. Ticks are UTC; `until` is inclusive."""

    pipeline: str | None = None
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    error: str | None = None
    detail: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.statuses) - set(STATUSES))
        if unknown:
            raise SearchError(f"unknown status {unknown[0]!r}; known: {', '.join(STATUSES)}")
        if self.since and self.until and self.until < self.since:
            raise SearchError(
                f"until {self.until.isoformat()} is before since {self.since.isoformat()}"
            )

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.pipeline is not None:
            found.append(Run.pipeline == self.pipeline)
        if self.statuses:
            found.append(Run.status.in_(self.statuses))
        if self.since is not None:
            found.append(Run.tick >= self.since)
        if self.until is not None:
            found.append(Run.tick <= self.until)
        if self.error:
            found.append(Run.error.ilike(f"%{_escaped(self.error)}%", escape="\\"))
        if self.detail is not None:
            key, value = self.detail
            found.append(Run.details[key].as_string() == value)
        return found


def parse_detail(text: str) -> tuple[str, str]:
    """`key=value`, as the command line and the API take a detail."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SearchError(f"detail must be KEY=VALUE, got {text!r}")
    return key, value


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _newest_first(query: Select[Any]) -> Select[Any]:
    return query.order_by(Run.tick.desc(), Run.id.desc())


def page(session: Session, runs: RunFilter, limit: int = 50, after: int | None = None) -> list[Run]:
    """At most `limit` runs, newest tick first; `after` is the last run id of the page
    before (a cursor: a page never repeats nor skips a run that new runs push down)."""
    if not 1 <= limit <= MAX_PAGE:
        raise SearchError(f"limit must be within 1-{MAX_PAGE}, got {limit}")
    query = select(Run).where(*runs.conditions())
    if after is not None:
        last = session.get(Run, after)
        if last is None:
            raise SearchError(f"no run {after} to page after")
        query = query.where(
            or_(Run.tick < last.tick, and_(Run.tick == last.tick, Run.id < last.id))
        )
    return list(session.scalars(_newest_first(query).limit(limit)))


def matching_ids(session: Session, runs: RunFilter) -> list[int]:
    """Every matching run's id, newest tick first: what a bulk action would touch."""
    query = select(Run.id).where(*runs.conditions()).order_by(Run.tick.desc(), Run.id.desc())
    return list(session.scalars(query))


def fingerprint(run_ids: Sequence[int]) -> str:
    """The identity of a previewed set of runs: `--yes FINGERPRINT` acts on that set
    only. Order-free, short enough to paste."""
    digest = hashlib.sha256(",".join(map(str, sorted(run_ids))).encode())
    return digest.hexdigest()[:12]


class StalePreview(LookupError):
    """The runs a bulk action would touch are no longer the ones previewed."""


@dataclass(frozen=True)
class Preview:
    """The runs a bulk action would touch, and the token `--yes` must carry to act on
    exactly them: the newest run id the preview saw, and a fingerprint of the set."""

    run_ids: list[int]
    newest_id: int

    @property
    def token(self) -> str:
        return f"{self.newest_id}.{fingerprint(self.run_ids)}"


def preview(session: Session, runs: RunFilter) -> Preview:
    ids = matching_ids(session, runs)
    return Preview(ids, max(ids, default=0))


def confirmed(session: Session, runs: RunFilter, token: str) -> list[int]:
    """The previewed runs, when they are still exactly what the filter matches among the
    runs the preview could see; else StalePreview (nothing is touched).

    A run recorded after the preview has a larger id and is left out by construction; a
    run that entered or left the filter since (a running run that failed) changes the
    fingerprint, and the operator previews again."""
    newest, _, _ = token.partition(".")
    if not newest.isdigit():
        raise SearchError(f"--yes takes the token a preview printed, got {token!r}")
    bounded = select(Run.id).where(*runs.conditions(), Run.id <= int(newest))
    ids = list(session.scalars(bounded.order_by(Run.tick.desc(), Run.id.desc())))
    if Preview(ids, int(newest)).token != token:
        raise StalePreview(
            f"the runs matching changed since the preview ({len(ids)} now): nothing done; "
            "preview again"
        )
    return ids
