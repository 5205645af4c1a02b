"""Ways to keep a stage in progress long enough to strike it there, from outside.

A test transaction locks a table the stage writes (or reads, for ACCESS EXCLUSIVE), or
inserts, uncommitted, the row the stage is about to insert: the stage's own statement then
waits inside its transaction, and PostgreSQL's pg_locks says so. This needs no hook in the code under test, only its tables.
"""

from __future__ import annotations

import psycopg

# How a test's own psycopg connection reaches a SQLAlchemy URL's database.
SQLALCHEMY_DRIVER = "postgresql+psycopg://"


def dsn(database_url: str) -> str:
    return database_url.replace(SQLALCHEMY_DRIVER, "postgresql://", 1)


class Hold:
    """A transaction of the test's own, open until `release`."""

    def __init__(self, database_url: str) -> None:
        self._conn = psycopg.connect(dsn(database_url))
        self.pid = self._conn.info.backend_pid

    def release(self) -> None:
        """End the transaction; a server that went away has ended it already."""
        try:
            self._conn.rollback()
        except psycopg.OperationalError:
            pass
        self._conn.close()

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class TableLock(Hold):
    """`LOCK TABLE name IN mode MODE` in a transaction of its own, until `release`.

    SHARE lets every reader through and stops every writer; ACCESS EXCLUSIVE stops readers
    too."""

    def __init__(self, database_url: str, table: str, mode: str = "SHARE") -> None:
        super().__init__(database_url)
        self.table, self.mode = table, mode
        self._conn.execute(f"LOCK TABLE {table} IN {mode} MODE")


class RowHold(Hold):
    """A row inserted, not committed, until `release`: whoever inserts the same key (an
    INSERT ... ON CONFLICT included) waits for this transaction to end, and nobody else
    does. It holds one writer where a table lock would hold every one."""

    def __init__(self, database_url: str, table: str, row: dict[str, object]) -> None:
        super().__init__(database_url)
        columns, marks = ", ".join(row), ", ".join(["%s"] * len(row))
        self._conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))


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
