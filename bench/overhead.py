"""What taskpipes' guarantees cost against raw Dramatiq, Celery and DBOS, side by side in
one run.

Systems, each in its own PostgreSQL database (and RabbitMQ vhost, but DBOS, which needs
none) on this machine's services: raw Dramatiq (4 actors, each sends the next, the last
inserts a row; bench/overhead_raw.py), a taskpipes pipeline of 4 stages doing no work
(bench/overhead_kit.py), Celery, threads pool 2x8 and prefork 2 (acks_late, publisher
confirms; bench/overhead_celery.py), and DBOS (a workflow of 4 steps, the last inserting
the row, on a queue 2 worker processes poll; bench/overhead_dbos.py). Celery and DBOS run
in virtualenvs of their own made on demand (bench/.celery-venv, bench/.dbos-venv): they
are no dependency of the project. Every system is started by a sender process of its own
(bench/overhead_sender.py). "Finished" is the same for every system: its last write
committed, which a trigger turns into a NOTIFY the bench listens for (PostgreSQL delivers
it at commit).

Measured, first in a pass of its own, one system at a time and not timed (a burst of 100
runs): round trips to PostgreSQL per run and per message (a counting proxy between the
system's processes and the server), statements and transactions (the server's log,
log_statement = 'all' on the system's database) and connections opened. Then 3 timed
rounds, in each of which every system in turn has its workers started alone (all five at
once would hold about all of PostgreSQL's 100 connections, which other people's tests
share): latency (17 sequential runs a round: p50, p99), throughput (300 runs enqueued at
once: median of the rounds), CPU per run over the bursts, of the worker processes (/proc)
and of the whole machine (/proc/stat: PostgreSQL, RabbitMQ and everyone else's work
included), and the bulk enqueue rate of a 1,000-tick backfill against
raw Dramatiq's per-message confirms. Goals, met or not, and the house `result:` line end
it. `--profile` runs py-spy over the taskpipes workers instead.
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
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from bench.overhead_sender import KIT_EPOCH_MINUTE, kit_tick  # noqa: E402
from bench.overhead_wire import (  # noqa: E402
    CountingProxy,
    ServerLog,
    backend_pids,
    commits,
    statements_logged,
)
from bench.pg import ADMIN_DSN, scratch_database  # noqa: E402
from tests.services import rabbitmq_vhost  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The other systems' dependencies, each in a virtualenv of its own under bench/.
SIDE_REQUIREMENTS = {
    "celery": ("celery==5.*", "psycopg[binary]"),
    "dbos": ("dbos==3.4.0", "psycopg[binary,pool]"),
}
# Timed rounds: each system in turn, its workers alone on the services, every round.
ROUNDS = 3
WARMUP = 20  # runs at once: connections, queues declared, code paths loaded
LATENCY_RUNS = 51  # sequential single runs, a third in each round
BURST = 300  # runs at once, one burst per round
BACKFILL_TICKS = 1000
# The measuring pass: a burst to warm up (every worker thread's connection, code paths),
# then a burst counted, sent at once as the timed bursts are: a poller's (DBOS's) idle
# polls are then shared by many runs, as they are under load.
COUNT_WARMUP = 50
COUNT_RUNS = 100
# Lets the work a run does after its finishing commit (DBOS records the workflow's end)
# fall inside the window that counts it.
COUNT_SETTLE_S = 0.5
PG_PORT = 5432
# Who talks to PostgreSQL in a system: its worker processes and its sender.
SIDES = ("workers", "sender")
TIMEOUT_S = 120.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

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
""".replace("{epoch}", str(KIT_EPOCH_MINUTE))


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def side_python(name: str) -> Path:
    """bench/.NAME-venv's Python, made with pip on first use."""
    venv = ROOT / "bench" / f".{name}-venv"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        print(f"creating {venv} ({name} is a dependency of this bench only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", *SIDE_REQUIREMENTS[name]]
        subprocess.run(pip, check=True)
        (venv / ".installed").touch()
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


