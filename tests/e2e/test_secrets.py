"""Secrets stay secret: GITHUB_TOKEN and the passwords of DATABASE_URL and BROKER_URL, each a
marker value, appear in no output, log, metric, dead letter, stored row or API answer.

Real processes throughout: `taskpipes` commands with -v (the most they ever say), a
`dramatiq actors` worker, `taskpipes serve`; a PostgreSQL of the test's own that checks
passwords (the machine's trusts everyone, so a wrong password would pass there), the
machine's RabbitMQ with a user of the test's own, and the GitHub simulator. Failure paths
are part of it: a malformed GitHub answer (a failed run and a dead letter), a wrong
password on each server, and hosts where nothing listens.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, select

from githubsim import Simulator
from taskpipes.rabbitmq import queues as rabbit
from tests import services
from tests.e2e.test_stargazers import clock_at_stars
from tests.processes import free_port, process, scheduler, scrape, service_env, workers
from tests.processes import taskpipes as run_taskpipes
from tests.queues import wait_until

TOKEN = "ghp_tokenMARKER5wy8"
DB_PASSWORD = "dbMARKER7qx9"
MQ_PASSWORD = "mqMARKER3zk2"
WRONG_PASSWORD = "wrongMARKER4jt6"
MARKERS = (TOKEN, DB_PASSWORD, MQ_PASSWORD, WRONG_PASSWORD, "MARKER")
# Stars of the repository whose stargazers are fetched: a few pages make the same requests
# as GitHub's 400, in a fraction of the time.
STARGAZERS = 250
# A past tick of the simulated day, and the one whose fetch gets a malformed answer.
TICK = "2026-08-21T12:00:00Z"
BAD_TICK = "2026-08-21T12:10:00Z"
ROLLUP_RANGE = ["--from", "2026-08-21T11:45:00Z", "--to", "2026-08-21T12:00:00Z"]
FAST = {"TASKPIPES_RETRY_MIN_BACKOFF_MS": "10", "TASKPIPES_GITHUB_TIMEOUT": "5"}


class Evidence:
    """Everything the system said or stored, to search for the markers at the end. The
    failure paths gather theirs from threads at once."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.lock = threading.Lock()

    def add(self, where: str, text: str) -> None:
        with self.lock:
            self.texts[f"{len(self.texts):02d} {where}"] = text

    def command(self, args: list[str], env: dict[str, str], *, ok: bool) -> str:
        result = run_taskpipes(["-v", *args], env, timeout=180)
        self.add(f"taskpipes {' '.join(args)}", result.stdout + result.stderr)
        assert (result.returncode == 0) is ok, f"{args}: {result.stdout}\n{result.stderr}"
        return result.stdout

    def api(self, base: str, paths: list[str]) -> None:
        for path in paths:
            try:
                with urllib.request.urlopen(f"{base}{path}", timeout=10) as answer:
                    self.add(f"GET {path}", answer.read().decode())
            except urllib.error.HTTPError as error:  # a 503 is an answer too
                self.add(f"GET {path} ({error.code})", error.read().decode())

    def database(self, url: str) -> None:
        engine = create_engine(url)
        try:
            metadata = MetaData()
            metadata.reflect(engine)
            with engine.connect() as connection:
                for table in metadata.sorted_tables:
                    rows = connection.execute(select(table)).all()
                    self.add(f"table {table.name}", "\n".join(map(repr, rows)))
        finally:
            engine.dispose()

    def assert_no_marker(self) -> None:
        leaks = [
            f"{where}: {marker}"
            for where, text in self.texts.items()
            for marker in MARKERS
            if marker.lower() in text.lower()
        ]
        assert leaks == [], "\n".join(leaks)


@pytest.fixture
def evidence() -> Evidence:
    return Evidence()


@contextmanager
def served_api(env: dict[str, str], log: Path) -> Iterator[str]:
    """`taskpipes serve` as a process; yields its base URL once it answers."""
    port = free_port()
    with process([*taskpipes_command(), "-v", "serve", "--port", str(port)], env, log):
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{base}/healthz"), 60, "taskpipes serve to answer")
        yield base


