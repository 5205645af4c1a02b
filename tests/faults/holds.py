"""Ways to keep a stage in progress long enough to strike it there, from outside.

A test transaction locks a table the stage writes (or reads, for ACCESS EXCLUSIVE): the
stage's own statement then waits inside its transaction, and PostgreSQL's pg_locks says
so. This needs no hook in the code under test, only its tables.
"""

from __future__ import annotations

import psycopg

# How a test's own psycopg connection reaches a SQLAlchemy URL's database.
SQLALCHEMY_DRIVER = "postgresql+psycopg://"


def dsn(database_url: str) -> str:
    return database_url.replace(SQLALCHEMY_DRIVER, "postgresql://", 1)


class TableLock:
    """`LOCK TABLE name IN mode MODE` in a transaction of its own, until `release`.

    SHARE lets every reader through and stops every writer; ACCESS EXCLUSIVE stops readers
    too."""

    def __init__(self, database_url: str, table: str, mode: str = "SHARE") -> None:
        self.table, self.mode = table, mode
        self._conn = psycopg.connect(dsn(database_url))
        self._conn.execute(f"LOCK TABLE {table} IN {mode} MODE")

    def release(self) -> None:
        """End the transaction; a server that went away has ended it already."""
        try:
            self._conn.rollback()
        except psycopg.OperationalError:
            pass
        self._conn.close()

    def __enter__(self) -> TableLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def waiting_on(database_url: str, table: str) -> int:
    """How many sessions wait for a lock on `table` right now."""
    with psycopg.connect(dsn(database_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = to_regclass(%s)",
            (table,),
        ).fetchone()
    return int(row[0]) if row else 0


def blocked_by(database_url: str, pid: int) -> int:
    """How many sessions wait for a lock (a row's included) that session `pid` holds."""
    with psycopg.connect(dsn(database_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            (pid,),
        ).fetchone()
    return int(row[0]) if row else 0
