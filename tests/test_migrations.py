"""Models and migrations never drift, and the schema upgrades on both databases."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect

from db import migrate
from db.models import Base
from tests.processes import service_env, taskpipes


def test_alembic_check_is_clean(database_url: str) -> None:
    migrate.upgrade(database_url)

    migrate.check(database_url)  # raises on any difference

    tables = set(inspect(create_engine(database_url)).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_upgrade_twice_is_harmless(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    migrate.upgrade(sqlite_url)

    migrate.check(sqlite_url)


def test_db_upgrade_command_creates_the_default_sqlite_file(tmp_path: Path) -> None:
    env = service_env(tmp_path)
    env.pop("DATABASE_URL", None)

    result = taskpipes(["db", "upgrade"], env, timeout=60, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "taskpipes.db").stat().st_size > 0


def test_a_broken_database_url_is_a_clear_error(tmp_path: Path) -> None:
    result = taskpipes(["db", "upgrade"], service_env(tmp_path, DATABASE_URL="mysql://x"))

    assert result.returncode == 2
    assert (
        "DATABASE_URL must be sqlite:///FILE or postgresql+psycopg://..., got scheme 'mysql'"
        in result.stderr
    )


def test_a_missing_schema_is_a_clear_error(tmp_path: Path) -> None:
    env = service_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")

    result = taskpipes(["status"], env)

    assert result.returncode == 1
    assert "the schema is missing: run `taskpipes db upgrade`" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unopenable_sqlite_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-directory" / "taskpipes.db"
    env = service_env(tmp_path, DATABASE_URL=f"sqlite:///{missing}")

    result = taskpipes(["db", "upgrade"], env)

    assert result.returncode == 1
    assert f"unable to open database file '{missing}'" in result.stderr
    assert "Traceback" not in result.stderr
