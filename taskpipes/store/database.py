"""Engines and sessions. Callers open `with Session.begin():` where a unit of work starts.

The engine and its session factory are derived values of the process's configuration
(`taskpipes.declare.configuration`): built on first use from the settings, or the engine a
host application handed in, and disposed and built again when the configuration changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import sqlalchemy
from sqlalchemy import CursorResult, Engine, Result, event
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from taskpipes.declare.configuration import configuration
from taskpipes.declare.settings import get_settings

logger = logging.getLogger("taskpipes")
T = TypeVar("T")

# A pooled connection older than this is replaced at checkout (server-side idle limits,
# NAT): with no pre-ping round trip per checkout, age is what retires connections.
POOL_RECYCLE_S = 600

# The execution option of a unit of work that only reads (`reading()`, the API's reads).
READ_ONLY = "taskpipes_read_only"

# A reader riding out an outage waits this long before its second attempt, doubling up to
# the second figure: quick to notice a restart, yet one line a few seconds in a long outage.
OUTAGE_PAUSE_S = (0.5, 5.0)

# Connections a PostgreSQL pool keeps open: one per worker thread once a worker says how
# many it runs (size_pool). SQLAlchemy closes an overflow connection on its return whenever
# this many are idle, so eight threads over a pool of five would reconnect all the time.
DEFAULT_POOL_SIZE = 5

# SQLite waits this long for a writer lock instead of failing at once: worker threads share a file.
SQLITE_BUSY_TIMEOUT_S = 30


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        # WAL lets the API read while a worker writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # Let SQLAlchemy's BEGIN be a real one; pysqlite's own transaction handling is off.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        # A writer takes the write lock up front, so two writers queue instead of deadlocking
        # on upgrade. A reader begins deferred: under WAL it never waits for that lock, so a
        # poll or a page is not queued behind (or timed out by) a busy worker.
        if conn.connection.dbapi_connection.in_transaction:
            return  # a taskpipes.store.transaction began it, raw; its session joins it
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Engine:
    # sqlalchemy.create_engine is looked up when called, not bound at import: OpenTelemetry's
    # SQLAlchemy instrumentation wraps it once tracing is on (taskpipes.observe.otel).
    create_engine = sqlalchemy.create_engine
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _configure_sqlite(engine)
        return engine
    # No pool_pre_ping: it costs a round trip per transaction. A connection that died in the
    # pool fails its first statement instead, which invalidates the pool; `retrying` then
    # runs the unit of work once more on a fresh connection.
    # A worker thread waiting for a lock sits in psycopg's C wait loop, where Dramatiq's time
    # limit (an exception raised into the thread) cannot reach it: a lock held elsewhere
    # would wedge the thread for as long as it is held. The server gives up instead, well
    # within the shortest stage time limit (2 min), and the stage fails and is retried.
    lock_timeout_ms = int(get_settings().db_lock_timeout_s * 1000)
    return create_engine(
        url,
        pool_recycle=POOL_RECYCLE_S,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"options": f"-c lock_timeout={lock_timeout_ms}"},
    )


def size_pool(threads: int) -> None:
    """Keep a connection per thread (a worker booting, before its first message)."""
    wanted = max(threads, DEFAULT_POOL_SIZE)
    if wanted != pool_size():
        configuration.give(pool_size=wanted)


def pool_size() -> int:
    return configuration.given("pool_size") or DEFAULT_POOL_SIZE


def use_engine(engine: Engine | None) -> None:
    """Use a host application's `engine` instead of one of ours (None: ours again)."""
    configuration.give(engine=engine)


def get_engine() -> Engine:
    """The engine handed in, else one built from the settings (disposed when the
    configuration changes)."""
    given: Engine | None = configuration.given("engine")
    if given is not None:
        return given
    return configuration.derived(
        "engine", lambda: make_engine(get_settings().database_url, pool_size()), Engine.dispose
    )


def session_factory() -> sessionmaker[Session]:
    return configuration.derived(
        "sessions", lambda: sessionmaker(get_engine(), expire_on_commit=False)
    )


def affected_rows(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (the count lives on the cursor result)."""
    return cast(CursorResult[Any], result).rowcount


def begin() -> Session:
    """`with begin() as session:` runs one transaction, committed on success."""
    return session_factory().begin()  # type: ignore[return-value]


@contextmanager
def reading() -> Iterator[Session]:
    """`with reading() as session:` a transaction that only reads (polls, status): one
    consistent snapshot that takes no write lock."""
    with session_factory().begin() as session:
        session.connection(execution_options={READ_ONLY: True})
        yield session


def retrying(work: Callable[[], T]) -> T:
    """Run a unit of work (transactions that are safe to repeat) once more if the database
    connection turned out dead: a server restart or a cut leaves stale pooled connections."""
    try:
        return work()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        logger.warning("database connection lost (%s); retrying once", type(exc.orig).__name__)
        return work()


def retrying_until(work: Callable[[], T], deadline: float) -> T:
    """Run a unit of work that is safe to repeat (a read), trying again while the database
    is unreachable (stopped, restarting, cut off) until `deadline` (`time.monotonic()`);
    then its last error is raised. Each failed attempt logs one line."""
    pause = OUTAGE_PAUSE_S[0]
    while True:
        try:
            return retrying(work)
        except OperationalError as exc:
            if time.monotonic() + pause > deadline:
                raise
            logger.warning(
                "database unreachable (%s); trying again in %.1f s", describe_error(exc), pause
            )
            time.sleep(pause)
            pause = min(2 * pause, OUTAGE_PAUSE_S[1])


def describe_error(exc: SQLAlchemyError) -> str:
    """The driver's own first line, without SQL or parameters; a missing table says why."""
    original = getattr(exc, "orig", None) or exc
    first = str(original).strip().splitlines()[0] if str(original).strip() else type(exc).__name__
    if "no such table" in first or "does not exist" in first and "relation" in first:
        first += " (the schema is missing: run `taskpipes db upgrade`)"
    elif "unable to open database file" in first:
        # SQLite does not say which file: the URL's path is the one it could not open.
        path = get_settings().database_url.removeprefix("sqlite:///")
        first += f" {path!r} (does its directory exist, and may we write there?)"
    return first
