"""A PostgreSQL lock wait ends at TASKPIPES_DB_LOCK_TIMEOUT_S: a worker thread blocked in
psycopg's wait cannot be reached by Dramatiq's time limit, so the server must give up."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from taskpipes import testing
from taskpipes.store.database import make_engine
from tests.faults.holds import dsn


@pytest.fixture
def short_lock_timeout(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TASKPIPES_DB_LOCK_TIMEOUT_S", "0.5")
    testing.reset()
    yield
    monkeypatch.undo()
    testing.reset()


def test_a_statement_waiting_for_a_lock_fails_at_the_lock_timeout(
    postgres_url: str, short_lock_timeout: None
) -> None:
    # Given a row locked by another session
    with psycopg.connect(dsn(postgres_url), autocommit=True) as setup:
        setup.execute("CREATE TABLE pacing (name text PRIMARY KEY)")
        setup.execute("INSERT INTO pacing VALUES ('shared')")
    holder = psycopg.connect(dsn(postgres_url))
    holder.execute("SELECT * FROM pacing FOR UPDATE")
    engine = make_engine(postgres_url)
    try:
        # When one of our sessions asks for it, then it fails instead of waiting on
        with engine.connect() as conn, pytest.raises(OperationalError, match="lock timeout"):
            conn.execute(text("SELECT * FROM pacing FOR UPDATE"))
    finally:
        engine.dispose()
        holder.close()
