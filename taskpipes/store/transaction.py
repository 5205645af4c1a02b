"""One transaction of the kit's hot path: fixed statements sent straight to the driver.

A stage message needs two statements of its own: one that takes its stage record (under a
row lock) and one that ends it. Through the ORM each one cost a session, a flush and a
round trip for `BEGIN` and `COMMIT` of its own. Here the driver is put in autocommit mode
and the transaction is spelled out, so on PostgreSQL `BEGIN` rides with the first
statement and `COMMIT` with the last in one pipeline each: two round trips in all. A
stage's SQLAlchemy session is made only if the stage asks for it, on the same connection
and inside the same transaction.

SQLite has no pipeline and needs none (the file is local); its `BEGIN IMMEDIATE` takes
the write lock up front, as every writer's does there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

Row = tuple[Any, ...]
Params = dict[str, Any]
IDLE = TransactionStatus.IDLE


class Sql:
    """One statement, written once with `:name` parameters, in each driver's paramstyle."""

    def __init__(self, text: str) -> None:
        self.sqlite = " ".join(text.split())
        self.postgresql = re.sub(r"(?<!:):(\w+)", r"%(\1)s", self.sqlite)


# Between two statements of one call: commit what came before and begin a new transaction,
# in the same round trip.
COMMIT = Sql("COMMIT")


class Transaction:
    """`with Transaction(engine) as tx:` fixed statements (`fetch_all`, `commit_all`), and the
    stage's `tx.session`. Leaving the block without `commit_all` rolls back."""

    def __init__(self, engine: Engine) -> None:
        self.postgres = engine.dialect.name == "postgresql"
        self._engine = engine
        self._done = False
        # psycopg's or sqlite3's own connection, once connected.
        self.driver: Any = None

    def __enter__(self) -> Transaction:
        self.connection: Connection = self._engine.connect()
        self.driver = self.connection.connection.dbapi_connection
        if self.postgres:
            # Every statement below spells out its transaction (see the module's docstring).
            self.driver.autocommit = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if "session" in self.__dict__:
                self.session.close()
            if not self._done:
                self._abandon()
            if self.postgres and not self.connection.invalidated:
                self.driver.autocommit = False
        finally:
            self.connection.close()

    def _abandon(self) -> None:
        """Roll back; a connection that cannot even do that is dropped from the pool."""
        if self.connection.invalidated:
            return
        try:
            self.driver.rollback()
        except self._engine.dialect.loaded_dbapi.Error as exc:
            self.connection.invalidate(exc)

    @cached_property
    def session(self) -> Session:
        """The stage's session, inside this transaction (made on first use)."""
        if self.postgres and self._idle():
            self._call(self.driver.execute, "BEGIN")  # the driver is in autocommit mode
        return Session(bind=self.connection, expire_on_commit=False)

    def _idle(self) -> bool:
        return bool(self.driver.info.transaction_status == IDLE)

    def time(self, moment: datetime) -> Any:
        """`moment` as the kit's UTCDateTime columns store it."""
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        return naive if self.postgres else naive.isoformat(sep=" ", timespec="microseconds")

    @staticmethod
    def moment(stored: Any) -> datetime:
        """A stored UTCDateTime value as an aware datetime."""
        naive = stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)
        return naive.replace(tzinfo=UTC)

    def loaded(self, stored: Any) -> Any:
        """A stored JSON value as Python: psycopg decodes `json` columns itself, SQLite
        hands back the text, or a number (a JSON column has numeric affinity there)."""
        if self.postgres or not isinstance(stored, str):
            return stored
        return json.loads(stored)

    def fetch_all(self, statements: Sequence[Sql], params: Params) -> list[list[Row]]:
        """Run statements, each one's rows in order (the transaction's first statements
        open it in the same round trip)."""
        return self._send(statements, params, commit=False)

    def commit_all(
        self, statements: Sequence[Sql] = (), params: Params | None = None
    ) -> list[list[Row]]:
        """Run last statements, if any, and commit with them in one round trip."""
        rows = self._send(statements, params or {}, commit=True)
        self._done = True
        return rows

    def _send(self, statements: Sequence[Sql], params: Params, commit: bool) -> list[list[Row]]:
        if "session" in self.__dict__:
            self.session.flush()  # the stage's own writes go first
        send = self._pipelined if self.postgres else self._one_by_one
        return self._call(send, statements, params, commit)  # type: ignore[no-any-return]

    def _pipelined(
        self, statements: Sequence[Sql], params: Params, commit: bool
    ) -> list[list[Row]]:
        # The rows are read after the pipeline's single sync: the block is one round trip.
        cursors = [self.driver.cursor() for _ in statements]
        with self.driver.pipeline():
            if self._idle():
                self.driver.execute("BEGIN")
            for cursor, sql in zip(cursors, statements, strict=True):
                if sql is COMMIT:
                    self.driver.execute("COMMIT")
                    self.driver.execute("BEGIN")
                else:
                    cursor.execute(sql.postgresql, params)
            if commit:
                self.driver.execute("COMMIT")
        return [list(cursor.fetchall()) if cursor.description else [] for cursor in cursors]

    def _one_by_one(
        self, statements: Sequence[Sql], params: Params, commit: bool
    ) -> list[list[Row]]:
        cursor = self.driver.cursor()
        if not self.driver.in_transaction:
            cursor.execute("BEGIN IMMEDIATE")
        rows: list[list[Row]] = []
        for sql in statements:
            if sql is COMMIT:
                self.driver.commit()
                cursor.execute("BEGIN IMMEDIATE")
                rows.append([])
            else:
                rows.append(cursor.execute(sql.sqlite, params).fetchall())
        if commit:
            self.driver.commit()
        return rows

    def _call(self, work: Any, *args: Any) -> Any:
        """Driver errors become SQLAlchemy's, as if the statement had gone through it: a lost
        connection is invalidated, so `database.retrying` runs the unit of work again."""
        try:
            return work(*args)
        except self._engine.dialect.loaded_dbapi.Error as exc:
            lost = self._engine.dialect.is_disconnect(exc, self.driver, None)
            if lost:
                self.connection.invalidate(exc)
            raise DBAPIError.instance(
                None,
                None,
                exc,
                self._engine.dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=lost,
                dialect=self._engine.dialect,
            ) from exc
