"""GET /api/top: the latest ranking, read from the aggregate table only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from db.models import LatestRanking
from taskpipes.api.deps import SessionDep
from taskpipes.api.schemas import TopRepo, TopResponse

router = APIRouter()


@router.get("/api/top", response_model=TopResponse)
def top(session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 100) -> TopResponse:
    rows = session.scalars(select(LatestRanking).order_by(LatestRanking.rank).limit(limit)).all()
    return TopResponse(
        as_of=rows[0].tick if rows else None,
        repos=[
            TopRepo(
                rank=r.rank,
                id=r.repo_id,
                full_name=r.full_name,
                stars=r.stars,
                forks=r.forks,
                language=r.language,
                stars_gained=r.stars_gained,
            )
            for r in rows
        ],
    )
