"""The portable upsert: both dialects, both paths (statement and COPY), same results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db import schema as migrate
from db.models import Repository
from taskpipes.store.database import make_engine
from taskpipes.store.upsert import COPY_THRESHOLD, dedupe, upsert

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
    """Every column differs between versions, so an update of the wrong column shows."""
    return [
        {
            "id": i + 1,
            "full_name": f"owner{i}/repo{i}-v{version}",
            "description": AWKWARD[(i + version) % len(AWKWARD)],
            "language": None if (i + version) % 3 else "Python",
            "license": "MIT",
            "first_seen": T + timedelta(days=version),
            "last_seen": T + timedelta(days=version, minutes=version),
        }
        for i in range(n)
    ]


def took_copy_path(session: Session) -> bool:
    """Whether this session's connection merged through COPY: only that path creates the
    staging temporary table, which lives as long as the connection."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    staging = f"pg_temp.staging_{Repository.__table__.name}"
    return bool(session.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": staging}))


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
        copied = took_copy_path(session)
    with Session(engine) as session:
        stored = read_back(session)

    # Only the named columns change: description, language and first_seen stay version 1
    first, second = repo_rows(n, 1), repo_rows(n, 2)
    merged = [
        {**old, "full_name": new["full_name"], "last_seen": new["last_seen"]}
        for old, new in zip(first, second, strict=True)
    ]
    assert stored == expected(merged)
    assert stored != expected(second) and stored != expected(first)
    assert copied == ("postgresql" in database_url)


def test_a_small_batch_takes_the_statement_path(postgres_url: str) -> None:
    migrate.upgrade(postgres_url)
    engine = make_engine(postgres_url)
    with Session(engine) as session, session.begin():
        upsert(session, Repository.__table__, repo_rows(COPY_THRESHOLD - 1, 1), key=("id",))
        copied = took_copy_path(session)
    with Session(engine) as session:
        assert len(read_back(session)) == COPY_THRESHOLD - 1

    assert not copied


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


@pytest.mark.parametrize("n", [3, COPY_THRESHOLD + 3], ids=["statement", "copy"])
def test_upsert_counts_the_rows_it_inserted_or_changed(database_url: str, n: int) -> None:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    rows = repo_rows(n, 1)
    # One row renamed, one new: of the n + 1 given, two are written
    again = [*rows[:-1], {**rows[-1], "full_name": "renamed/repo"}, *repo_rows(n + 1, 1)[n:]]

    with Session(engine) as session, session.begin():
        first = upsert(session, Repository.__table__, rows, key=("id",))
    with Session(engine) as session, session.begin():
        same = upsert(session, Repository.__table__, rows, key=("id",))
    with Session(engine) as session, session.begin():
        changed = upsert(session, Repository.__table__, again, key=("id",))
        absent_only = upsert(session, Repository.__table__, again, key=("id",), update=())

    assert (first, same, changed, absent_only) == (n, 0, 2, 0)
    with Session(engine) as session:
        assert read_back(session)[n - 1][1] == "renamed/repo"


def test_dedupe_keeps_the_last_row_per_key() -> None:
    rows = [{"k": 1, "v": "a"}, {"k": 2, "v": "b"}, {"k": 1, "v": "c"}]

    assert dedupe(rows, ("k",)) == [{"k": 1, "v": "c"}, {"k": 2, "v": "b"}]
