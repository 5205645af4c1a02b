"""GET /api/languages: per language over the tracked repositories, from the table the
language_stats pipeline precomputes (one small table read, whatever the history)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlalchemy import Connection, select

from db.models import LanguageStat
from taskpipes.http.deps import read_connection

router = APIRouter()


class LanguageRow(BaseModel):
    rank: int
    # Null for the repositories GitHub detects no language in.
    language: str | None
    repositories: int
    stars: int
    # Null when none of the language's repositories was tracked that long ago.
    stars_gained_24h: int | None
    stars_gained_7d: int | None


class LanguagesResponse(BaseModel):
    as_of: datetime | None
    languages: list[LanguageRow]


@router.get("/api/languages", response_model=LanguagesResponse)
def languages() -> Response:
    """Languages of the tracked repositories by total stars, as of the newest
    language_stats run (`as_of`; null before the first)."""
    with read_connection() as connection:
        answer = languages_response(connection)
    return Response(answer.model_dump_json(), media_type="application/json")


# Built once: composing the statement costs as much as running it.
LANGUAGES_QUERY = select(LanguageStat.__table__).order_by(LanguageStat.rank)


def languages_response(connection: Connection) -> LanguagesResponse:
    rows = connection.execute(LANGUAGES_QUERY).all()
    return LanguagesResponse(
        as_of=rows[0].as_of if rows else None,
        languages=[
            LanguageRow(
                rank=r.rank,
                language=r.language,
                repositories=r.repositories,
                stars=r.stars,
                stars_gained_24h=r.stars_gained_24h,
                stars_gained_7d=r.stars_gained_7d,
            )
            for r in rows
        ],
    )
