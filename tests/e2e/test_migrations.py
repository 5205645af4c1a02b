"""Models and migrations never drift, and the schema upgrades on both databases."""

from __future__ import annotations

from pathlib import Path

import requests
from sqlalchemy import create_engine, inspect

from db import schema as migrate
from taskpipes.store.tables import Base
from tests.clirun import run_cli
from tests.processes import VENV_BIN, answers, free_port, process, service_env
from tests.queues import wait_until


def test_alembic_check_is_clean(empty_database_url: str) -> None:
    # Every migration from an empty database, not the tests' template copy
    assert inspect(create_engine(empty_database_url)).get_table_names() == []
    migrate.upgrade(empty_database_url)

    migrate.check(empty_database_url)  # raises on any difference

    tables = set(inspect(create_engine(empty_database_url)).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_upgrade_twice_is_harmless(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'taskpipes.db'}"
    migrate.upgrade(url)
    migrate.upgrade(url)

    migrate.check(url)


def test_the_tests_databases_are_copies_at_the_newest_migration(database_url: str) -> None:
    # alembic check also fails on a database that is not at the head revision
    migrate.check(database_url)

    tables = set(inspect(create_engine(database_url)).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_db_upgrade_command_creates_the_default_sqlite_file(tmp_path: Path) -> None:
    env = service_env(tmp_path)
    env.pop("DATABASE_URL", None)

    result = run_cli(["db", "upgrade"], env, tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "taskpipes.db").stat().st_size > 0


def test_a_broken_database_url_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(["db", "upgrade"], service_env(tmp_path, DATABASE_URL="mysql://x"), tmp_path)

    assert result.returncode == 2
    assert (
        "DATABASE_URL must be sqlite:///FILE or postgresql+psycopg://..., got scheme 'mysql'"
        in result.stderr
    )


def test_a_missing_schema_is_a_clear_error(tmp_path: Path) -> None:
    env = service_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")

    result = run_cli(["status"], env, tmp_path)

    assert result.returncode == 1
    assert "the schema is missing: run `taskpipes db upgrade`" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unopenable_sqlite_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-directory" / "taskpipes.db"
    env = service_env(tmp_path, DATABASE_URL=f"sqlite:///{missing}")

    result = run_cli(["db", "upgrade"], env, tmp_path)

    assert result.returncode == 1
    assert f"unable to open database file '{missing}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_api_without_a_schema_is_a_503_and_a_log_line_saying_why(tmp_path: Path) -> None:
    env = service_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    port, log = free_port(), tmp_path / "api.log"
    serve = [str(VENV_BIN / "taskpipes"), "serve", "--host", "127.0.0.1", "--port", str(port)]

    with process(serve, env, log):
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 30, "the API")
        answer = requests.get(f"http://127.0.0.1:{port}/api/top", timeout=5)

    # The caller learns that the database is the trouble, the operator's log learns why
    assert answer.status_code == 503
    assert answer.json() == {"detail": "database unavailable: OperationalError"}
    logged = log.read_text()
    assert "/api/top: database unavailable: no such table: latest_ranking" in logged
    assert "run `taskpipes db upgrade`" in logged and "Traceback" not in logged
