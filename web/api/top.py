"""GET /api/top: the latest ranking, read from the aggregate table only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import Connection, bindparam, select

from db.models import LatestRanking
from pipelines.config import MAX_TOP_N
from taskpipes.http.deps import read_connection
from web.api.schemas import TopRepo, TopResponse

router = APIRouter()

# Built once: composing the statement costs as much as running it.
TOP_QUERY = (
    select(
        LatestRanking.rank,
        LatestRanking.repo_id,
        LatestRanking.full_name,
        LatestRanking.stars,
        LatestRanking.forks,
        LatestRanking.language,
        LatestRanking.stars_gained,
        LatestRanking.tick,
    )
    .order_by(LatestRanking.rank)
    .limit(bindparam("limit"))
)


@router.get("/api/top", response_model=TopResponse)
def top(limit: Annotated[int, Query(ge=1, le=MAX_TOP_N)] = 100) -> Response:
    """The first `limit` of the ranking (TASKPIPES_TOP_N long), as of its tick."""
    with read_connection() as connection:
        answer = top_response(connection, limit)
    # Serialized here, once: FastAPI would dump the model, validate it again, then dump it.
    return Response(answer.model_dump_json(), media_type="application/json")


def top_response(connection: Connection, limit: int) -> TopResponse:
    rows = connection.execute(TOP_QUERY, {"limit": limit}).all()
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
