"""No work at import time: the kit and the web app build no broker and open no
connection; `status` and `db upgrade` open no broker connection; `import actors` builds the broker; a host application can hand in its
own settings and engine. Each case runs in a fresh interpreter, as the commands do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]

# Prints whether a global broker exists and how many database connections were opened
# (and, with RabbitMQ named, how many TCP connections were tried), after the code it is
# given ran.
PROBE = """
import json, socket, sys
import dramatiq.broker
from sqlalchemy import Engine, event
connections = []
event.listen(Engine, "connect", lambda *args: connections.append("db"))
real_connect = socket.socket.connect
def counted(self, address):
    connections.append("tcp")
    return real_connect(self, address)
socket.socket.connect = counted
{code}
print(json.dumps({{"broker": type(dramatiq.broker.global_broker).__name__,
                  "connections": connections}}))
"""


def probe(code: str, tmp_path: Path, **env: str) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL", "GITHUB_TOKEN")}
    environment |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'probe.db'}", **env}
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def nowhere() -> str:
    """An AMQP URL where nothing listens: any connection to it would be seen and fail."""
    return f"amqp://guest:guest@127.0.0.1:{free_port()}/"


def test_importing_the_kit_and_the_app_builds_nothing(tmp_path: Path) -> None:
    code = "import taskpipes, pipelines.catalog, taskpipes.cli.main\nfrom web.api.app import create_app\ncreate_app()"

    assert probe(code, tmp_path, BROKER_URL=nowhere()) == {"broker": "NoneType", "connections": []}


def test_db_upgrade_and_status_open_no_broker_connection(tmp_path: Path) -> None:
    # Every command imports the application module (TASKPIPES_APP), which builds the
    # broker; building it connects to nothing, so `db upgrade` reaches the database alone
    upgrade = "from taskpipes.cli.main import main\nassert main(['db', 'upgrade']) == 0"
    status = "from taskpipes.cli.main import main\nassert main(['status']) == 0"

    upgraded = probe(upgrade, tmp_path, BROKER_URL=nowhere())
    # and `status` on the in-process broker too (with RabbitMQ it reads the queue depths)
    reported = probe(status, tmp_path)

    assert upgraded["broker"] == "TypedQueuesBroker"
    assert set(upgraded["connections"]) == {"db"}  # type: ignore[arg-type]
    assert reported["broker"] == "StubBroker"
    assert set(reported["connections"]) == {"db"}  # type: ignore[arg-type]


def test_import_actors_builds_the_broker_without_connecting(tmp_path: Path) -> None:
    seen = probe("import actors", tmp_path, BROKER_URL=nowhere())

    # The RabbitmqBroker that declares queues classic or quorum (TASKPIPES_QUEUE_TYPE)
    assert seen == {"broker": "TypedQueuesBroker", "connections": []}


# A host application's own pipeline, on its own settings and engine: the settings name a
# database that does not exist, so a run that succeeds used the engine handed in.
HOST = """
from sqlalchemy import select
import taskpipes
from db import schema as migrate
from taskpipes import Context, Pipeline, Settings, Stage, registry
from taskpipes.store.database import make_engine
from taskpipes.store.tables import Run
from taskpipes.runtime.runner import run_tick
from datetime import datetime, UTC

migrate.upgrade("{url}")
engine = make_engine("{url}")
taskpipes.configure(engine=engine)
def note(ctx: Context) -> int:
    return ctx.wrote(7, "notes")
registry.declare(Pipeline("host_job", stages=(Stage("note", note),)))
taskpipes.start(Settings(database_url="sqlite:///{tmp}/missing/never.db"))
outcome = run_tick(registry.get("host_job"), datetime.now(UTC), 60)
assert outcome.status == "succeeded", outcome
assert outcome.stages == [("note", "succeeded", outcome.stages[0][2], 7)], outcome.stages
with engine.connect() as connection:
    assert connection.scalar(select(Run.pipeline)) == "host_job"
"""


def test_a_host_application_hands_in_its_settings_and_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'host.db'}"

    seen = probe(HOST.format(url=url, tmp=tmp_path), tmp_path)

    assert seen["broker"] == "StubBroker"
    assert not (tmp_path / "missing").exists()
