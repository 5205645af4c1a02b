"""Shared fixtures: one per real backend, each cleaning its state before and after."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

# The pytest process itself uses the in-process broker; RabbitMQ tests run workers as
# subprocesses with BROKER_URL set.
os.environ.pop("BROKER_URL", None)
os.environ.pop("GITHUB_TOKEN", None)
# The GitHub application runs from the checkout, not from site-packages: every process a
# test starts (workers, schedulers, `taskpipes` in a working directory of its own) finds it
# on the Python path, as a deployment's working directory would put it.
CHECKOUT = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [CHECKOUT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)

from githubsim import Simulator  # noqa: E402
from tests import services  # noqa: E402

# Limits high enough that a test never waits for the simulator's rate limiter by accident.
SIM_LIMITS = {"search_limit": 100_000, "core_limit": 1_000_000}


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[Simulator]:
    with Simulator(**SIM_LIMITS) as sim:
        yield sim


@pytest.fixture
def simulator(simulator_server: Simulator) -> Iterator[Simulator]:
    simulator_server.reset()
    yield simulator_server
    simulator_server.reset()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file of this test's own, its schema at the newest migration."""
    return services.migrated_sqlite_file(tmp_path / "taskpipes.db")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, its schema at the newest migration."""
    with services.migrated_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both supported databases, one after the other, their schema at the newest migration."""
    with services.database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both supported databases without any table: for the migrations themselves."""
    with services.database(request.param, tmp_path, migrated=False) as url:
        yield url


@pytest.fixture
def rabbitmq() -> Iterator[str]:
    """The AMQP URL of a RabbitMQ virtual host of this test's own."""
    with services.rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, simulator: Simulator):  # type: ignore[no-untyped-def]
    """Point this process's settings at a database and the simulator; returns a configurer."""
    from tests.app import configure

    def _configure(database_url: str, **extra: str) -> None:
        configure(monkeypatch, database_url, simulator.url, **extra)

    yield _configure
    from taskpipes import testing

    testing.reset()


@pytest.fixture
def declared() -> Iterator[Callable[..., object]]:
    """`declared(pipeline, ...)` declares test pipelines for the rest of the test, withdrawn
    with their actors afterwards (taskpipes.testing.declared)."""
    from taskpipes import testing

    with ExitStack() as stack:
        yield lambda *pipelines: stack.enter_context(testing.declared(*pipelines))


@pytest.fixture(scope="session")
def fills(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Databases filled once per session and copied for each test (tests.app.Fills)."""
    from tests.app import Fills

    with Fills[object](tmp_path_factory.mktemp("fills")) as made:
        yield made


@pytest.fixture
def api_server() -> Iterator[str]:
    """The read API on a free loopback port, served by uvicorn in a thread; yields its base
    URL. It reads whatever database the settings name when a request comes in (app_env)."""
    from web.api.app import create_app
    from web.api.server import serve_in_thread

    with serve_in_thread(create_app()) as url:
        yield url


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """The cluster scenarios' table: ticks expected and stored, lost, duplicated, recovery."""
    from tests import cluster

    if cluster.TABLE:
        terminalreporter.write_sep("-", "three-node RabbitMQ cluster")
        for line in [cluster.TABLE_HEADER, *cluster.TABLE]:
            terminalreporter.write_line(line)
