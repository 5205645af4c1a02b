"""The fault suite's fixtures (private servers, a deployment of real processes) and its
table: each scenario records a row, printed at the end of the session."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from githubsim import Simulator
from tests import services
from tests.faults import private_services
from tests.faults.deployment import Deployment
from tests.faults.private_services import PrivatePostgres, PrivateRabbit
from tests.faults.report import Row, table

ROWS = pytest.StashKey[list[Row]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[ROWS] = []


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    rows = config.stash.get(ROWS, [])
    if rows:
        terminalreporter.section("fault scenarios")
        terminalreporter.write_line(table(rows))


@pytest.fixture
def record_row(request: pytest.FixtureRequest) -> Callable[[Row], None]:
    """Add a row to the table; call it before asserting, so a failure still shows."""
    rows = request.config.stash[ROWS]

    def record(row: Row) -> None:
        rows.append(row)
        print(f"\n{table([row])}")

    return record


def _need_private_servers() -> None:
    missing = private_services.available()
    if missing is not None:
        services.unavailable(missing)


@pytest.fixture
def private_rabbit(tmp_path: Path) -> Iterator[PrivateRabbit]:
    _need_private_servers()
    with PrivateRabbit(tmp_path / "rabbit") as rabbit:
        yield rabbit


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    _need_private_servers()
    # In a directory of its own under /tmp: the postgres user cannot enter pytest's.
    with PrivatePostgres() as postgres:
        yield postgres


@pytest.fixture
def deploy(tmp_path: Path, simulator: Simulator) -> Iterator[Callable[..., Deployment]]:
    """Build a deployment on the given database and broker URLs; disposed of at the end."""
    made: list[Deployment] = []

    def build(database_url: str, broker_url: str, **env: str) -> Deployment:
        deployment = Deployment(tmp_path, database_url, broker_url, simulator, env)
        made.append(deployment)
        return deployment

    yield build
    for deployment in made:
        deployment.close()


@pytest.fixture
def private_vhost(private_rabbit: PrivateRabbit) -> str:
    return private_rabbit.add_vhost(f"faults_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def private_database(private_postgres: PrivatePostgres) -> str:
    return private_postgres.create_database(f"faults_{uuid.uuid4().hex[:8]}")
