"""Peak RSS of real worker processes after 1,000 pipeline runs and after 100k star events.

One `dramatiq` worker (2 processes x 8 threads, the application's actors) on this
machine's RabbitMQ in a private vhost and PostgreSQL in a private database, talking to the
bundled GitHub simulator (githubsim) on loopback, served from this process.

Phase 1: 1,000 github_top runs of ten-minute ticks, one after another (its overlap policy,
skip, runs one at a time): each fetches the top 100 from the simulator's search, keeps the
raw answer, normalizes, stores 100 snapshots and refreshes the ranking.
Phase 2: stargazers runs for single repositories (`--repo`, as `taskpipes stargazers` sends
them) until at least 100,000 star events are stored: GitHub serves 400 pages of 100 per
repository, so 3 repositories, 1,200 page messages, 120,000 events, through the pipeline's
own plan, waves of delayed page messages, fetches and stores, paced at a high rate.

After each phase: VmHWM (peak resident set) and VmRSS of every worker process. Goal: the
largest peak under 150 MB, and phase 2 not raising any worker's peak beyond noise (5% or
5 MB, whichever is larger), which would be a leak growing with the work.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from bench.overhead import BIN, base_env, libpq, spawn, stop  # noqa: E402
from bench.pg import scratch_database  # noqa: E402
from tests.services import rabbitmq_vhost  # noqa: E402

RUNS = 1000
# Memory is also read after the first runs: a leak per run shows between the two.
EARLY_RUNS = 200
THREADS = 8
STAR_EVENTS = 100_000
# Star events per second and GitHub requests per hour the stargazers runs are paced at:
# far above the defaults, so the phase takes seconds, not the default's hour.
STAR_RATE = 50_000
API_RATE = 10_000_000
GOAL_MB = 150.0
# Growth between the phases still counted as noise.
NOISE_FRACTION, NOISE_MB = 0.05, 5.0
TIMEOUT_S = 600.0
# Ticks of the backfill: ten-minute ticks ending well before now.
FIRST_TICK = datetime(2026, 1, 1, tzinfo=UTC)


def worker_memory(master: int) -> dict[int, tuple[float, float]]:
    """pid -> (VmHWM, VmRSS) in MB of each dramatiq worker process under `master`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        # Worker processes are the master's children with worker threads; the Prometheus
        # exporter, forked from the master after them, has none.
        workers = int(fields["Threads"]) >= THREADS
        if int(stat[1]) != master or b"dramatiq" not in cmdline or not workers:
            continue
        found[int(entry.name)] = tuple(
            int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "VmRSS")
        )
    return found  # type: ignore[return-value]


def wait_for(dsn: str, query: str, target: int, what: str, poll_s: float = 0.5) -> float:
    """Poll `query` (one count) until it reaches `target`; seconds taken."""
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            value = conn.execute(query).fetchone()[0]  # type: ignore[index]
            if value >= target:
                return time.monotonic() - started
            failed = conn.execute("SELECT count(*) FROM runs WHERE status = 'failed'").fetchone()
            if failed and failed[0]:
                errors = conn.execute("SELECT pipeline, error FROM runs WHERE error IS NOT NULL")
                raise SystemExit(f"{what}: runs failed: {errors.fetchall()[:3]}")
            if time.monotonic() - started > TIMEOUT_S:
                raise SystemExit(f"{what}: {value} of {target} after {TIMEOUT_S:.0f} s")
            time.sleep(poll_s)


def show(label: str, memory: dict[int, tuple[float, float]]) -> None:
    for pid, (peak, rss) in sorted(memory.items()):
        print(f"  {label}: worker {pid}: peak {peak:.1f} MB, now {rss:.1f} MB", flush=True)


def run_top(dsn: str, first: int, count: int) -> None:
    """github_top's ticks one after another: its overlap policy (skip) would skip a tick
    sent while another runs, so production never runs two at once either."""
    from pipelines.github_top import github_top
    from taskpipes.runtime.ticks import enqueue_tick

    query = "SELECT count(*) FROM runs WHERE pipeline = 'github_top' AND status = 'succeeded'"
    started = time.monotonic()
    for done in range(first, first + count):
        enqueue_tick(github_top, FIRST_TICK + timedelta(minutes=10 * done))
        wait_for(dsn, query, done + 1, "github_top", poll_s=0.01)
    print(f"{count} github_top runs in {time.monotonic() - started:.1f} s", flush=True)


