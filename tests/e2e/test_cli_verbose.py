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
    # Two attempts fail the same way, the third succeeds
    simulator.add_fault("search", "server_error", times=2)
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
    # Each failed attempt is one line, printed by default: stage, run, attempt, cause (with
    # the method and host asked), and when the next attempt comes
    attempts = [line for line in quiet.splitlines() if "github_top stage fetch, run" in line]
    assert len(attempts) == 2, quiet
    cause = "TransientError: GitHub search: HTTP 500 (GET 127.0.0.1:"
    assert f"attempt 1 of 6 failed: {cause}" in attempts[0]
    assert attempts[0].endswith("; next attempt in 0.05-0.1 s")
    assert "attempt 2 of 6 failed" in attempts[1]
    # and -v shows the one error's traceback once, not once per attempt
    assert loud.count("Traceback") == 1, loud
