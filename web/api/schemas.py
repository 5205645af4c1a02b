"""Response models: they are the OpenAPI schema schemathesis checks us against."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class TopRepo(BaseModel):
    rank: int
    id: int
    full_name: str
    stars: int
    forks: int
    language: str | None
    stars_gained: int | None


class TopResponse(BaseModel):
    as_of: datetime | None
    repos: list[TopRepo]


class NotFound(BaseModel):
    """The body of a 404: what was looked for and not found."""

    detail: str
