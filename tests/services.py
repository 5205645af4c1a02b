"""Real backends for the tests: a SQLite file, a fresh PostgreSQL database, RabbitMQ.

Locally a missing server skips its tests; under CI=true it fails them instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from pipelines import catalog

PG_ADMIN_DSN = os.environ.get(
    "TEST_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL_TEMPLATE = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
# Every queue our actors declare, read from the declarations (a new pipeline's queue is
# expected everywhere at once), plus the kit's own catch-up and housekeeping queue.
QUEUES = tuple(sorted({p.queue_name for p in catalog.registry.declared} | {"default"}))


def unavailable(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is not reachable, and under CI=true nothing skips")
    pytest.skip(f"{what} is not reachable")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new empty database, dropped afterwards; yields its SQLAlchemy URL."""
    if not port_open("127.0.0.1", 5432):
        unavailable("PostgreSQL on 127.0.0.1:5432")
    name = f"taskpipes_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL_TEMPLATE.format(name=name)
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def all_queue_names() -> list[str]:
    return [f"{q}{suffix}" for q in QUEUES for suffix in ("", ".DQ", ".XQ")]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def rabbitmq_vhost(prefix: str = "taskpipes_test") -> Iterator[str]:
    """A fresh RabbitMQ virtual host named `prefix_…`, deleted afterwards; yields its AMQP
    URL.

    Each test (or bench) gets its own queues, so no message of another test (or of another
    run of the suite on this machine) can reach its workers.
    """
    if not port_open("127.0.0.1", 5672):
        unavailable("RabbitMQ on 127.0.0.1:5672")
    if shutil.which("rabbitmqctl") is None:
        unavailable("rabbitmqctl (to create a test virtual host)")
    vhost = f"{prefix}_{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)
