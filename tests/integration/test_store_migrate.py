"""The kit migrates its own tables: an old database is handed over with every row, a new
one gets the same schema, `db revision` writes a migration that runs, `db check` answers
in one line."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    inspect,
    select,
    text,
)

from db import schema as app
from taskpipes.store import migrate
from taskpipes.store.tables import NAMING_CONVENTION, UTCDateTime
from tests import services
from tests.clirun import run_cli
from tests.processes import service_env, taskpipes

ROOT = Path(__file__).resolve().parents[2]
# The application's migrations from the last commit whose migrations created the kit's
# tables (head 0005).
OLD_VERSIONS = ROOT / "tests" / "data" / "app_migrations_0005"
VERSION_TABLES = {migrate.KIT_VERSION_TABLE, migrate.APP_VERSION_TABLE}
# One value per Python type of a reflected column: every column of every table is filled.
VALUES: dict[type, Any] = {
    int: 1,  # also each `run_id`, so every foreign key finds runs.id 1
    str: "x",
    bool: True,
    float: 1.5,
    datetime: datetime(2026, 12, 1, 12, 30),
    object: {"key": [1, 2]},  # JSON
}


def old_migrations(directory: Path) -> Path:
    """The application's migrations as they were when they made the kit's tables (head
    0005, kept in tests/data as of commit a593997), run by today's env.py (the old one
    imported modules that have moved since)."""
    location = directory / "db" / "migrations"
    shutil.copytree(OLD_VERSIONS, location / "versions")
    shutil.copy(app.MIGRATIONS / "env.py", location / "env.py")
    return location


def upgrade_the_old_way(url: str, directory: Path, revision: str) -> None:
    """What `taskpipes db upgrade` did before: the application's history alone."""
    old = migrate.History(
        "application", old_migrations(directory), migrate.APP_VERSION_TABLE, app.METADATA, False
    )
    with migrate.engine_for(url) as engine:
        command.upgrade(old.config(engine), revision)


def fill_every_table(url: str) -> dict[str, list[dict[str, Any]]]:
    """One row in each table the database has; returns every row read back."""
    engine = create_engine(url)
    tables = reflected(url)
    with engine.begin() as connection:
        for table in tables.sorted_tables:
            if table.name not in VERSION_TABLES:
                row = {column.name: VALUES[column.type.python_type] for column in table.columns}
                connection.execute(insert(table).values(row))
    engine.dispose()
    return every_row(url)


def reflected(url: str) -> MetaData:
    metadata = MetaData()
    engine = create_engine(url)
    metadata.reflect(engine)
    engine.dispose()
    return metadata


