"""`taskpipes run` prints a summary; `-v` adds the workers' logs (docs/how-to/operate.md,
"Run a tick by hand")."""

from __future__ import annotations

from pathlib import Path

from githubsim import Simulator
from tests.clirun import run_cli
from tests.processes import service_env, taskpipes

# What an in-process worker logs when a fetch fails once and is retried.
WORKER_LINES = (
    "ERROR dramatiq.worker.WorkerThread: Failed to process message github_top_fetch(",
    "INFO dramatiq.middleware.retries.Retries: Retrying message",
    "INFO taskpipes: github_top run",
)


def run_with_a_failed_fetch(env: dict[str, str], simulator: Simulator, *args: str) -> str:
    simulator.add_fault("search", "server_error")
    result = taskpipes([*args, "run", "github_top", "--at", "2026-08-21T12:00:00Z"], env)
    assert result.returncode == 0, result.stderr
    assert "github_top tick 2026-08-21T12:00:00+00:00: succeeded" in result.stdout
    return result.stderr


def test_verbose_shows_the_workers_logs_and_the_default_does_not(
    tmp_path: Path, simulator: Simulator
) -> None:
    quiet_env = service_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'quiet.db'}",
                            GITHUB_API_URL=simulator.url, TASKPIPES_RETRY_MIN_BACKOFF_MS="100")  # fmt: skip
    loud_env = {**quiet_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'loud.db'}"}
    for env in (quiet_env, loud_env):
        assert run_cli(["db", "upgrade"], env, tmp_path).returncode == 0

    quiet = run_with_a_failed_fetch(quiet_env, simulator)
    loud = run_with_a_failed_fetch(loud_env, simulator, "-v")

    assert all(line in loud for line in WORKER_LINES), loud
    assert not any(line in quiet for line in WORKER_LINES), quiet
    assert "Traceback" not in quiet
