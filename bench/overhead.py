"""What taskpipes' guarantees cost against raw Dramatiq and Celery, side by side in one run.

Systems, each in its own RabbitMQ vhost and PostgreSQL database, all on this machine's
services: raw Dramatiq (4 actors, each sends the next, the last inserts a row;
bench/overhead_raw.py), a taskpipes pipeline of 4 stages doing no work (bench/overhead_kit.py)
and Celery, threads pool 2x8 and prefork 2 (acks_late, publisher confirms;
bench/overhead_celery.py, in its own virtualenv bench/.celery-venv made on demand).
"Finished" is the same for every system: its last write committed, which a trigger turns
into a NOTIFY the bench listens for (PostgreSQL delivers it at commit).

Measured: latency (50 sequential runs, systems alternating: p50, p99), throughput (300 runs
enqueued at once, median of 3), worker CPU per run (/proc of the worker processes),
transactions per run (pg_stat_database.xact_commit) and the bulk enqueue rate of a
1,000-tick backfill against raw Dramatiq's per-message confirms.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from bench.pg import ADMIN_DSN, scratch_database  # noqa: E402
from tests.services import rabbitmq_vhost  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CELERY_VENV = ROOT / "bench" / ".celery-venv"
CELERY_REQUIREMENTS = ("celery==5.*", "psycopg[binary]")
LATENCY_RUNS = 50
BURST = 300
BURST_REPEATS = 3
BACKFILL_TICKS = 1000
# Idle backends report their commits to pg_stat_database up to 10 s late (PostgreSQL 15).
STATS_DELAY_S = 11.5
TIMEOUT_S = 120.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Keys of the kit's runs are their tick in minutes since the epoch (ticks are minutes).
KIT_EPOCH_MINUTE = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp()) // 60

FINISHED_TABLE = """
CREATE TABLE finished (run bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
CREATE FUNCTION notify_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('finished', NEW.run::text); RETURN NEW; END $$;
CREATE TRIGGER finished_notify AFTER INSERT ON finished
FOR EACH ROW EXECUTE FUNCTION notify_finished();
"""
RUN_SUCCEEDED = """
CREATE FUNCTION notify_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('finished', (extract(epoch FROM NEW.tick)::bigint / 60 - {epoch})::text);
  RETURN NEW;
END $$;
CREATE TRIGGER finished_notify AFTER UPDATE OF status ON runs
FOR EACH ROW WHEN (NEW.status = 'succeeded' AND OLD.status <> 'succeeded')
EXECUTE FUNCTION notify_finished();
"""


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def celery_python() -> Path:
    """bench/.celery-venv's Python, made with pip on first use."""
    python = CELERY_VENV / "bin" / "python"
    if not (CELERY_VENV / ".installed").exists():
        print(f"creating {CELERY_VENV} (Celery is a dependency of this bench only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(CELERY_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", *CELERY_REQUIREMENTS]
        subprocess.run(pip, check=True)
        (CELERY_VENV / ".installed").touch()
    return python


class Finishes:
    """Commit times of finished runs, from the database's NOTIFYs."""

    def __init__(self, dsn: str) -> None:
        self.at: dict[int, float] = {}
        self._changed = threading.Condition()
        self._conn = psycopg.connect(dsn, autocommit=True)
        self._conn.execute("LISTEN finished")
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        try:
            for note in self._conn.notifies():
                now = time.perf_counter()
                with self._changed:
                    self.at[int(note.payload)] = now
                    self._changed.notify_all()
        except psycopg.OperationalError:
            return  # the database was dropped at the end

    def close(self) -> None:
        self._conn.cancel_safe()

    def wait(self, keys: list[int], what: str) -> float:
        """The last of `keys`' commit times."""
        deadline = time.monotonic() + TIMEOUT_S
        with self._changed:
            while not all(k in self.at for k in keys):
                if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    missing = sum(k not in self.at for k in keys)
                    raise SystemExit(f"{what}: {missing} of {len(keys)} runs never finished")
            return max(self.at[k] for k in keys)


class System:
    """One system under test: its worker processes, how to start runs, where they finish."""

    def __init__(self, name: str, dsn: str, database: str) -> None:
        self.name, self.dsn, self.database = name, dsn, database
        self.workers: list[subprocess.Popen[bytes]] = []
        self.send: Callable[[list[int]], None] = lambda keys: None
        self.finishes = Finishes(dsn)
        self._next = 1

    def keys(self, count: int) -> list[int]:
        first, self._next = self._next, self._next + count
        return list(range(first, first + count))

    def run(self, keys: list[int]) -> float:
        """Seconds from sending the runs to the last one's commit."""
        started = time.perf_counter()
        self.send(keys)
        return self.finishes.wait(keys, self.name) - started

    def processes(self) -> Iterator[tuple[Path, list[str]]]:
        """/proc entries and stat fields of every process in the workers' sessions."""
        sessions = {p.pid for p in self.workers}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) in sessions:  # field 6 of stat: the session id
                yield entry, fields

    def cpu_seconds(self) -> float:
        """User + system CPU of the worker processes, children included."""
        return sum(int(f[11]) + int(f[12]) for _, f in self.processes()) / CLOCK_TICKS

    def peak_rss_mb(self) -> float:
        """The largest peak resident set (VmHWM) of any one worker process."""
        peaks = [0]
        for entry, _ in self.processes():
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]))
        return max(peaks) / 1024


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(logs: Path, **values: str) -> dict[str, str]:
    metrics = Path(tempfile.mkdtemp(prefix="metrics-", dir=logs))
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL", "DATABASE_URL")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "dramatiq_prom_db": str(metrics),
        "dramatiq_prom_host": "127.0.0.1",
        "dramatiq_prom_port": str(free_port()),
        "TASKPIPES_METRICS_HOST": "127.0.0.1",
        "TASKPIPES_METRICS_PORT": str(free_port()),
    }
    return env | values