def taskpipes_command() -> list[str]:
    return [str(Path(sys.executable).parent / "taskpipes")]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    credentials, host = rest.split("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}:{password}@{host}"


# --- SQLite and the in-process broker --------------------------------------------------


def test_the_token_appears_nowhere_in_an_in_process_run(
    tmp_path: Path, simulator: Simulator, evidence: Evidence
) -> None:
    # Given a token, the simulator and a SQLite file
    db_url = f"sqlite:///{tmp_path / 'taskpipes.db'}"
    env = service_env(
        tmp_path, DATABASE_URL=db_url, GITHUB_API_URL=simulator.url, GITHUB_TOKEN=TOKEN, **FAST
    )
    simulator.set_clock(datetime_of(TICK))

    # When every pipeline runs, one github_top tick fails on a malformed answer
    evidence.command(["db", "upgrade"], env, ok=True)
    evidence.command(["run", "github_top", "--at", TICK], env, ok=True)
    evidence.command(["backfill", "rollup", *ROLLUP_RANGE], env, ok=True)
    first = simulator.top(datetime_of(TICK))[0]["full_name"]
    stargazers = ["--repo", first, "--rate", "1000000", "--api-rate", "100000000"]
    clock_at_stars(simulator, first, STARGAZERS)
    evidence.command(["run", "stargazers", "--at", TICK, *stargazers], env, ok=True)
    simulator.set_clock(datetime_of(TICK))
    simulator.add_fault("search", "malformed_json", times=10)
    evidence.command(["run", "github_top", "--at", BAD_TICK], env, ok=False)
    evidence.command(["status"], env, ok=True)
    evidence.command(["status", "--json"], env, ok=True)
    with served_api(env, tmp_path / "serve.log") as base:
        evidence.api(base, api_paths(first))
    evidence.add("serve log", (tmp_path / "serve.log").read_text())
    evidence.database(db_url)

    # Then the GitHub simulator got the token, and nothing we said or stored holds it
    assert simulator.requests()["last"]["search"]["authorization"] is True
    assert any("malformed" in text or "JSON" in text for text in evidence.texts.values())
    evidence.assert_no_marker()


def api_paths(repo: str) -> list[str]:
    return [
        "/api/top",
        "/api/trending",
        f"/api/repos/{repo}/history",
        f"/api/repos/{repo}/stars",
        "/api/runs?limit=500",
        "/readyz",
        "/metrics",
        "/",
        f"/repos/{repo}",
    ]


def datetime_of(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- PostgreSQL and RabbitMQ with passwords --------------------------------------------


@contextmanager
def password_postgres(password: str) -> Iterator[str]:
    """A PostgreSQL of this test's own that checks passwords (SCRAM); yields its URL."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if not found[-1]:
        services.unavailable("initdb (to start a PostgreSQL that checks passwords)")
    bin_dir = Path(str(found[-1])).parent
    root = Path(tempfile.mkdtemp(prefix="taskpipes-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to the postgres user
        shutil.chown(root, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    pwfile = root / "password"
    pwfile.write_text(password)
    if as_owner:
        shutil.chown(pwfile, "postgres")
    port = free_port()
    data = root / "data"
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "taskpipes", "--no-sync"]
    initdb += ["--pwfile", str(pwfile), "--auth=scram-sha-256", "-E", "UTF8"]
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log")]
    subprocess.run([*as_owner, *initdb], check=True, capture_output=True, timeout=120)
    subprocess.run(
        [*as_owner, *pg_ctl, "-o", options, "-w", "start"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"postgresql+psycopg://taskpipes:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_owner, *pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def rabbitmq_user(vhost_url: str, password: str) -> Iterator[str]:
    """A RabbitMQ user of this test's own with `password` on the vhost; yields its URL."""
    user = f"taskpipes_test_{uuid.uuid4().hex[:8]}"
    vhost = vhost_url.rsplit("/", 1)[1]
    services.rabbitmqctl("add_user", user, password)
    try:
        services.rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield f"amqp://{user}:{password}@127.0.0.1:5672/{vhost}"
    finally:
        services.rabbitmqctl("delete_user", user)


def dead_letter_bodies(broker_url: str, queues: list[str]) -> list[str]:
    bodies = []
    with rabbit.connect(broker_url) as connection:
        for queue in queues:
            with rabbit.held_dead_letters(connection, queue) as held:
                bodies += [item.body.decode("utf-8", "replace") for item in held]
    return bodies


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_passwords_and_token_appear_nowhere_on_postgres_and_rabbitmq(
    tmp_path: Path, simulator: Simulator, rabbitmq: str, evidence: Evidence
) -> None:
    with password_postgres(DB_PASSWORD) as db_url, rabbitmq_user(rabbitmq, MQ_PASSWORD) as mq:
        env = service_env(
            tmp_path,
            DATABASE_URL=db_url,
            BROKER_URL=mq,
            GITHUB_API_URL=simulator.url,
            GITHUB_TOKEN=TOKEN,
            **FAST,
        )
        simulator.set_clock(datetime_of(TICK))
        evidence.command(["db", "upgrade"], env, ok=True)
        worker_log = tmp_path / "workers.log"
        with workers(env, worker_log):
            # A good tick, a backfill, a tick that fails into the dead letters
            evidence.command(["run", "github_top", "--at", TICK, "--timeout", "120"], env, ok=True)
            evidence.command(["backfill", "rollup", *ROLLUP_RANGE], env, ok=True)
            simulator.add_fault("search", "malformed_json", times=10)
            evidence.command(["run", "github_top", "--at", BAD_TICK], env, ok=False)
            letters = wait_until(
                lambda: dead_letter_bodies(mq, ["github_top.XQ"]), 60, "a dead letter"
            )
            evidence.add("dead letter bodies", "\n".join(letters))
            evidence.command(["dlq", "list"], env, ok=True)
            evidence.command(["dlq", "list", "--json"], env, ok=True)
            evidence.command(["status"], env, ok=True)
            evidence.command(["status", "--json"], env, ok=True)
            evidence.add("worker metrics", scrape(int(env["dramatiq_prom_port"])))
            with served_api(env, tmp_path / "serve.log") as base:
                evidence.api(base, api_paths(simulator.top(datetime_of(TICK))[0]["full_name"]))
            evidence.add("scheduler log", scheduler_log(env, tmp_path / "scheduler.log"))
        evidence.add("worker log", worker_log.read_text())
        evidence.add("serve log", (tmp_path / "serve.log").read_text())
        # The operator's commands that move RabbitMQ's messages (no worker consumes now):
        # the dead letter replayed, purged, and at the end the queues moved to quorum
        evidence.command(["dlq", "replay", "--all"], env, ok=True)
        evidence.command(["dlq", "purge", "--all"], env, ok=True)
        evidence.database(db_url)
        failure_paths(env, db_url, mq, tmp_path, evidence)
        quorum = {**env, "TASKPIPES_QUEUE_TYPE": "quorum"}
        evidence.command(["rabbit", "migrate-queues"], quorum, ok=True)
    evidence.assert_no_marker()


def scheduler_log(env: dict[str, str], log: Path) -> str:
    """`periodiq actors` with the marked passwords: it sends catch-up as it starts."""
    with scheduler(env, log):
        wait_until(lambda: "Scheduling Actor(catch_up)" in log.read_text(), 60, "periodiq")
    return log.read_text()


def failure_paths(
    env: dict[str, str], db_url: str, mq: str, tmp_path: Path, evidence: Evidence
) -> None:
    """Every command against a wrong password on each server, and against dead hosts. Each
    is a process of its own that fails alone, so they run side by side."""
    wrong_db = {**env, "DATABASE_URL": with_password(db_url, WRONG_PASSWORD)}
    wrong_mq = {**env, "BROKER_URL": with_password(mq, WRONG_PASSWORD)}
    no_db = {**env, "DATABASE_URL": f"postgresql+psycopg://taskpipes:{DB_PASSWORD}@127.0.0.1:1/x"}
    no_mq = {**env, "BROKER_URL": f"amqp://guest:{MQ_PASSWORD}@127.0.0.1:1/"}
    failing: list[tuple[list[str], dict[str, str]]] = []
    for broken in (wrong_db, wrong_mq, no_db, no_mq):
        failing += [
            (["run", "rollup", "--at", TICK, "--timeout", "30"], broken),
            (["backfill", "rollup", *ROLLUP_RANGE], broken),
            (["status"], broken),
        ]
    failing += [(["db", "upgrade"], broken) for broken in (wrong_db, no_db)]
    failing += [(["dlq", "list"], broken) for broken in (wrong_mq, no_mq)]
    paths: list[Callable[[], object]] = [
        *(partial(evidence.command, args, apart(e, tmp_path), ok=False) for args, e in failing),
        *(partial(broken_api, apart(e, tmp_path), tmp_path, evidence) for e in (wrong_db, no_db)),
        *(
            partial(broken_worker_log, apart(e, tmp_path), tmp_path, evidence)
            for e in (wrong_mq, no_mq)
        ),
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for done in [pool.submit(path) for path in paths]:
            done.result()
    # The failures were the ones meant: the servers refused the wrong passwords
    said = "".join(evidence.texts.values())
    assert "password authentication failed" in said
    assert "ACCESS_REFUSED" in said or "AuthenticationError" in said


OWN_PER_PROCESS = (
    "PROMETHEUS_MULTIPROC_DIR", "dramatiq_prom_db", "dramatiq_prom_port", "TASKPIPES_METRICS_PORT"
)  # fmt: skip


def apart(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """`env` with metrics ports and a metrics directory of its own, for a process that runs
    beside others."""
    own = service_env(tmp_path)
    return {**env, **{key: own[key] for key in OWN_PER_PROCESS}}


def broken_api(env: dict[str, str], tmp_path: Path, evidence: Evidence) -> None:
    """`taskpipes serve` on a broken database answers, and says nothing secret."""
    log = tmp_path / f"serve-{uuid.uuid4().hex[:6]}.log"
    with served_api(env, log) as base:
        evidence.api(base, ["/api/top", "/readyz", "/", "/metrics"])
    evidence.add("serve log, broken database", log.read_text())


def broken_worker_log(env: dict[str, str], tmp_path: Path, evidence: Evidence) -> None:
    """A worker that cannot reach or log in says so and tries again: what it logged."""
    log = tmp_path / f"workers-{uuid.uuid4().hex[:6]}.log"
    with workers(env, log):
        wait_until(lambda: "connection error" in log.read_text(), 60, "the worker's error")
    evidence.add("worker log, broken broker", log.read_text())
