"""Request-scoped dependencies shared by every router."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from taskpipes.declare.configuration import configuration
from taskpipes.store.database import READ_ONLY, get_engine, reading


def get_session() -> Iterator[Session]:
    with reading() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@contextmanager
def read_connection() -> Iterator[Connection]:
    """A connection for a hot route that only reads, opened in the route itself: a yield
    dependency costs two thread hand-offs per request.

    On PostgreSQL it runs in autocommit: a read needing no consistent snapshot across
    statements skips the BEGIN and ROLLBACK round trips. SQLite keeps its transaction,
    begun deferred (READ_ONLY): a reader does not queue for the writers' lock.
    """
    engine = get_engine()
    reader = configuration.derived(("api reader", engine), lambda: _reader(engine))
    with reader.connect() as connection:
        yield connection


def _reader(engine: Engine) -> Engine:
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine.execution_options(**{READ_ONLY: True})
