"""Bad arguments and bad configuration, for every command.

Each case is one line on stderr naming the problem, exit 2 for a usage or configuration
error, exit 1 for a runtime failure (a database or broker that cannot be reached), and no
traceback (that is what -v is for).

Most cases run `taskpipes`'s main() in this process (tests.clirun): a process would spend
a second importing to say one line. The cases in REAL_PROCESSES, -v and the taken port run
the real console script.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.clirun import run_cli

TASKPIPES = str(Path(sys.executable).parent / "taskpipes")
USAGE, FAILED = 2, 1
RANGE = ["--from", "2026-08-21T00:00Z", "--to", "2026-08-21T01:00Z"]
BACKWARDS = ["--from", "2026-08-21T01:00Z", "--to", "2026-08-21T00:00Z"]
# Nothing listens there: connection refused at once.
NO_BROKER = "amqp://guest:pwMARKER@127.0.0.1:1/"
NO_POSTGRES = "postgresql+psycopg://taskpipes:pwMARKER@127.0.0.1:1/taskpipes"
# In every password above and below: it never shows in what a command says.
PASSWORD_MARK = "pwMARKER"

# (case id, arguments, environment, exit code, what stderr must name)
CASES = [
    # bad arguments
    ("run-bad-at", ["run", "github_top", "--at", "noon"], {}, USAGE, "invalid time 'noon'"),
    ("run-unknown", ["run", "nosuch"], {}, USAGE, "unknown pipeline 'nosuch'"),
    ("run-negative-rate", ["run", "stargazers", "--rate", "-5"], {}, USAGE, "--rate"),
    ("run-zero-api-rate", ["run", "stargazers", "--api-rate", "0"], {}, USAGE, "--api-rate"),
    ("run-rate-elsewhere", ["run", "rollup", "--rate", "5"], {}, USAGE, "only apply to stargazers"),
    ("run-bad-timeout", ["run", "rollup", "--timeout", "-1"], {}, USAGE, "--timeout"),
    ("backfill-unknown", ["backfill", "nosuch", *RANGE], {}, USAGE, "unknown pipeline 'nosuch'"),
    ("backfill-backwards", ["backfill", "rollup", *BACKWARDS], {}, USAGE, "--to is before --from"),
    ("backfill-bad-from", ["backfill", "rollup", "--from", "x", "--to", "y"], {}, USAGE, "--from"),
    ("backfill-no-past", ["backfill", "github_top", *RANGE], {}, USAGE, "github_top"),
    ("db-unknown-action", ["db", "downgrade"], {}, USAGE, "'downgrade'"),
    ("serve-bad-port", ["serve", "--port", "70000"], {}, USAGE, "70000"),
    ("serve-metrics-host", ["serve", "--metrics-host", "127.0.0.1"], {}, USAGE, "--metrics-port"),
    ("sim-bad-port", ["github-sim", "--port", "-1"], {}, USAGE, "-1"),
    ("dlq-no-broker", ["dlq", "list"], {}, USAGE, "BROKER_URL is not set"),
    ("dlq-no-target", ["dlq", "purge"], {"BROKER_URL": NO_BROKER}, USAGE, "--id"),
    ("rabbit-no-broker", ["rabbit", "migrate-queues"], {}, USAGE, "BROKER_URL is not set"),
    ("rabbit-no-action", ["rabbit"], {}, USAGE, "migrate-queues"),
    ("no-command", [], {}, USAGE, "command"),
    # bad configuration
    ("db-url-scheme", ["db", "upgrade"], {"DATABASE_URL": "mysql://x/y"}, USAGE, "DATABASE_URL"),
    ("db-url-memory", ["status"], {"DATABASE_URL": "sqlite://"}, USAGE, "DATABASE_URL"),
    ("broker-url-scheme", ["status"], {"BROKER_URL": "redis://x"}, USAGE, "BROKER_URL"),
    (
        "db-url-port",
        ["db", "upgrade"],
        {"DATABASE_URL": "postgresql+psycopg://u:pwMARKER@db:port/x"},
        USAGE,
        "DATABASE_URL is malformed: a port",
    ),
    (
        "db-url-host",
        ["status"],
        {"DATABASE_URL": "postgresql+psycopg://u:pwMARKER@[db/x"},
        USAGE,
        "DATABASE_URL is malformed: an unclosed '['",
    ),
    (
        "broker-url-port",
        ["run", "rollup"],
        {"BROKER_URL": "amqp://u:pwMARKER@rabbit:99999/"},
        USAGE,
        "BROKER_URL is malformed: a port",
    ),
    (
        "cron-override",
        ["run", "rollup"],
        {"TASKPIPES_SCHEDULE_ROLLUP": "every minute"},
        USAGE,
        "TASKPIPES_SCHEDULE_ROLLUP",
    ),
    (
        "cron-six-fields",
        ["status"],
        {"TASKPIPES_SCHEDULE_GITHUB_TOP": "0 * * * * *"},
        USAGE,
        "TASKPIPES_SCHEDULE_GITHUB_TOP",
    ),
    (
        "cron-unknown-pipeline",
        ["run", "rollup"],
        {"TASKPIPES_SCHEDULE_GITHUBTOP": "* * * * *"},
        USAGE,
        "TASKPIPES_SCHEDULE_GITHUBTOP names no pipeline",
    ),
    ("bad-number", ["status"], {"TASKPIPES_MAX_CRASHES": "many"}, USAGE, "TASKPIPES_MAX_CRASHES"),
    (
        "prom-db-alone",
        ["status"],
        {"dramatiq_prom_db": "/tmp/taskpipes-prom"},
        USAGE,
        "PROMETHEUS_MULTIPROC_DIR is unset",
    ),
    # runtime: what is configured cannot be reached
    ("db-unreachable", ["status"], {"DATABASE_URL": NO_POSTGRES}, FAILED, "127.0.0.1"),
    (
        "db-upgrade-unreachable",
        ["db", "upgrade"],
        {"DATABASE_URL": NO_POSTGRES},
        FAILED,
        "database error",
    ),
    (
        "sqlite-no-directory",
        ["db", "upgrade"],
        {"DATABASE_URL": "sqlite:////nonexistent/dir/taskpipes.db"},
        FAILED,
        "/nonexistent/dir/taskpipes.db",
    ),
    ("run-broker-down", ["run", "rollup"], {"BROKER_URL": NO_BROKER}, FAILED, "127.0.0.1:1"),
    (
        "backfill-broker-down",
        ["backfill", "rollup", *RANGE],
        {"BROKER_URL": NO_BROKER},
        FAILED,
        "127.0.0.1:1",
    ),
    ("dlq-broker-down", ["dlq", "list"], {"BROKER_URL": NO_BROKER}, FAILED, "127.0.0.1:1"),
    (
        "rabbit-broker-down",
        ["rabbit", "migrate-queues"],
        {"BROKER_URL": NO_BROKER},
        FAILED,
        "127.0.0.1:1",
    ),
    (
        "queue-type",
        ["status"],
        {"TASKPIPES_QUEUE_TYPE": "mirrored"},
        USAGE,
        "TASKPIPES_QUEUE_TYPE must be one of classic, quorum",
    ),
    ("status-broker-down", ["status"], {"BROKER_URL": NO_BROKER}, FAILED, "RabbitMQ unreachable"),
]


# Cases run as real processes: a command that builds its broker from BROKER_URL as it
# imports (run, backfill: this process's broker is the in-process one), and one usage and
# one configuration error, the console script's own exit code 2 both ways.
REAL_PROCESSES = {"run-broker-down", "backfill-broker-down", "run-bad-at", "db-url-scheme"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with an up-to-date SQLite database, the default DATABASE_URL's file."""
    directory = tmp_path_factory.mktemp("cli")
    assert run_cli(["db", "upgrade"], clean_env({}), directory).returncode == 0
    return directory


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("TASKPIPES_", "PROMETHEUS"))}
    for key in ("DATABASE_URL", "BROKER_URL", "GITHUB_TOKEN", "dramatiq_prom_db"):
        keep.pop(key, None)
    return {**keep, **extra}