def run_stargazers(dsn: str, repos: list[str]) -> int:
    from pipelines.stargazers import stargazers
    from taskpipes.runtime.ticks import enqueue_tick

    started = time.monotonic()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for i, repo in enumerate(repos):
        options = {"repo": repo, "rate": STAR_RATE, "api_rate": API_RATE}
        enqueue_tick(stargazers, now - timedelta(minutes=i), options)
    query = "SELECT count(*) FROM runs WHERE pipeline = 'stargazers' AND status = 'succeeded'"
    wait_for(dsn, query, len(repos), "stargazers")
    with psycopg.connect(dsn) as conn:
        events = conn.execute("SELECT count(*) FROM star_events").fetchone()[0]  # type: ignore[index]
    seconds = time.monotonic() - started
    print(f"{events} star events in {seconds:.1f} s ({events / seconds:.0f}/s)", flush=True)
    return int(events)


def main() -> int:
    from db import schema as migrate
    from githubsim import Simulator
    from taskpipes import testing

    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load: {os.getloadavg()}", flush=True)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="memory-") as tmp:
        logs = Path(tmp)
        url = stack.enter_context(scratch_database("memory"))
        broker_url = stack.enter_context(rabbitmq_vhost())
        sim = stack.enter_context(Simulator(search_limit=10**9, core_limit=10**9))
        urls = {"BROKER_URL": broker_url, "DATABASE_URL": url, "GITHUB_API_URL": sim.url}
        os.environ |= urls
        testing.reset()  # the settings are read again from the environment just set
        migrate.upgrade(url)
        env = base_env(logs, **urls)
        args = [
            str(BIN / "dramatiq"),
            "bench.memory_worker",
            "--processes",
            "2",
            "--threads",
            str(THREADS),
        ]
        worker = spawn(args, env, logs / "worker.log")
        stack.callback(stop, worker)
        import actors  # noqa: F401 (the senders' broker and actors)

        # 100k events: the fewest top repositories whose 400 served pages hold them.
        per_repo = 400 * 100
        repos = [item["full_name"] for item in sim.top(datetime.now(UTC))]
        repos = repos[: -(-STAR_EVENTS // per_repo)]
        try:
            run_top(libpq(url), 0, EARLY_RUNS)
            show(f"after {EARLY_RUNS} runs", worker_memory(worker.pid))
            run_top(libpq(url), EARLY_RUNS, RUNS - EARLY_RUNS)
            after_runs = worker_memory(worker.pid)
            show(f"after {RUNS} runs", after_runs)
            events = run_stargazers(libpq(url), repos)
            after_events = worker_memory(worker.pid)
            show(f"after {events} events", after_events)
        except BaseException:
            print((logs / "worker.log").read_text()[-5000:], file=sys.stderr)
            raise
    if len(after_runs) != 2 or after_runs.keys() != after_events.keys():
        raise SystemExit(f"worker processes changed: {after_runs} -> {after_events}")
    growth = max(after_events[pid][0] - after_runs[pid][0] for pid in after_runs)
    first = max(peak for peak, _ in after_runs.values())
    peak = max(peak for peak, _ in after_events.values())
    noise = max(NOISE_MB, NOISE_FRACTION * first)
    verdict = "within" if growth <= noise else "BEYOND"
    print(
        f"peak RSS per worker process: {first:.1f} MB after {RUNS} runs, {peak:.1f} MB after "
        f"{events} star events; largest growth {growth:.1f} MB ({verdict} noise, {noise:.1f} MB)"
    )
    print(f"result: memory_peak_rss_mb {peak:.1f} (goal < {GOAL_MB:.0f})")
    return 0 if growth <= noise else 1


if __name__ == "__main__":
    raise SystemExit(main())
