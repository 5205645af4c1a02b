"""On SQLite a reader never queues for the writers' lock (WAL): `taskpipes run`'s poll,
`status` and the API read while a worker holds a write transaction open (a SQLite file)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from sqlalchemy import func, select

from db import schema as migrate
from taskpipes.store.database import begin, reading
from taskpipes.store.tables import Run


@contextmanager
def writer_holding_the_lock() -> Iterator[None]:
    """A write transaction kept open, as a worker's stage holds one."""
    with begin() as session:
        session.execute(select(func.count()).select_from(Run))  # BEGIN IMMEDIATE: the lock
        yield


def test_a_read_goes_on_while_a_writer_holds_the_lock(app_env, sqlite_url, api_server) -> None:
    # Given a worker's write transaction open on the file
    migrate.upgrade(sqlite_url)
    app_env(sqlite_url)
    with writer_holding_the_lock():
        # Then a reading transaction and the API's reads answer at once; had they begun
        # IMMEDIATE like a writer, each would wait out the 30 s busy timeout, then fail
        with reading() as session:
            assert session.scalar(select(func.count()).select_from(Run)) == 0
        assert requests.get(f"{api_server}/api/runs", timeout=60).status_code == 200
        top = requests.get(f"{api_server}/api/top", timeout=60)
        assert (top.status_code, top.json()["repos"]) == (200, [])
