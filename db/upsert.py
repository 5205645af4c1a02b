"""One portable upsert: PostgreSQL and SQLite share `on_conflict_do_update`.

Big batches on PostgreSQL go through COPY into a temporary table and one
`INSERT ... SELECT ... ON CONFLICT`, about three times the rows per second of executemany.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

# Below this many rows the COPY round trips cost more than they save.
COPY_THRESHOLD = 500

Row = Mapping[str, Any]


def dedupe(rows: Iterable[Row], key: Sequence[str]) -> list[Row]:
    """Keep the last row per key: PostgreSQL rejects a statement that touches a row twice."""
    by_key = {tuple(row[k] for k in key): row for row in rows}
    return list(by_key.values())


def upsert(
    session: Session,
    table: Table,
    rows: Iterable[Row],
    key: Sequence[str],
    update: Sequence[str] | None = None,
) -> int:
    """Insert rows, updating `update` columns (default: all non-key) on a key conflict.

    An empty `update` means "insert if absent". Returns the number of rows given.
    """
    batch = dedupe(rows, key)
    if not batch:
        return 0
    columns = list(batch[0].keys())
    update_cols = [c for c in columns if c not in key] if update is None else list(update)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and len(batch) >= COPY_THRESHOLD:
        _copy_merge(session, table, batch, columns, key, update_cols)
    else:
        session.execute(_statement(dialect, table, key, update_cols), batch)
    return len(batch)


def _statement(dialect: str, table: Table, key: Sequence[str], update_cols: Sequence[str]) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    if not update_cols:
        return stmt.on_conflict_do_nothing(index_elements=list(key))
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: stmt.excluded[c] for c in update_cols}
    )


def _copy_merge(
    session: Session,
    table: Table,
    batch: list[Row],
    columns: list[str],
    key: Sequence[str],
    update_cols: Sequence[str],
) -> None:
    staging = f"staging_{table.name}"
    col_list = ", ".join(f'"{c}"' for c in columns)
    conflict = ", ".join(f'"{c}"' for c in key)
    if update_cols:
        sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in update_cols)
        action = f"DO UPDATE SET {sets}"
    else:
        action = "DO NOTHING"
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
            f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY {staging} ({col_list}) FROM STDIN") as copy:
            for row in batch:
                copy.write_row([_copy_value(row[c]) for c in columns])
        cur.execute(
            f"INSERT INTO {table.name} ({col_list}) SELECT {col_list} FROM {staging} "
            f"ON CONFLICT ({conflict}) {action}"
        )
        cur.execute(f"TRUNCATE {staging}")


def _copy_value(value: Any) -> Any:
    # UTC datetimes are stored naive, as UTCDateTime does for ordinary statements.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