def dramatiq_workers(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    args = [str(BIN / "dramatiq"), module, "--processes", "2", "--threads", "8"]
    return spawn(args, env, log)


def raw_system(stack: ExitStack, logs: Path) -> System:
    url = stack.enter_context(scratch_database("overhead_raw"))
    broker_url = stack.enter_context(rabbitmq_vhost("overhead_raw"))
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(FINISHED_TABLE)
    env = base_env(logs, OVERHEAD_BROKER_URL=broker_url, OVERHEAD_DSN=libpq(url))
    system = System("raw Dramatiq", libpq(url), url.rsplit("/", 1)[1])
    system.workers.append(dramatiq_workers("bench.overhead_raw", env, logs / "raw.log"))
    os.environ |= {"OVERHEAD_BROKER_URL": broker_url, "OVERHEAD_DSN": libpq(url)}
    from bench import overhead_raw

    system.send = lambda keys: [overhead_raw.raw_1.send(k) for k in keys] and None
    system.raw = overhead_raw  # type: ignore[attr-defined]
    return system


def kit_system(stack: ExitStack, logs: Path) -> System:
    from db import migrate

    url = stack.enter_context(scratch_database("overhead_kit"))
    broker_url = stack.enter_context(rabbitmq_vhost("overhead_kit"))
    migrate.upgrade(url)
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(RUN_SUCCEEDED.replace("{epoch}", str(KIT_EPOCH_MINUTE)))
    env = base_env(logs, BROKER_URL=broker_url, DATABASE_URL=url)
    system = System("taskpipes", libpq(url), url.rsplit("/", 1)[1])
    system.workers.append(dramatiq_workers("bench.overhead_kit", env, logs / "kit.log"))
    os.environ |= {"BROKER_URL": broker_url, "DATABASE_URL": url}
    from bench import overhead_kit
    from taskpipes.ticks import enqueue_ticks

    def send(keys: list[int]) -> None:
        # Many at once the way backfill and catch-up send them: batched, still confirmed.
        enqueue_ticks(overhead_kit.noop, [kit_tick(key) for key in keys])

    system.send = send
    return system


def kit_tick(key: int) -> datetime:
    return datetime.fromtimestamp((KIT_EPOCH_MINUTE + key) * 60, UTC)


class CelerySender:
    """The Celery side's sender: a process of the Celery venv fed keys on stdin."""

    def __init__(self, python: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [str(python), "-m", "bench.overhead_celery"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def __call__(self, keys: list[int]) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join(map(str, keys)) + "\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "sent":
            raise SystemExit("the Celery sender died")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


def celery_system(stack: ExitStack, logs: Path, pool: str) -> System:
    python = celery_python()
    url = stack.enter_context(scratch_database(f"overhead_celery_{pool}"))
    broker_url = stack.enter_context(rabbitmq_vhost(f"overhead_celery_{pool}"))
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(FINISHED_TABLE)
    env = base_env(logs, OVERHEAD_BROKER_URL=broker_url, OVERHEAD_DSN=libpq(url))
    label = "threads pool 2x8" if pool == "threads" else "prefork 2"
    system = System(f"Celery, {label}", libpq(url), url.rsplit("/", 1)[1])
    celery = [str(python), "-m", "celery", "-A", "bench.overhead_celery", "worker", "-l", "WARNING"]
    if pool == "threads":
        for n in (1, 2):
            args = [*celery, "--pool", "threads", "-c", "8", "-n", f"threads{n}@%h"]
            system.workers.append(spawn(args, env, logs / f"celery-threads{n}.log"))
    else:
        args = [*celery, "--pool", "prefork", "-c", "2", "-n", "prefork@%h"]
        system.workers.append(spawn(args, env, logs / "celery-prefork.log"))
    sender = CelerySender(python, env)
    stack.callback(sender.close)
    system.send = sender
    return system


def commits(systems: list[System]) -> dict[str, int]:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        rows = admin.execute("SELECT datname, xact_commit FROM pg_stat_database").fetchall()
    counts = dict(rows)
    return {s.name: counts[s.database] for s in systems}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(systems: list[System]) -> dict[str, dict[str, float]]:
    for system in systems:  # warm up: connections, queues declared, code paths loaded
        system.run(system.keys(20))
    figures: dict[str, dict[str, float]] = {s.name: {} for s in systems}
    time.sleep(STATS_DELAY_S)
    before = commits(systems)
    latencies: dict[str, list[float]] = {s.name: [] for s in systems}
    for i in range(LATENCY_RUNS):
        turn = systems[i % len(systems) :] + systems[: i % len(systems)]
        for system in turn:
            latencies[system.name].append(system.run(system.keys(1)))
    time.sleep(STATS_DELAY_S)
    after = commits(systems)
    for system in systems:
        values = latencies[system.name]
        figures[system.name] |= {
            "p50_ms": 1000 * statistics.median(values),
            "p99_ms": 1000 * percentile(values, 0.99),
            "xact_per_run": (after[system.name] - before[system.name]) / LATENCY_RUNS,
        }
    rates: dict[str, list[float]] = {s.name: [] for s in systems}
    cpu: dict[str, list[float]] = {s.name: [] for s in systems}
    for _ in range(BURST_REPEATS):
        for system in systems:
            used = system.cpu_seconds()
            rates[system.name].append(BURST / system.run(system.keys(BURST)))
            cpu[system.name].append((system.cpu_seconds() - used) / BURST)
    for system in systems:
        figures[system.name] |= {
            "runs_per_s": statistics.median(rates[system.name]),
            "cpu_ms_per_run": 1000 * statistics.median(cpu[system.name]),
            "peak_rss_mb": system.peak_rss_mb(),
        }
    return figures


def confirm_rates(raw: System) -> tuple[float, float]:
    """Messages/s: raw Dramatiq's per-message confirmed sends, and a 1,000-tick backfill's
    enqueue through the kit (its runs recorded, its messages confirmed)."""
    from bench import overhead_kit
    from taskpipes import ticks

    probe = raw.raw.broker  # type: ignore[attr-defined]
    import dramatiq

    sink = dramatiq.actor(broker=probe, queue_name="confirm_probe", actor_name="sink")(print)
    probe.declare_queue("confirm_probe")
    started = time.perf_counter()
    for i in range(BACKFILL_TICKS):
        sink.send(i)
    per_message = BACKFILL_TICKS / (time.perf_counter() - started)
    started = time.perf_counter()
    ticks.enqueue_ticks(
        overhead_kit.noop, [kit_tick(10_000_000 + i) for i in range(BACKFILL_TICKS)]
    )
    bulk = BACKFILL_TICKS / (time.perf_counter() - started)
    return per_message, bulk


def table(figures: dict[str, dict[str, float]]) -> str:
    lines = [
        "| per 4-message run | p50 latency | p99 latency | runs/s, 300 at once | "
        "CPU per run | transactions per run | peak RSS of a worker process |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in figures.items():
        lines.append(
            f"| {name} | {f['p50_ms']:.1f} ms | {f['p99_ms']:.1f} ms | {f['runs_per_s']:.0f} | "
            f"{f['cpu_ms_per_run']:.1f} ms | {f['xact_per_run']:.1f} | {f['peak_rss_mb']:.0f} MB |"
        )
    return "\n".join(lines)


# What a taskpipes worker's time goes to, by the kit function on the stack (inclusive).
PROFILE_PARTS = {
    "CrashGuard": "middleware.py",
    "claim (runs.claim)": "claim (taskpipes/runs.py",
    "stage work + bookkeeping (_perform)": "_perform",
    "hand-off (send_stage)": "send_stage",
    "metrics": "metrics.py",
    "Prometheus middleware": "prometheus.py",
}
# Leaf frames of a thread that waits (py-spy samples them too).
IDLE_LEAVES = ("select (", "poll (", "wait (", "sleep", "TimeoutManager.run", "worker_process (")
PROFILE_LIBRARIES = ("sqlalchemy", "psycopg", "pika", "prometheus_client")


def profile(stack: ExitStack, logs: Path) -> None:
    """py-spy over the taskpipes workers while they work 3 bursts: where the CPU goes."""
    kit = kit_system(stack, logs)
    stack.callback(lambda: [stop(p) for p in kit.workers])
    kit.run(kit.keys(20))
    out = logs / "profile.txt"
    spy = subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--subprocesses",
            "--idle",
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(out),
            "-p",
            str(kit.workers[0].pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(2)
    for _ in range(BURST_REPEATS):
        kit.run(kit.keys(BURST))
    spy.send_signal(2)
    spy.wait(60)
    text = out.read_text()
    Path(os.environ.get("PROFILE_OUT", "/dev/null")).write_text(text)
    print(summarize(text))


def summarize(collapsed: str) -> str:
    """Busy samples per run, and the share of them under each kit part and library."""
    parts = dict.fromkeys(PROFILE_PARTS, 0)
    libraries = dict.fromkeys(PROFILE_LIBRARIES, 0)
    busy = 0
    for line in collapsed.splitlines():
        frames, _, count = line.rpartition(" ")
        leaf = frames.split(";")[-1]
        if not frames or any(idle in leaf for idle in IDLE_LEAVES):
            continue  # a thread waiting, not working
        n = int(count)
        busy += n
        for name, marker in PROFILE_PARTS.items():
            if marker in frames:
                parts[name] += n
        for library in PROFILE_LIBRARIES:
            if f"({library}/" in frames or f"/{library}/" in frames:
                libraries[library] += n
    runs = BURST_REPEATS * BURST  # py-spy starts after the warm-up
    lines = [f"busy samples at 200 Hz: {busy} ({busy / runs * 5:.1f} ms per run)"]
    lines += [f"  {name}: {100 * n / max(busy, 1):.0f}%" for name, n in parts.items()]
    lines.append("by library (inclusive):")
    lines += [f"  {name}: {100 * n / max(busy, 1):.0f}%" for name, n in libraries.items()]
    return "\n".join(lines)


def main() -> int:
    if "--profile" in sys.argv:
        with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
            profile(stack, Path(tmp))
        return 0
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load: {os.getloadavg()}", flush=True)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        logs = Path(tmp)
        systems = [
            raw_system(stack, logs),
            kit_system(stack, logs),
            celery_system(stack, logs, "threads"),
            celery_system(stack, logs, "prefork"),
        ]
        for system in systems:
            stack.callback(lambda s=system: [stop(p) for p in s.workers])
        try:
            figures = measure(systems)
            for system in systems:  # the backfill's runs are not worked while it enqueues
                for proc in system.workers:
                    stop(proc)
            per_message, bulk = confirm_rates(systems[0])
        except BaseException:
            for log in sorted(logs.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text()[-3000:]}", file=sys.stderr)
            raise
    print(table(figures))
    raw, kit = figures[systems[0].name], figures[systems[1].name]
    fastest_celery = max(figures[s.name]["runs_per_s"] for s in systems[2:])
    print(f"load after: {os.getloadavg()}")
    print(
        f"taskpipes vs raw: p50 {kit['p50_ms'] / raw['p50_ms']:.2f}x (goal <= 2), "
        f"throughput vs Celery's faster pool {kit['runs_per_s'] / fastest_celery:.2f} "
        "(goal > 1)"
    )
    print(
        f"enqueue, {BACKFILL_TICKS}-tick backfill: {bulk:.0f} msg/s vs raw per-message "
        f"confirms {per_message:.0f} msg/s: {bulk / per_message:.2f}x (goal >= 3)"
    )
    ratio = kit["runs_per_s"] / raw["runs_per_s"]
    print(f"result: overhead_throughput_vs_raw {ratio:.2f} (goal >= 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