class Sender:
    """A system's sender process (its module run as a script), fed run keys on stdin."""

    def __init__(self, python: Path, module: str, env: dict[str, str]) -> None:
        self.module = module
        self.proc = subprocess.Popen(
            [str(python), "-m", module],
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
            raise SystemExit(f"the sender {self.module} died")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


@dataclass
class Recipe:
    """How to run one system: its Python, its module (worker and sender), its workers."""

    name: str
    slug: str
    python: Path
    module: str
    workers: list[list[str]]  # one command per worker process group
    schema: str  # its "finished" table or trigger
    messages_per_run: int | None = 4  # None: not message-driven (DBOS polls a table)
    broker: bool = True
    migrate: Callable[[str], object] | None = None  # its own tables, made in its database


class System:
    """One system under test, set up: its database, its vhost, and once started its worker
    processes and sender."""

    def __init__(self, recipe: Recipe, url: str, broker_url: str, logs: Path) -> None:
        self.recipe, self.name, self.url, self.logs = recipe, recipe.name, url, logs
        self.broker_url = broker_url
        self.database = url.rsplit("/", 1)[1]
        self.workers: list[subprocess.Popen[bytes]] = []
        self.sender: Sender | None = None
        self.finishes = Finishes(libpq(url))
        self._next = 1

    def env(self, url: str) -> dict[str, str]:
        return base_env(
            self.logs,
            BROKER_URL=self.broker_url,
            OVERHEAD_BROKER_URL=self.broker_url,
            DATABASE_URL=url,
            OVERHEAD_DSN=libpq(url),
        )

    def start(self, workers_url: str, sender_url: str) -> None:
        """Its workers and sender, on these URLs of its database (the proxy's, or not)."""
        env = self.env(workers_url)
        for n, args in enumerate(self.recipe.workers, 1):
            log = self.logs / f"{self.recipe.slug}-{n}.log"
            self.workers.append(spawn(args, env, log))
        self.sender = Sender(self.recipe.python, self.recipe.module, self.env(sender_url))

    def stop(self) -> None:
        for proc in self.workers:
            stop(proc)
        self.workers = []
        if self.sender is not None:
            self.sender.close()
            self.sender = None

    def keys(self, count: int) -> list[int]:
        first, self._next = self._next, self._next + count
        return list(range(first, first + count))

    def run(self, keys: list[int]) -> float:
        """Seconds from sending the runs to the last one's commit."""
        assert self.sender is not None
        started = time.perf_counter()
        self.sender(keys)
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


def machine_cpu_seconds() -> float:
    """Busy CPU of the whole machine since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


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


def dramatiq_recipe(name: str, slug: str, module: str, schema: str) -> Recipe:
    workers = [[str(BIN / "dramatiq"), module, "--processes", "2", "--threads", "8"]]
    return Recipe(name, slug, Path(sys.executable), module, workers, schema)


def kit_recipe() -> Recipe:
    recipe = dramatiq_recipe("taskpipes", "kit", "bench.overhead_kit", RUN_SUCCEEDED)
    recipe.migrate = kit_migrate
    return recipe


def kit_migrate(url: str) -> None:
    """The kit's tables, by its own command (in this process it would fix the kit's settings
    before confirm_rates sets them)."""
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [str(BIN / "taskpipes"), "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL
    )


def dbos_migrate(url: str) -> None:
    """DBOS's system tables, before its workers and client race to use them."""
    dbos = side_python("dbos").parent / "dbos"
    subprocess.run([str(dbos), "migrate", "-s", url], check=True, stdout=subprocess.DEVNULL)


def recipes() -> list[Recipe]:
    """The systems compared, raw Dramatiq first and taskpipes second."""
    celery, dbos = side_python("celery"), side_python("dbos")
    worker = [str(celery), "-m", "celery", "-A", "bench.overhead_celery", "worker", "-l", "WARNING"]
    threads = [[*worker, "--pool", "threads", "-c", "8", "-n", f"threads{n}@%h"] for n in (1, 2)]
    prefork = [[*worker, "--pool", "prefork", "-c", "2", "-n", "prefork@%h"]]
    dbos_worker = [str(dbos), "-m", "bench.overhead_dbos", "--worker"]
    return [
        dramatiq_recipe("raw Dramatiq", "raw", "bench.overhead_raw", FINISHED_TABLE),
        kit_recipe(),
        Recipe("Celery, threads 2x8", "celery_threads", celery, "bench.overhead_celery", threads, FINISHED_TABLE),
        Recipe("Celery, prefork 2", "celery_prefork", celery, "bench.overhead_celery", prefork, FINISHED_TABLE),
        Recipe("DBOS, queue 2x8", "dbos", dbos, "bench.overhead_dbos", [dbos_worker] * 2, FINISHED_TABLE, messages_per_run=None, broker=False, migrate=dbos_migrate),
    ]  # fmt: skip


