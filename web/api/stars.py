"""GET /api/repos/{owner}/{name}/stars: a repository's star history from its stargazers.

Served from `star_days` (cumulative stars at the end of each UTC day, rebuilt by the
stargazers pipeline when a repository's pages are stored), never from the events. The
history is exact up to `as_of`; `complete` is false when GitHub's 400-page cap cut the
stargazer list, so the newest stars are missing (the points then stop at the last star
GitHub listed: nothing is extrapolated).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy import func, select

from db.models import StarDay, StargazerCursor
from pipelines.star_history import every
from taskpipes.http.deps import SessionDep
from taskpipes.http.security import bounded

router = APIRouter()

Step = Literal["1d", "7d", "30d"]
STEP_DAYS = {"1d": 1, "7d": 7, "30d": 30}


class StarPoint(BaseModel):
    date: date
    stars: int


class StarHistory(BaseModel):
    id: int
    full_name: str
    complete: bool
    as_of: datetime
    points: list[StarPoint]


class NotFound(BaseModel):
    detail: str


@router.get(
    "/api/repos/{owner}/{name}/stars",
    response_model=StarHistory,
    responses={404: {"model": NotFound, "description": "no star history for this repository"}},
)
def stars(owner: str, name: str, session: SessionDep, step: Step = "1d") -> StarHistory:
    full_name = f"{owner}/{name}"
    cursor = session.scalars(
        select(StargazerCursor).where(func.lower(StargazerCursor.full_name) == full_name.lower())
    ).first()
    if cursor is None:
        full_name = bounded(full_name)
        raise HTTPException(
            404,
            detail=f"no star history for {full_name}: "
            f"run `taskpipes run stargazers --repo {full_name}` first",
        )
    days = session.execute(
        select(StarDay.day, StarDay.stars)
        .where(StarDay.repo_id == cursor.repo_id)
        .order_by(StarDay.day)
    ).all()
    points = every([(day, count) for day, count in days], STEP_DAYS[step])
    return StarHistory(
        id=cursor.repo_id,
        full_name=cursor.full_name,
        complete=cursor.complete,
        as_of=cursor.as_of,
        points=[StarPoint(date=day.date(), stars=count) for day, count in points],
    )
