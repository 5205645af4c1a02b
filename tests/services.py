"""Real backends for the tests: a SQLite file, a fresh PostgreSQL database, RabbitMQ.

Locally a missing server skips its tests; under CI=true it fails them instead.

A test's database is a copy of one built by a single Alembic upgrade per test process (a
`CREATE DATABASE … TEMPLATE`, a SQLite file copy), and its virtual host comes out of a
batch made by a single `rabbitmqctl` call: an upgrade costs a test about 0.3 s and each
`rabbitmqctl` call starts an Erlang VM (about a second), while a copy costs 0.07 s.
The templates are built fresh in each process, so a changed migration is always in them.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg
import pytest

from db import schema as migrate
from pipelines import catalog

PG_ADMIN_DSN = os.environ.get(
    "TEST_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL_TEMPLATE = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
# Every queue our actors declare, read from the declarations (a new pipeline's queue is
# expected everywhere at once), plus the kit's own catch-up and housekeeping queue.
QUEUES = tuple(sorted({p.queue_name for p in catalog.registry.declared} | {"default"}))
# Virtual hosts made (and used ones deleted) per `rabbitmqctl` call.
VHOST_BATCH = 8
# Who RabbitMQ's log names as adding and deleting the tests' virtual hosts.
ACTING_USER = "taskpipes-tests"


def unavailable(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is not reachable, and under CI=true nothing skips")
    pytest.skip(f"{what} is not reachable")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def pg_admin(statement: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(statement)


def database_name(url: str) -> str:
    return url.rpartition("/")[2]


@contextmanager
def postgres_database(template: str | None = None) -> Iterator[str]:
    """A new database, dropped afterwards; yields its SQLAlchemy URL. It is empty, or a copy
    of the database named `template` (which nobody may be connected to meanwhile)."""
    if not port_open("127.0.0.1", 5432):
        unavailable("PostgreSQL on 127.0.0.1:5432")
    name = f"taskpipes_test_{uuid.uuid4().hex[:10]}"
    pg_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield PG_URL_TEMPLATE.format(name=name)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@functools.cache
def postgres_schema() -> str:
    """The name of a database holding the migrated schema, for this process's tests to copy;
    dropped when the process exits."""
    if not port_open("127.0.0.1", 5432):
        unavailable("PostgreSQL on 127.0.0.1:5432")
    name = f"taskpipes_schema_{uuid.uuid4().hex[:10]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    atexit.register(pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    migrate.upgrade(PG_URL_TEMPLATE.format(name=name))
    return name


@contextmanager
def migrated_postgres_database() -> Iterator[str]:
    """`postgres_database` with the schema at the newest migration."""
    with postgres_database(template=postgres_schema()) as url:
        yield url


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy a SQLite database file, whatever its WAL still holds."""
    with closing(sqlite3.connect(source)) as reader, closing(sqlite3.connect(target)) as writer:
        reader.backup(writer)


@functools.cache
def sqlite_schema() -> Path:
    """A SQLite file holding the migrated schema, for this process's tests to copy."""
    directory = Path(tempfile.mkdtemp(prefix="taskpipes-schema-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = directory / "schema.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def migrated_sqlite_file(path: Path) -> str:
    """A SQLite file at `path` with the schema at the newest migration; returns its URL."""
    copy_sqlite(sqlite_schema(), path)
    return f"sqlite:///{path}"


@contextmanager
def database(kind: str, directory: Path, migrated: bool = True) -> Iterator[str]:
    """A database of one test's own, `kind` "sqlite" (a file in `directory`) or "postgres",
    its schema at the newest migration or (not `migrated`) without any table."""
    if kind == "sqlite":
        path = directory / "taskpipes.db"
        yield migrated_sqlite_file(path) if migrated else f"sqlite:///{path}"
    elif migrated:
        with migrated_postgres_database() as url:
            yield url
    else:
        with postgres_database() as url:
            yield url


@contextmanager
def copy_of(url: str, directory: Path) -> Iterator[str]:
    """A copy of the test database at `url` (a SQLite copy goes into `directory`), dropped
    afterwards; yields its URL. Nobody may be connected to a PostgreSQL original meanwhile."""
    if url.startswith("sqlite:///"):
        copy = directory / "taskpipes.db"
        copy_sqlite(Path(url.removeprefix("sqlite:///")), copy)
        yield f"sqlite:///{copy}"
    else:
        with postgres_database(template=database_name(url)) as copied:
            yield copied


def all_queue_names() -> list[str]:
    return [f"{q}{suffix}" for q in QUEUES for suffix in ("", ".DQ", ".XQ")]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def erlang_binaries(names: list[str]) -> str:
    return "[" + ", ".join(f'<<"{name}">>' for name in names) + "]"


def add_vhosts(names: list[str]) -> None:
    """Add virtual hosts that guest may use, with one Erlang VM for them all."""
    rabbitmqctl(
        "eval",
        f'[begin ok = rabbit_vhost:add(V, <<"{ACTING_USER}">>), '
        'ok = rabbit_auth_backend_internal:set_permissions(<<"guest">>, V, '
        f'<<".*">>, <<".*">>, <<".*">>, <<"{ACTING_USER}">>) end '
        f"|| V <- {erlang_binaries(names)}], ok.",
    )


def delete_vhosts(names: list[str]) -> None:
    """Delete virtual hosts, and their queues with them, with one Erlang VM for them all."""
    if names:
        rabbitmqctl(
            "eval",
            f'[ok = rabbit_vhost:delete(V, <<"{ACTING_USER}">>) '
            f"|| V <- {erlang_binaries(names)}], ok.",
        )


class VhostPool:
    """Virtual hosts named `prefix_…`, added a batch at a time; each is handed out once and
    deleted, in a batch, after its user is done with it."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.fresh: list[str] = []
        self.used: list[str] = []
        atexit.register(self.close)

    def take(self) -> str:
        if not self.fresh:
            batch = [f"{self.prefix}_{uuid.uuid4().hex[:10]}" for _ in range(VHOST_BATCH)]
            add_vhosts(batch)
            self.fresh = batch
        return self.fresh.pop()

    def give_back(self, vhost: str) -> None:
        self.used.append(vhost)
        if len(self.used) >= VHOST_BATCH:
            self.used, done = [], self.used
            delete_vhosts(done)

    def close(self) -> None:
        self.fresh, self.used, left = [], [], self.fresh + self.used
        delete_vhosts(left)


@functools.cache
def vhost_pool(prefix: str) -> VhostPool:
    return VhostPool(prefix)


@contextmanager
def rabbitmq_vhost(prefix: str = "taskpipes_test") -> Iterator[str]:
    """A RabbitMQ virtual host named `prefix_…` that nothing used before, deleted
    afterwards; yields its AMQP URL.

    Each test (or bench) gets its own queues, so no message of another test (or of another
    run of the suite on this machine) can reach its workers.
    """
    if not port_open("127.0.0.1", 5672):
        unavailable("RabbitMQ on 127.0.0.1:5672")
    if shutil.which("rabbitmqctl") is None:
        unavailable("rabbitmqctl (to create a test virtual host)")
    pool = vhost_pool(prefix)
    vhost = pool.take()
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        pool.give_back(vhost)