def set_up(stack: ExitStack, logs: Path, recipe: Recipe) -> System:
    """The system's database (with its schema) and vhost, stopped and dropped at the end."""
    url = stack.enter_context(scratch_database(f"overhead_{recipe.slug}"))
    broker_url = (
        stack.enter_context(rabbitmq_vhost(f"overhead_{recipe.slug}")) if recipe.broker else ""
    )
    if recipe.migrate is not None:
        recipe.migrate(url)
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(recipe.schema)
    system = System(recipe, url, broker_url, logs)
    stack.callback(system.stop)
    stack.callback(system.finishes.close)
    return system


def proxy_tally(proxies: dict[str, CountingProxy]) -> Counter[str]:
    tally = Counter({"connections": sum(p.connections for p in proxies.values())})
    for side, proxy in proxies.items():
        tally[f"{side} round_trips"] = proxy.round_trips
    return tally


def count_traffic(system: System, log: ServerLog) -> Counter[str]:
    """The measuring pass: the system's workers and sender through counting proxies, with
    their statements logged, over a burst of COUNT_RUNS runs: round trips, statements and
    commits of each side ("workers", "sender"), and connections opened."""
    proxies = {side: CountingProxy(PG_PORT) for side in SIDES}
    with ExitStack() as stack:
        for proxy in proxies.values():
            stack.enter_context(proxy)
        stack.enter_context(statements_logged(ADMIN_DSN, system.database))
        system.start(proxies["workers"].proxied(system.url), proxies["sender"].proxied(system.url))
        stack.callback(system.stop)
        system.run(system.keys(COUNT_WARMUP))
        time.sleep(COUNT_SETTLE_S)
        before, since = proxy_tally(proxies), log.size()
        system.run(system.keys(COUNT_RUNS))
        time.sleep(COUNT_SETTLE_S)
        traffic = proxy_tally(proxies) - before
        senders = backend_pids(ADMIN_DSN, proxies["sender"].upstream_ports)
        for pid, statements in log.statements(system.database, since).items():
            side = "sender" if pid in senders else "workers"
            traffic[f"{side} statements"] += len(statements)
            traffic[f"{side} commits"] += commits(statements)
    return traffic


def traffic_figures(system: System, traffic: Counter[str]) -> dict[str, float]:
    """Per run (both sides), and per message (the workers' side) where runs are messages."""
    figures = {
        f"{what}_per_run": sum(traffic[f"{side} {what}"] for side in SIDES) / COUNT_RUNS
        for what in ("round_trips", "statements", "commits")
    }
    figures["connections_per_run"] = traffic["connections"] / COUNT_RUNS
    if system.recipe.messages_per_run:
        messages = COUNT_RUNS * system.recipe.messages_per_run
        for what in ("round_trips", "statements"):
            figures[f"{what}_per_message"] = traffic[f"workers {what}"] / messages
    return figures


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Round:
    """One system's timed round: single runs' latencies, then a burst."""

    latencies: list[float]
    runs_per_s: float
    cpu_per_run: float
    machine_cpu_per_run: float
    peak_rss_mb: float


