"""FastAPI application factory and the JSON endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query
from sqlalchemy import select

from db.models import LatestRanking
from taskpipes.api.deps import SessionDep
from taskpipes.api.observe import time_request
from taskpipes.api.schemas import Health, TopRepo, TopResponse


def create_app() -> FastAPI:
    from taskpipes.api import observe

    app = FastAPI(title="taskpipes read API", version="0.1.0")
    app.middleware("http")(time_request)
    app.include_router(observe.router)

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

    from taskpipes.api import history, stars, trending

    app.include_router(trending.router)
    app.include_router(history.router)
    app.include_router(stars.router)
    return app