def every_row(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = {
            table.name: [dict(row._mapping) for row in connection.execute(select(table))]
            for table in reflected(url).sorted_tables
            if table.name not in VERSION_TABLES
        }
    engine.dispose()
    return rows


def schema(url: str) -> dict[str, Any]:
    """Each table's columns, keys and indexes as the database reports them."""
    engine = create_engine(url)
    inspector = inspect(engine)
    described = {
        table: {
            "columns": [
                {key: str(value) if key == "type" else value for key, value in column.items()}
                for column in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table),
            "foreign keys": inspector.get_foreign_keys(table),
            "unique": sorted(inspector.get_unique_constraints(table), key=str),
            "indexes": sorted(inspector.get_indexes(table), key=str),
        }
        for table in inspector.get_table_names()
        if table not in VERSION_TABLES
    }
    engine.dispose()
    return described


@pytest.mark.parametrize("old_head", ["0005", "0003"])
def test_an_old_database_keeps_every_row_and_ends_like_a_new_one(
    empty_database_url: str, tmp_path: Path, old_head: str
) -> None:
    # Given a database the application's migrations made, up to today's head (0005) or
    # to one before the cancel columns and pipeline_controls (0003), a row in each table
    upgrade_the_old_way(empty_database_url, tmp_path / "old", old_head)
    before = fill_every_table(empty_database_url)
    assert "runs" in before and "repositories" in before and len(before) >= 18

    # When it is upgraded the new way: the kit's history, then the application's
    app.upgrade(empty_database_url)

    # Then every row is still there, the models match, and the schema is a new database's
    after = every_row(empty_database_url)
    for table, rows in before.items():
        assert [{k: row[k] for k in rows[0]} for row in after[table]] == rows, table
    assert set(after) - set(before) == ({"pipeline_controls"} if old_head == "0003" else set())
    app.check(empty_database_url)
    kind = "sqlite" if empty_database_url.startswith("sqlite") else "postgres"
    (tmp_path / "new").mkdir()
    with services.database(kind, tmp_path / "new") as new:
        assert schema(empty_database_url) == schema(new)


def test_each_history_records_itself_in_its_own_version_table(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        kit = connection.execute(text("SELECT version_num FROM taskpipes_alembic_version"))
        application = connection.execute(text("SELECT version_num FROM alembic_version"))
        assert (kit.scalar_one(), application.scalar_one()) == ("taskpipes_0004", "0005")
    engine.dispose()
    assert migrate.kit_table_names() == {
        "runs",
        "stage_runs",
        "pipeline_controls",
        "message_deliveries",
    }


def with_feed_items(metadata: MetaData) -> MetaData:
    """The application's models plus a table of a new pipeline's, on a throwaway metadata."""
    extended = MetaData(naming_convention=NAMING_CONVENTION)
    for table in metadata.tables.values():
        table.to_metadata(extended)
    Table(
        "feed_items",
        extended,
        Column("id", Integer, primary_key=True),
        Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        Column("title", String(200), nullable=False),
        Column("published_at", UTCDateTime(), nullable=False),
    )
    return extended


def test_a_generated_revision_runs(empty_database_url: str, tmp_path: Path) -> None:
    # Given the application's migrations (a copy) applied, and a model they do not have yet
    location = shutil.copytree(app.MIGRATIONS, tmp_path / "migrations")
    migrate.upgrade(empty_database_url, location, app.METADATA)
    metadata = with_feed_items(app.METADATA)
    drift = migrate.check(empty_database_url, location, metadata)
    assert drift.changes == ["add_table feed_items"]

    # When a revision is generated and applied
    written = migrate.revision(empty_database_url, location, metadata, "feed items")
    migrate.upgrade(empty_database_url, location, metadata)

    # Then it carried on the numbering, imported the custom type it used, and ran
    assert written == location / "versions" / "0006_feed_items.py"
    assert f"import {UTCDateTime.__module__}\n" in written.read_text()
    assert "feed_items" in inspect(create_engine(empty_database_url)).get_table_names()
    assert migrate.check(empty_database_url, location, metadata).matches


def db_check(url: str, tmp_path: Path) -> tuple[int, str]:
    result = run_cli(["db", "check"], service_env(tmp_path, DATABASE_URL=url), tmp_path)
    assert result.stderr == ""
    return result.returncode, result.stdout


def test_db_check_answers_in_one_line(empty_database_url: str, tmp_path: Path) -> None:
    assert db_check(empty_database_url, tmp_path) == (
        1,
        "database differs from the models: the kit's migrations are at no revision, not "
        "taskpipes_0004; the application's migrations are at no revision, not 0005; "
        "run `taskpipes db upgrade`\n",
    )

    app.upgrade(empty_database_url)
    assert db_check(empty_database_url, tmp_path) == (0, "database matches the models\n")

    engine = create_engine(empty_database_url)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE repositories ADD COLUMN note TEXT"))
        connection.execute(text("CREATE TABLE leftovers (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    assert db_check(empty_database_url, tmp_path) == (
        1,
        "database differs from the models: 2 changes (e.g. remove_table leftovers, "
        "remove_column repositories.note); run `taskpipes db revision -m MESSAGE`\n",
    )


def test_db_revision_needs_a_message(sqlite_url: str, tmp_path: Path) -> None:
    env = service_env(tmp_path, DATABASE_URL=sqlite_url)

    result = run_cli(["db", "revision"], env, tmp_path)

    assert (result.returncode, result.stderr) == (
        2,
        "taskpipes db revision: -m MESSAGE is required\n",
    )


FEED_APP = """
import taskpipes

application = taskpipes.Application(migrations="feedapp:migrations", models="feedapp.models")
"""
FEED_MODELS = """
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from taskpipes.store.tables import Base


class FeedItem(Base):
    __tablename__ = "feed_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    published_at: Mapped[datetime]
"""


def test_an_application_of_its_own_makes_its_first_migration(tmp_path: Path) -> None:
    # Given an application beside the kit: its module, its models, an empty history
    # (the flagship's env.py and template), in a process of its own (its table would
    # otherwise join the Base of every later test)
    feedapp = tmp_path / "feedapp"
    ignored = shutil.ignore_patterns("versions", "__pycache__")
    shutil.copytree(app.MIGRATIONS, feedapp / "migrations", ignore=ignored)
    (feedapp / "migrations" / "versions").mkdir()
    (feedapp / "__init__.py").write_text(FEED_APP)
    (feedapp / "models.py").write_text(FEED_MODELS)
    env = service_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'feed.db'}")
    env["TASKPIPES_APP"] = "feedapp"

    def taskpipes_db(*args: str) -> tuple[int, str, str]:
        result = taskpipes(["db", *args], env, cwd=tmp_path)
        return result.returncode, result.stdout, result.stderr

    # When it generates its first migration, asks for a second before applying the first,
    # then applies it
    first = taskpipes_db("revision", "-m", "feed items")
    second = taskpipes_db("revision", "-m", "again")
    upgraded = taskpipes_db("upgrade")

    # Then the first is written, importing the type it uses; the second is refused in one
    # line; and the database ends with the kit's tables and the application's, matching
    migration = feedapp / "migrations" / "versions" / "0001_feed_items.py"
    assert first == (0, f"wrote {migration}\n", "")
    assert f"import {UTCDateTime.__module__}\n" in migration.read_text()
    assert second == (1, "", "taskpipes db revision: Target database is not up to date.\n")
    assert upgraded == (0, "database schema is up to date\n", "")
    assert taskpipes_db("check") == (0, "database matches the models\n", "")
    tables = set(inspect(create_engine(env["DATABASE_URL"])).get_table_names())
    assert tables == migrate.kit_table_names() | VERSION_TABLES | {"feed_items"}


def test_an_application_without_migrations_gets_the_kits_tables(tmp_path: Path) -> None:
    # Given a host application that names no migrations (tests/kit_host.py)
    url = f"sqlite:///{tmp_path / 'host.db'}"
    env = service_env(tmp_path, DATABASE_URL=url)
    env["TASKPIPES_APP"] = "tests.kit_host"

    # When it upgrades, checks, and asks for a revision
    upgraded = taskpipes(["db", "upgrade"], env, cwd=tmp_path)
    checked = taskpipes(["db", "check"], env, cwd=tmp_path)
    refused = taskpipes(["db", "revision", "-m", "more"], env, cwd=tmp_path)

    # Then the kit's history alone ran, and a revision has nowhere to go: one line, exit 2
    assert (upgraded.returncode, upgraded.stderr) == (0, ""), upgraded.stderr
    assert (checked.returncode, checked.stdout) == (0, "database matches the models\n")
    with migrate.engine_for(url) as engine:
        tables = set(inspect(engine).get_table_names())
    assert tables == {"runs", "stage_runs", "pipeline_controls", "message_deliveries"} | {
        migrate.KIT_VERSION_TABLE
    }
    assert refused.returncode == 2
    assert refused.stderr.startswith("taskpipes db revision: the application names no migrations")
