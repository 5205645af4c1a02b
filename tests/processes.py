"""Real worker and scheduler processes for the tests.

A process a test is done with is killed at once (SIGKILL to its group): a SIGTERM'd worker
takes a second or two to exit, and nothing it does meanwhile is looked at. A test about
what a stop does sends its own signal (or calls `stop`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import requests

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A port the kernel picks from its ephemeral range, free now: for a server started
    once. One that is stopped and started again takes `tests.ports.server_port()`, out of
    the range every outgoing connection draws its local port from."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    """Whether `url` answers 200 now. A server still starting is not an error: `taskpipes
    serve` binds its socket before it imports the application, so a request may connect
    and wait past its timeout (seconds on a loaded machine) before anything reads it."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False


def service_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The environment of a taskpipes process: ours plus an isolated metrics directory."""
    # A directory no other call made, even one from another thread at the same moment.
    metrics_dir = Path(tempfile.mkdtemp(prefix="metrics-", dir=tmp_path))
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL", "GITHUB_TOKEN")}
    env.update(
        {
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "dramatiq_prom_db": str(metrics_dir),
            "dramatiq_prom_host": "127.0.0.1",
            "dramatiq_prom_port": str(free_port()),
            "TASKPIPES_METRICS_HOST": "127.0.0.1",
            "TASKPIPES_METRICS_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(values)
    return env


@contextmanager
def process(
    args: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a command in its own process group; kill the group at the end."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGKILL the process's group, unless the process is gone already, and reap it."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):  # it ended meanwhile
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM the process's group, as a supervisor stops it; SIGKILL after `timeout`."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def worker_args(processes: int = 1, threads: int = 2) -> list[str]:
    """`dramatiq actors`, as production runs it."""
    return [
        str(VENV_BIN / "dramatiq"),
        "actors",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]


def workers(env: Mapping[str, str], log: Path, processes: int = 1, threads: int = 2):  # type: ignore[no-untyped-def]
    return process(worker_args(processes, threads), env, log)


def taskpipes(
    args: list[str], env: Mapping[str, str], timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "taskpipes"), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def scheduler(env: Mapping[str, str], log: Path):  # type: ignore[no-untyped-def]
    """`periodiq actors`, as production runs it."""
    return process([str(VENV_BIN / "periodiq"), "actors"], env, log)


class Supervisor:
    """Restart a command whenever it exits, as a process supervisor would.

    `exits` lists the exit codes seen so far; `pid` is the running process's (its group's).
    """

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, dict(env), log
        self.exits: list[int] = []
        self.starts = 0
        self._stopping = threading.Event()
        self._current: list[subprocess.Popen[bytes]] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @property
    def pid(self) -> int | None:
        current = self._current[:1]
        return current[0].pid if current and current[0].poll() is None else None

    def kill(self) -> int:
        """SIGKILL the running process's whole group (an OOM kill); returns its pid."""
        pid = self.pid
        assert pid is not None, f"{self.args[0]} is not running"
        os.killpg(pid, signal.SIGKILL)
        return pid

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self.log.open("ab") as out:
                proc = subprocess.Popen(
                    self.args,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self._current[:] = [proc]
            self.starts += 1
            code = proc.wait()
            if not self._stopping.is_set():
                self.exits.append(code)

    def __enter__(self) -> Supervisor:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        for proc in self._current:
            kill_group(proc)
        self._thread.join(30)


@contextmanager
def supervised(args: list[str], env: Mapping[str, str], log: Path) -> Iterator[list[int]]:
    """Restart a command whenever it exits; yields the list of exit codes seen so far."""
    with Supervisor(args, env, log) as supervisor:
        yield supervisor.exits


def scrape(port: int) -> str:
    """The text a Prometheus scrape of 127.0.0.1:port/metrics would read."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total