def taskpipes(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TASKPIPES, *args],
        env=clean_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, named: str) -> None:
    lines = result.stderr.splitlines()
    assert (result.returncode, len(lines)) == (code, 1), result.stderr[-2000:]
    assert named in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert PASSWORD_MARK not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def outcomes(workdir: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case's outcome: the real processes in the background while the in-process
    cases run one by one (each changes this process's environment)."""
    with ThreadPoolExecutor(max_workers=len(REAL_PROCESSES)) as pool:
        running = {
            case: pool.submit(taskpipes, args, env, workdir)
            for case, args, env, *_ in CASES
            if case in REAL_PROCESSES
        }
        done = {
            case: run_cli(args, clean_env(env), workdir)
            for case, args, env, *_ in CASES
            if case not in REAL_PROCESSES
        }
    return done | {case: future.result() for case, future in running.items()}


@pytest.mark.parametrize(
    ("case", "code", "named"),
    [(case[0], *case[3:]) for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_bad_command_is_one_line_naming_the_problem(
    outcomes: dict[str, subprocess.CompletedProcess[str]], case: str, code: int, named: str
) -> None:
    assert_one_line(outcomes[case], code, named)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_serve_on_a_taken_port_is_one_line(workdir: Path, taken_port: int) -> None:
    # The API's port in a real process; the metrics port in this one
    result = taskpipes(["serve", "--port", str(taken_port)], {}, workdir)
    assert_one_line(result, FAILED, f"127.0.0.1:{taken_port}")
    apart = ["serve", "--port", "0", "--metrics-port", str(taken_port)]
    assert_one_line(run_cli(apart, clean_env({}), workdir), FAILED, f"127.0.0.1:{taken_port}")


def test_verbose_keeps_the_details(
    workdir: Path, outcomes: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    # -v is how an operator asks for more than the line: the broker's own log comes back
    quiet = outcomes["run-broker-down"]  # `run rollup` with NO_BROKER, a real process
    loud = taskpipes(["-v", "run", "rollup"], {"BROKER_URL": NO_BROKER}, workdir)
    assert loud.returncode == quiet.returncode == FAILED
    assert len(loud.stderr.splitlines()) > len(quiet.stderr.splitlines())
