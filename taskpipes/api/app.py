"""FastAPI application factory and the JSON endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import LatestRanking
from db.session import session_factory
from taskpipes.api.schemas import Health, TopRepo, TopResponse


def get_session():  # type: ignore[no-untyped-def]
    with session_factory()() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def create_app() -> FastAPI:
    app = FastAPI(title="taskpipes read API", version="0.1.0")

    @app.get("/healthz", response_model=Health)
    def healthz() -> Health:
        return Health(status="ok")

    @app.get("/api/top", response_model=TopResponse)
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

    return app