def timed_round(system: System) -> Round:
    """The system's workers started alone (every system at once would hold about all of
    PostgreSQL's 100 connections, shared with others' tests), warmed up, timed, stopped."""
    system.start(system.url, system.url)
    try:
        system.run(system.keys(WARMUP))
        latencies = [system.run(system.keys(1)) for _ in range(LATENCY_RUNS // ROUNDS)]
        workers, machine = system.cpu_seconds(), machine_cpu_seconds()
        seconds = system.run(system.keys(BURST))
        return Round(
            latencies,
            BURST / seconds,
            (system.cpu_seconds() - workers) / BURST,
            (machine_cpu_seconds() - machine) / BURST,
            system.peak_rss_mb(),
        )
    finally:
        system.stop()


def summary(rounds: list[Round]) -> dict[str, float]:
    latencies = [seconds for r in rounds for seconds in r.latencies]
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "runs_per_s": statistics.median(r.runs_per_s for r in rounds),
        "cpu_ms_per_run": 1000 * statistics.median(r.cpu_per_run for r in rounds),
        "machine_cpu_ms_per_run": 1000 * statistics.median(r.machine_cpu_per_run for r in rounds),
        "peak_rss_mb": max(r.peak_rss_mb for r in rounds),
    }


def measure(systems: list[System]) -> dict[str, dict[str, float]]:
    """The traffic pass, then ROUNDS timed rounds, the systems taking turns in each."""
    log = ServerLog(ADMIN_DSN)
    figures = {s.name: traffic_figures(s, count_traffic(s, log)) for s in systems}
    rounds: dict[str, list[Round]] = {s.name: [] for s in systems}
    for _ in range(ROUNDS):
        for system in systems:
            rounds[system.name].append(timed_round(system))
    for name, values in rounds.items():
        figures[name] |= summary(values)
    return figures


def confirm_rates(raw: System, kit: System) -> tuple[float, float]:
    """Messages/s: raw Dramatiq's per-message confirmed sends, and a 1,000-tick backfill's
    enqueue through the kit (its runs recorded, its messages confirmed), from this process."""
    os.environ |= {"OVERHEAD_BROKER_URL": raw.broker_url, "OVERHEAD_DSN": libpq(raw.url)}
    os.environ |= {"BROKER_URL": kit.broker_url, "DATABASE_URL": kit.url}
    import dramatiq

    from bench import overhead_kit, overhead_raw
    from taskpipes.runtime import ticks

    # Raw Dramatiq's module made its broker the global one on import, and the kit sends
    # through the global broker (taskpipes.runtime.current).
    dramatiq.set_broker(overhead_kit.broker)

    probe = overhead_raw.broker
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


def cell(f: dict[str, float], key: str, form: str) -> str:
    return form.format(f[key]) if key in f else "—"


# The table's columns: heading, figure, format.
COLUMNS = (
    ("p50 latency", "p50_ms", "{:.1f} ms"),
    ("p99 latency", "p99_ms", "{:.1f} ms"),
    ("runs/s, 300 at once", "runs_per_s", "{:.0f}"),
    ("worker CPU per run", "cpu_ms_per_run", "{:.1f} ms"),
    ("machine CPU per run", "machine_cpu_ms_per_run", "{:.1f} ms"),
    ("transactions per run", "commits_per_run", "{:.1f}"),
    ("statements per run", "statements_per_run", "{:.1f}"),
    ("round trips per run", "round_trips_per_run", "{:.1f}"),
    ("statements per message", "statements_per_message", "{:.2f}"),
    ("round trips per message", "round_trips_per_message", "{:.2f}"),
    ("connections opened per run", "connections_per_run", "{:.2f}"),
    ("peak RSS of a worker process", "peak_rss_mb", "{:.0f} MB"),
)


def table(figures: dict[str, dict[str, float]]) -> str:
    lines = [
        "| per 4-message run | " + " | ".join(heading for heading, _, _ in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for name, f in figures.items():
        lines.append(f"| {name} | " + " | ".join(cell(f, k, form) for _, k, form in COLUMNS) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Goal:
    what: str
    value: float
    met: bool
    wanted: str

    def line(self) -> str:
        return f"goal: {self.what} {self.value:.2f} ({self.wanted}): {'met' if self.met else 'NOT MET'}"


def goals(figures: dict[str, dict[str, float]]) -> list[Goal]:
    raw, kit = figures["raw Dramatiq"], figures["taskpipes"]
    celery, dbos = figures["Celery, threads 2x8"], figures["DBOS, queue 2x8"]
    throughput = kit["runs_per_s"] / raw["runs_per_s"]
    cpu = kit["machine_cpu_ms_per_run"] / raw["machine_cpu_ms_per_run"]
    p50 = kit["p50_ms"] / raw["p50_ms"]
    vs_celery = kit["runs_per_s"] / celery["runs_per_s"]
    vs_dbos = kit["runs_per_s"] / dbos["runs_per_s"]
    trips = kit["round_trips_per_message"]
    return [
        Goal("taskpipes throughput vs raw Dramatiq", throughput, throughput >= 0.5, "goal >= 0.5"),
        Goal("taskpipes throughput vs Celery threads", vs_celery, vs_celery > 1, "goal > 1"),
        Goal("taskpipes throughput vs DBOS", vs_dbos, vs_dbos > 1, "goal > 1"),
        Goal("taskpipes machine CPU per run vs raw", cpu, cpu <= 2, "goal <= 2"),
        Goal("taskpipes p50 latency vs raw", p50, p50 <= 2.5, "goal <= 2.5"),
        Goal("taskpipes DB round trips per stage message", trips, trips <= 2, "goal <= 2"),
    ]  # fmt: skip


# What a taskpipes worker's time goes to, by the kit function on the stack (inclusive).
PROFILE_PARTS = {
    "the kit's middleware (CrashGuard, TickAge, ...)": "taskpipes/middleware.py",
    "tick's claim + first take (records.claim_and_take)": "claim_and_take (",
    "take (records.take_stage)": "take_stage (",
    "end + commit (records.end_stage)": "end_stage (",
    "transaction open/close (Transaction enter/exit)": "Transaction.__e",
    "hand-off (stages.send_to)": "send_to (",
    "taskpipes metrics": "taskpipes/metrics.py",
    "logging": "/logging/",
    "JSON (dramatiq encoder)": "encoder.py",
    "Prometheus middleware (dramatiq_*)": "prometheus.py",
}
# Leaf frames of a thread that waits (py-spy samples them too).
IDLE_LEAVES = ("select (", "poll (", "wait (", "sleep", "TimeoutManager.run", "worker_process (")
PROFILE_LIBRARIES = ("sqlalchemy", "psycopg", "pika", "prometheus_client")


def profile(stack: ExitStack, logs: Path) -> None:
    """py-spy over the taskpipes workers while they work 3 bursts: where the CPU goes."""
    kit = set_up(stack, logs, kit_recipe())
    kit.start(kit.url, kit.url)
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
    for _ in range(ROUNDS):
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
    runs = ROUNDS * BURST  # py-spy starts after the warm-up
    lines = [f"busy samples at 200 Hz: {busy} ({busy / runs * 5:.1f} ms per run)"]
    lines += [f"  {name}: {100 * n / max(busy, 1):.0f}%" for name, n in parts.items()]
    lines.append("by library (inclusive):")
    lines += [f"  {name}: {100 * n / max(busy, 1):.0f}%" for name, n in libraries.items()]
    return "\n".join(lines)


def compare(logs: Path, stack: ExitStack) -> tuple[dict[str, dict[str, float]], float, float]:
    """Every system measured; then the enqueue rates, their workers stopped."""
    systems = [set_up(stack, logs, recipe) for recipe in recipes()]
    try:
        figures = measure(systems)
        per_message, bulk = confirm_rates(systems[0], systems[1])  # no workers running
    except BaseException:
        for log in sorted(logs.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}", file=sys.stderr)
        raise
    return figures, per_message, bulk


def report(figures: dict[str, dict[str, float]], per_message: float, bulk: float) -> None:
    print(table(figures))
    print(
        f"(transactions, statements, round trips, connections: a burst of {COUNT_RUNS} runs "
        "through a counting proxy, before the timed rounds; per run: enqueue included; "
        "per message: the workers' side only)"
    )
    print(f"load after: {os.getloadavg()}")
    for goal in goals(figures):
        print(goal.line())
    print(
        f"enqueue, {BACKFILL_TICKS}-tick backfill: {bulk:.0f} msg/s vs raw per-message "
        f"confirms {per_message:.0f} msg/s: {bulk / per_message:.2f}x (goal >= 3)"
    )
    ratio = figures["taskpipes"]["runs_per_s"] / figures["raw Dramatiq"]["runs_per_s"]
    print(f"result: overhead_throughput_vs_raw {ratio:.2f} (goal >= 0.5)")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp, ExitStack() as stack:
        if "--profile" in sys.argv:
            profile(stack, Path(tmp))
            return 0
        print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load: {os.getloadavg()}", flush=True)
        figures, per_message, bulk = compare(Path(tmp), stack)
    report(figures, per_message, bulk)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
