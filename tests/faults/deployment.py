"""A deployment of real processes on loopback, driven through the public interface only:
the `taskpipes`, `dramatiq actors` and `periodiq actors` commands, their environment, the
database's tables and the HTTP API."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from githubsim import Simulator
from tests.processes import (
    VENV_BIN,
    Supervisor,
    free_port,
    process,
    service_env,
    worker_args,
)
from tests.queues import wait_until

# Seconds a scenario waits for any one thing it expects (generous: 2 shared cores).
PATIENCE_S = 240


class Deployment:
    def __init__(
        self,
        tmp_path: Path,
        database_url: str,
        broker_url: str,
        simulator: Simulator,
        extra_env: Mapping[str, str],
    ) -> None:
        self.database_url = database_url
        self.simulator = simulator
        self.logs = tmp_path / "logs"
        self.logs.mkdir(exist_ok=True)
        values = {
            "DATABASE_URL": database_url,
            "BROKER_URL": broker_url,
            "GITHUB_API_URL": simulator.url,
            # Quick first retries, so a scenario spends its time on faults, not on waiting.
            "TASKPIPES_RETRY_MIN_BACKOFF_MS": "500",
            **extra_env,
        }
        self.env = service_env(tmp_path, **values)
        self.engine = create_engine(database_url, pool_pre_ping=True)
        result = self.taskpipes("db", "upgrade")
        assert result.returncode == 0, result.stdout + result.stderr

    def close(self) -> None:
        self.engine.dispose()

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def workers(self, name: str = "workers", processes: int = 1, threads: int = 2) -> Supervisor:
        """`dramatiq actors` under a restart loop, as a supervisor runs it."""
        return Supervisor(worker_args(processes, threads), self.env, self.log(name))

    def scheduler(self, name: str = "scheduler") -> Supervisor:
        return Supervisor([str(VENV_BIN / "periodiq"), "actors"], self.env, self.log(name))

    def taskpipes(
        self, *args: str, timeout: float = PATIENCE_S
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "taskpipes"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`taskpipes ARGS` in the background (e.g. a run that waits for its outcome)."""
        return subprocess.Popen(
            [str(VENV_BIN / "taskpipes"), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @contextmanager
    def serve(self) -> Iterator[str]:
        """`taskpipes serve` on a free port; yields its base URL once it answers."""
        port = free_port()
        args = [str(VENV_BIN / "taskpipes"), "serve", "--port", str(port)]
        with process(args, self.env, self.log("serve")):
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _answers(f"{url}/healthz"), PATIENCE_S, "taskpipes serve")
            yield url

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.scalar(text(sql), params)

    def run_id(self, pipeline: str, tick: datetime) -> int | None:
        return self.scalar(
            "SELECT id FROM runs WHERE pipeline = :p AND tick = :t",
            p=pipeline,
            t=tick.replace(tzinfo=None),
        )

    def stage_status(self, run_id: int, stage: str) -> str | None:
        return self.scalar(
            "SELECT status FROM stage_runs WHERE run_id = :r AND stage = :s", r=run_id, s=stage
        )

    def wait_stage(self, run_id: int, stage: str, status: str = "succeeded") -> None:
        wait_until(
            lambda: self.stage_status(run_id, stage) == status,
            PATIENCE_S,
            f"stage {stage} of run {run_id} to be {status}",
        )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def get_json(url: str, timeout: float = 30) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def finished(proc: subprocess.Popen[str], timeout: float = PATIENCE_S) -> str:
    """The output of a background command, which must succeed."""
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output
    return output
