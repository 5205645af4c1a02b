"""The `taskpipes` command run inside the test process, for tests of what it says and the
code it exits with: the same `main()` the console script calls, with the environment, the
working directory, stdout and stderr it would have had as a process, without a process's
second of imports.

What depends on the process itself stays in real processes (tests.processes.taskpipes):
the broker a command builds at import (`run`, `backfill` with BROKER_URL), the console
script's own exit code, and the output an operator really sees.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from taskpipes import testing
from taskpipes.cli.main import main

# Loggers whose level `main` sets for the rest of the process (see taskpipes.cli.main.main).
LOGGERS_MAIN_SETS = ("", "pika", "dramatiq")


def run_cli(args: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`taskpipes ARGS` with exactly `env` as its environment, in `cwd`: its exit code and
    what it printed, as `subprocess.run(..., capture_output=True, text=True)` returns them."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with as_a_process(env, cwd), redirect_stdout(stdout), redirect_stderr(stderr):
        code = exit_code(args)
    return subprocess.CompletedProcess(
        ["taskpipes", *args], code, stdout.getvalue(), stderr.getvalue()
    )


def configuration_error(tmp_path: Path, **variables: str) -> str:
    """The one line `taskpipes status` stops with, exit 2, under the given settings (on a
    SQLite file of `tmp_path`)."""
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    result = run_cli(["status"], env | variables, tmp_path)
    assert result.returncode == 2, result.stderr
    return result.stderr.strip()


def exit_code(args: list[str]) -> int:
    """`main`'s return value, or the code of the SystemExit argparse raises (its message is
    on stderr already). Any other exception escapes: it would be a traceback in a process."""
    try:
        return main(args)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1


@contextmanager
def as_a_process(env: Mapping[str, str], cwd: Path) -> Iterator[None]:
    """The environment and directory a new process would have, settings and engines read
    afresh from them, and a root logger with no handler yet: `main`'s basicConfig then logs
    to this stderr, as it would in a process. All restored afterwards."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in LOGGERS_MAIN_SETS}
    root.handlers.clear()
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name in list(os.environ):
                patch.delenv(name)
            for name, value in env.items():
                patch.setenv(name, value)
            patch.chdir(cwd)
            testing.reset()
            try:
                yield
            finally:
                testing.reset()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
