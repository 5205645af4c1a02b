"""The portable upsert: both dialects, both paths (statement and COPY), same results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import migrate
from db.models import Repository
from taskpipes.database import make_engine
from taskpipes.upsert import COPY_THRESHOLD, dedupe, upsert

T = datetime(2026, 8, 21, 12, tzinfo=UTC)
AWKWARD = [
    "tab\there",
    "new\nline",
    "back\\slash",
    "😎 日本語",
    "",
    None,
    "\\N",
    "carriage\rreturn",
]


def repo_rows(n: int, version: int) -> list[dict[str, object]]:
    return [
        {
            "id": i + 1,
            "full_name": f"owner{i}/repo{i}-v{version}",
            "description": AWKWARD[i % len(AWKWARD)],
            "language": None if i % 3 else "Python",
            "license": "MIT",
            "first_seen": T,
            "last_seen": T + timedelta(minutes=version),
        }
        for i in range(n)
    ]


def read_back(session: Session) -> list[tuple]:
    rows = session.scalars(select(Repository).order_by(Repository.id))
    return [(r.id, r.full_name, r.description, r.language, r.first_seen, r.last_seen) for r in rows]


def expected(rows: list[dict[str, object]]) -> list[tuple]:
    keys = ("id", "full_name", "description", "language", "first_seen", "last_seen")
    return [tuple(r[k] for k in keys) for r in rows]


def test_upsert_inserts_then_updates_with_awkward_text(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    n = COPY_THRESHOLD + 100  # large enough for the COPY path on PostgreSQL

    with Session(engine) as session, session.begin():
        assert upsert(session, Repository.__table__, repo_rows(n, 1), key=("id",)) == n
    with Session(engine) as session, session.begin():
        upsert(
            session,
            Repository.__table__,
            repo_rows(n, 2),
            key=("id",),
            update=("full_name", "last_seen"),
        )
    with Session(engine) as session:
        stored = read_back(session)

    assert stored == expected(repo_rows(n, 2))


def test_insert_if_absent_keeps_existing_rows(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    with Session(engine) as session, session.begin():
        upsert(session, Repository.__table__, repo_rows(3, 1), key=("id",))
        upsert(session, Repository.__table__, repo_rows(5, 2), key=("id",), update=())
    with Session(engine) as session:
        names = [row[1] for row in read_back(session)]

    assert names == [
        "owner0/repo0-v1",
        "owner1/repo1-v1",
        "owner2/repo2-v1",
        "owner3/repo3-v2",
        "owner4/repo4-v2",
    ]


def test_dedupe_keeps_the_last_row_per_key() -> None:
    rows = [{"k": 1, "v": "a"}, {"k": 2, "v": "b"}, {"k": 1, "v": "c"}]

    assert dedupe(rows, ("k",)) == [{"k": 1, "v": "c"}, {"k": 2, "v": "b"}]
