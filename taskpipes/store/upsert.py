"""One portable upsert: PostgreSQL and SQLite share `on_conflict_do_update`.

Big batches on PostgreSQL go through COPY into a temporary table and one
`INSERT ... SELECT ... ON CONFLICT`, about three times the rows per second of executemany.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import FromClause, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

# Below this many rows the COPY round trips cost more than they save.
COPY_THRESHOLD = 500

Row = Mapping[str, Any]


def dedupe(rows: Iterable[Row], key: Sequence[str]) -> list[Row]:
    """Keep the last row per key: PostgreSQL rejects a statement that touches a row twice."""
    key_of = operator.itemgetter(*key)
    return list({key_of(row): row for row in rows}.values())


def upsert(
    session: Session,
    table: FromClause,
    rows: Iterable[Row],
    key: Sequence[str],
    update: Sequence[str] | None = None,
) -> int:
    """Insert rows, updating `update` columns (default: all non-key) on a key conflict.

    An empty `update` means "insert if absent". Returns the number of rows given. The same
    on PostgreSQL and SQLite; repeated keys are dropped first (the last row of a key is
    kept: PostgreSQL refuses a statement that touches a row twice), and a big batch on
    PostgreSQL goes through COPY and one `INSERT ... SELECT ... ON CONFLICT`.
    """
    target = cast(Table, table)  # a model's __table__ is typed as a plain FromClause
    batch = dedupe(rows, key)
    if not batch:
        return 0
    columns = list(batch[0].keys())
    update_cols = [c for c in columns if c not in key] if update is None else list(update)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and len(batch) >= COPY_THRESHOLD:
        _copy_merge(session, target, batch, columns, key, update_cols)
    else:
        session.execute(_statement(dialect, target, key, update_cols), batch)
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
    assert raw is not None, "a checked-out connection has its driver connection"
    with raw.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
            f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        plain = not any(_holds_text(table, c) for c in columns)
        with cur.copy(f"COPY {staging} ({col_list}) FROM STDIN") as copy:
            for chunk in _copy_text(_copy_rows(batch, columns), plain):
                copy.write(chunk)
        cur.execute(
            f"INSERT INTO {table.name} ({col_list}) SELECT {col_list} FROM {staging} "
            f"ON CONFLICT ({conflict}) {action}"
        )
        cur.execute(f"TRUNCATE {staging}")


# COPY text format: these characters must be escaped inside a value.
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# Rows per write: large enough to amortise the call, small enough to stream.
COPY_CHUNK_ROWS = 5000


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(COPY_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def _holds_text(table: Table, column: str) -> bool:
    try:
        return table.c[column].type.python_type is str
    except NotImplementedError:
        return True


def _copy_text(rows: Iterator[tuple[Any, ...]], plain: bool) -> Iterator[str]:
    """COPY's text format, built in chunks: several times faster than a write per row.

    `plain` rows hold no text columns, so only a NULL needs care and str() does the rest.
    """
    lines: list[str] = []
    for row in rows:
        if plain and None not in row:
            lines.append("\t".join(map(str, row)))
        else:
            lines.append("\t".join(map(_copy_field, row)))
        if len(lines) >= COPY_CHUNK_ROWS:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"


def _copy_rows(batch: list[Row], columns: list[str]) -> Iterator[tuple[Any, ...]]:
    """Rows as COPY wants them: UTC datetimes as naive text, as UTCDateTime stores them."""
    row_of = operator.itemgetter(*columns)
    zoned = [i for i, c in enumerate(columns) if isinstance(batch[0][c], datetime)]
    if not zoned:
        yield from (row_of(row) for row in batch)
        return
    as_text: dict[datetime, str] = {}  # ticks repeat a hundred times a batch

    def naive_text(moment: datetime) -> str:
        if moment not in as_text:
            as_text[moment] = str(moment.astimezone(UTC).replace(tzinfo=None))
        return as_text[moment]

    for row in batch:
        values = list(row_of(row))
        for i in zoned:
            if values[i] is not None:
                values[i] = naive_text(values[i])
        yield tuple(values)
