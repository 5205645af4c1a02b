"""The kit's Prometheus metrics: one place that names them all, and `/metrics`.

Metrics are declared with taskpipes.observe.instruments (as an application declares its
own) and created lazily, on first use: under `dramatiq actors` the multiprocess directory
is only known after process boot, and prometheus_client picks its value class at creation
time.

One registry for every process. When `PROMETHEUS_MULTIPROC_DIR` is set (it is, in every
container of deploy/compose.yaml, together with `dramatiq_prom_db` pointing at the same
tmpfs directory), every process -- the dramatiq worker children, the periodiq scheduler
and `taskpipes serve` -- writes its samples to `*.db` files in that directory instead of
keeping them in memory. Whoever serves `/metrics` then merges the directory:

- workers are scraped on dramatiq's own exporter, port 9191, which reads every worker
  child's files (and adds the `dramatiq_*` metrics);
- the scheduler and the API serve `metrics_text()` on their own `/metrics`.

The directory must be set before the process starts and wiped at start
(`wipe_stale_files`, called as each process starts): nothing else removes the files, so counters from a previous run
would carry over. Without the variable (tests, a one-off `taskpipes run`) the default
in-process `REGISTRY` is used.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from taskpipes.declare.settings import get_settings
from taskpipes.observe.instruments import counter, gauge, histogram
from taskpipes.store.runs import SUCCEEDED

# Stage durations run from a 10 ms stage to a 10 minute one.
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# Tick lag: from seconds (a healthy run) up to hours (catch-up after downtime).
LAG_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400)
# API latencies: sub-millisecond reads up to a slow second.
API_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


RUNS = counter(
    "taskpipes_pipeline_runs", "Finished pipeline runs by status", ["pipeline", "status"]
)
LAST_SUCCESS = gauge(
    "taskpipes_pipeline_last_success_timestamp_seconds",
    "When the pipeline last succeeded",
    ["pipeline"],
    multiprocess_mode="max",
)
TICK_LAG = histogram(
    "taskpipes_pipeline_tick_lag_seconds",
    "Time from a tick to its run's finish",
    ["pipeline"],
    buckets=LAG_BUCKETS,
)
STAGE_DURATION = histogram(
    "taskpipes_stage_duration_seconds",
    "Duration of one stage attempt",
    ["pipeline", "stage"],
    buckets=STAGE_BUCKETS,
)
STAGE_FAILURES = counter(
    "taskpipes_stage_failures", "Failed stage attempts", ["pipeline", "stage", "error"]
)
ROWS_WRITTEN = counter("taskpipes_rows_written", "Rows written by table", ["table"])
TICKS_SKIPPED = counter(
    "taskpipes_ticks_skipped",
    "Ticks recorded without running, by why: overlap (policy skip), paused, catchup",
    ["pipeline", "reason"],
)
PAUSED_SINCE = gauge(
    "taskpipes_pipeline_paused_since_timestamp_seconds",
    "When the pipeline was paused (taskpipes pause); 0 while it is not paused",
    ["pipeline"],
)
DUPLICATE_TICKS = counter(
    "taskpipes_duplicate_ticks", "Tick deliveries recognised as duplicates", ["pipeline"]
)
QUEUE_MESSAGES = gauge(
    "taskpipes_queue_messages", "RabbitMQ messages by queue and state", ["queue", "state"]
)
TICKS_SCHEDULED = counter(
    "taskpipes_ticks_scheduled", "Tick messages sent by this scheduler process", ["actor"]
)
API_DURATION = histogram(
    "taskpipes_api_request_duration_seconds",
    "Read API request duration",
    ["route", "code"],
    buckets=API_BUCKETS,
)


def run_finished(pipeline: str, status: str, tick_ts: float, finished_ts: float) -> None:
    RUNS().labels(pipeline, status).inc()
    if status == SUCCEEDED:
        LAST_SUCCESS().labels(pipeline).set(finished_ts)
        TICK_LAG().labels(pipeline).observe(max(0.0, finished_ts - tick_ts))


def stage_attempt(pipeline: str, stage: str, seconds: float, error: str | None) -> None:
    STAGE_DURATION().labels(pipeline, stage).observe(seconds)
    if error is not None:
        STAGE_FAILURES().labels(pipeline, stage, error).inc()


def rows_written(table: str, count: int) -> None:
    ROWS_WRITTEN().labels(table).inc(count)


def tick_skipped(pipeline: str, reason: str) -> None:
    TICKS_SKIPPED().labels(pipeline, reason).inc()


def paused_since(pipeline: str, timestamp: float) -> None:
    PAUSED_SINCE().labels(pipeline).set(timestamp)


def duplicate_tick(pipeline: str) -> None:
    DUPLICATE_TICKS().labels(pipeline).inc()


def queue_depth(queue: str, state: str, count: int) -> None:
    QUEUE_MESSAGES().labels(queue, state).set(count)


def api_request(route: str, code: int, seconds: float) -> None:
    API_DURATION().labels(route, str(code)).observe(seconds)


def tick_scheduled(actor: str) -> None:
    TICKS_SCHEDULED().labels(actor).inc()


def metrics_text() -> bytes:
    """Render every metric in the Prometheus text format, for an HTTP `/metrics`."""
    if get_settings().metrics_dir:
        # A fresh registry per scrape: the collector reads the directory on each collect.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def wipe_stale_files(path: str | os.PathLike[str]) -> None:
    """Remove the files of processes that no longer run: what a previous run left behind.

    Several worker processes share one directory, so none may wipe the others' live files.
    """
    for db_file in Path(path).glob("*.db"):
        pid = db_file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            db_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self._answer()
        if body is not None:
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 (a HEAD probe gets the GET's headers)
        self._answer()

    def _answer(self) -> bytes | None:
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return None
        body = metrics_text()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        return body

    def log_message(self, format: str, *args: object) -> None:
        pass  # scrapes every 15 s would drown the scheduler's own log


# Not configuration: a process serves its /metrics on one address for as long as it runs
# (the scheduler's exporter), so this memo is keyed by the address alone.
@cache
def serve_metrics(host: str, port: int) -> ThreadingHTTPServer:
    """Serve /metrics from a daemon thread, once per process (the scheduler's exporter)."""
    directory = get_settings().metrics_dir
    if directory:
        wipe_stale_files(directory)
    server = ThreadingHTTPServer((host, port), _MetricsHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
