"""GET /api/trending: the precomputed trending ranking of the newest rollup."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel
from sqlalchemy import Connection, bindparam, select

from db.models import STATE_ID, Repository, RollupState, TrendingEntry
from taskpipes.http.deps import read_connection

router = APIRouter()

# The windows pipelines.trending.WINDOWS computes; a Literal so FastAPI answers 422 otherwise.
Window = Literal["1h", "24h", "7d"]


class TrendingRepo(BaseModel):
    rank: int
    id: int
    full_name: str
    stars: int
    stars_gained: int


class TrendingResponse(BaseModel):
    window: Window
    as_of: datetime | None
    repos: list[TrendingRepo]


@router.get("/api/trending", response_model=TrendingResponse)
def trending(
    window: Window = "24h",
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Response:
    """Repositories by stars gained over `window`, as of the newest rollup (`as_of`;
    null before the first rollup). Ties: more stars first, then lower id."""
    with read_connection() as connection:
        answer = trending_response(connection, window, limit)
    # Serialized here, once: FastAPI would dump the model, validate it again, then dump it.
    return Response(answer.model_dump_json(), media_type="application/json")


# Built once: composing the statement costs as much as running it.
TRENDING_QUERY = (
    select(
        TrendingEntry.rank,
        TrendingEntry.repo_id,
        Repository.full_name,
        TrendingEntry.stars,
        TrendingEntry.stars_gained,
        TrendingEntry.as_of,
    )
    .join(Repository, Repository.id == TrendingEntry.repo_id)
    .where(TrendingEntry.span == bindparam("span"))
    .order_by(TrendingEntry.rank)
    .limit(bindparam("limit"))
)
AS_OF_QUERY = select(RollupState.as_of).where(RollupState.id == STATE_ID)


def trending_response(connection: Connection, window: Window, limit: int) -> TrendingResponse:
    rows = connection.execute(TRENDING_QUERY, {"span": window, "limit": limit}).all()
    if rows:
        as_of = rows[0].as_of
    else:
        as_of = connection.scalar(AS_OF_QUERY)
    repos = [
        TrendingRepo(
            rank=r.rank,
            id=r.repo_id,
            full_name=r.full_name,
            stars=r.stars,
            stars_gained=r.stars_gained,
        )
        for r in rows
    ]
    return TrendingResponse(window=window, as_of=as_of, repos=repos)
