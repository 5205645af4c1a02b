"""Read API latency: the precomputed trending table against the same ranking computed live.

Over a year of 10-minute snapshots of 100 repositories (BENCH_REPOS=1000 for ten times as
many; bench/history.py, PostgreSQL),
rolled up once more after the history: `GET /api/trending?window=7d` over HTTP on loopback
(uvicorn in a subprocess via `taskpipes serve`, one keep-alive connection) against the
SQL query that computes stars_gained(7d) from the snapshot history, timed without HTTP.
Each measured target is one `measure_*` function returning its latencies.

The web pages are measured on the same server and history: `GET /` (the top 100 with
sparklines and 24h/7d gains, trending 24h) and `GET /repos/{owner}/{name}` (star history,
15m/1h/1d history, rank over time), each rendered in full on every request, plus `GET /`
answered 304 from its ETag. The sparklines rollup stage is timed once over the year too.
`GET /healthz` (no database) on the same server is the yardstick: each page and `GET
/api/top` (the served ranking, limit 100 and the whole ranking) is also reported as a
ratio to it, which holds across machines.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.history import (  # noqa: E402
    DAYS,
    END,
    REPOS,
    TICK,
    build_history,
    naive,
    store_tick,
)
from bench.pg import scratch_database  # noqa: E402
from pipelines.aggregate import refresh_latest_ranking  # noqa: E402
from pipelines.buckets import BUCKET  # noqa: E402
from pipelines.repo_charts import refresh_page_data  # noqa: E402
from pipelines.rollup import roll_up_tick  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Requests per HTTP target, after WARMUP unmeasured ones.
REQUESTS = 3000
WARMUP = 300
# Live queries: each scans the history, so a few are enough for a median.
LIVE_RUNS = 7 if REPOS <= 100 else 3
LIMIT = 25
# Requests per web page: each renders ~100 kB of HTML, so fewer are enough for a p99.
PAGE_REQUESTS = 1000
PAGE_WARMUP = 100
# The repository whose page is measured (bench/history.py names them owner<r>/repo<r>).
PAGE_REPO = "owner0/repo0"
# Times the sparklines stage is run over the year of history.
SPARKLINE_RUNS = 5
# Seconds to wait for the API subprocess to answer /healthz.
STARTUP_S = 30

# The trending ranking straight from the snapshots: the query the precomputed table saves.
LIVE_TRENDING_SQL = """
WITH newest AS (SELECT max(tick) AS tick FROM snapshots WHERE tick < :as_of),
current AS (
    SELECT s.repo_id, s.stars FROM snapshots s JOIN newest ON s.tick = newest.tick
),
earlier AS (
    SELECT DISTINCT ON (repo_id) repo_id, stars FROM snapshots
    WHERE tick < :cut ORDER BY repo_id, tick DESC
)
SELECT c.repo_id, r.full_name, c.stars, c.stars - e.stars AS stars_gained
FROM current c JOIN earlier e USING (repo_id) JOIN repositories r ON r.id = c.repo_id
ORDER BY stars_gained DESC, c.stars DESC, c.repo_id
LIMIT :limit
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, timings: list[float]) -> tuple[float, float]:
    p50, p99 = statistics.median(timings), percentile(timings, 0.99)
    print(
        f"{name:<44} p50 {p50 * 1000:9.3f} ms   p99 {p99 * 1000:9.3f} ms   ({len(timings)} samples)"
    )
    return p50, p99


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def api_subprocess(database_url: str) -> Iterator[str]:
    """`taskpipes serve` on a free loopback port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("BROKER_URL", None)
    command = [
        sys.executable,
        "-m",
        "taskpipes.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}")
        try:
            if requests.get(f"{base}/healthz", timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("the API did not answer /healthz in time")


def time_http(
    base: str,
    path: str,
    requests_n: int = REQUESTS,
    warmup: int = WARMUP,
    headers: dict[str, str] | None = None,
) -> tuple[list[float], requests.Response]:
    """Latencies of `requests_n` GETs of `path` on one keep-alive connection, and the last
    answer."""
    with requests.Session() as http:
        for _ in range(warmup):
            http.get(f"{base}{path}", headers=headers).raise_for_status()
        timings = []
        for _ in range(requests_n):
            started = time.perf_counter()
            answer = http.get(f"{base}{path}", headers=headers)
            timings.append(time.perf_counter() - started)
            answer.raise_for_status()
    return timings, answer


def measure_trending_precomputed(base: str) -> tuple[list[float], object]:
    timings, answer = time_http(base, f"/api/trending?window=7d&limit={LIMIT}")
    return timings, answer.json()


def measure_plain(base: str, path: str) -> list[float]:
    return time_http(base, path, PAGE_REQUESTS, PAGE_WARMUP)[0]


def measure_page(base: str, path: str) -> list[float]:
    """A web page rendered in full each time (no If-None-Match): the honest cost."""
    timings, answer = time_http(base, path, PAGE_REQUESTS, PAGE_WARMUP)
    if "<svg" not in answer.text:
        raise AssertionError(f"{path} drew no chart")
    return timings


def measure_page_not_modified(base: str) -> list[float]:
    tag = requests.get(f"{base}/", timeout=10).headers["ETag"]
    timings, answer = time_http(base, "/", PAGE_REQUESTS, PAGE_WARMUP, {"If-None-Match": tag})
    if answer.status_code != 304:
        raise AssertionError(f"If-None-Match got {answer.status_code}, not 304")
    return timings


def measure_pages_stage(engine: Engine, as_of: datetime) -> list[float]:
    """The rollup's pages stage over the year (sparklines and the ranked repositories' page
    data): it reads days of buckets, whatever the length of the history."""
    timings = []
    for _ in range(SPARKLINE_RUNS):
        with Session(engine) as session, session.begin():
            started = time.perf_counter()
            refresh_page_data(session, as_of)
            timings.append(time.perf_counter() - started)
    return timings


def measure_trending_live(engine: Engine, as_of: datetime) -> tuple[list[float], list[tuple]]:
    params = {"as_of": naive(as_of), "cut": naive(as_of - timedelta(days=7)), "limit": LIMIT}
    timings = []
    with engine.connect() as conn:
        for _ in range(LIVE_RUNS):
            started = time.perf_counter()
            rows = conn.execute(text(LIVE_TRENDING_SQL), params).all()
            timings.append(time.perf_counter() - started)
    return timings, [tuple(row) for row in rows]


def roll_up_next(engine: Engine) -> datetime:
    """Store the ticks after the history and run the next rollup, as the pipeline would."""
    as_of = END + BUCKET
    tick = END
    while tick < as_of:
        store_tick(engine, tick)
        tick += TICK
    with Session(engine) as session, session.begin():
        refresh_latest_ranking(session, tick - TICK)
        roll_up_tick(session, as_of)
        refresh_page_data(session, as_of)
    return as_of


def main() -> None:
    with scratch_database("bench_api") as url:
        engine = build_history(url, DAYS)
        as_of = roll_up_next(engine)
        with api_subprocess(url) as base:
            health = measure_plain(base, "/healthz")
            fast, body = measure_trending_precomputed(base)
            top_api = measure_plain(base, "/api/top?limit=100")
            top_all = measure_plain(base, f"/api/top?limit={REPOS}") if REPOS > 100 else top_api
            top_page = measure_page(base, "/")
            repo_page = measure_page(base, f"/repos/{PAGE_REPO}")
            not_modified = measure_page_not_modified(base)
            health_after = measure_plain(base, "/healthz")
        slow, live_rows = measure_trending_live(engine, as_of)
        pages_stage = measure_pages_stage(engine, as_of)
        engine.dispose()
    served = [(r["id"], r["full_name"], r["stars"], r["stars_gained"]) for r in body["repos"]]  # type: ignore[index]
    if served != live_rows:
        raise AssertionError("the precomputed and the live ranking differ")
    print(f"repositories: {REPOS}, history: {DAYS} days")
    health_p50, _ = report("GET /healthz (before and after the rest)", health + health_after)
    top_p50, _ = report("GET /api/top?limit=100", top_api)
    top_all_p50 = report(f"GET /api/top?limit={REPOS}", top_all)[0] if REPOS > 100 else top_p50
    page_p50, _ = report(f"page: GET / (top {REPOS} + trending)", top_page)
    repo_p50, _ = report(f"page: GET /repos/{PAGE_REPO}", repo_page)
    report("page: GET / with If-None-Match (304)", not_modified)
    report("rollup stage: pages (sparklines + repo charts)", pages_stage)
    print(f"GET /api/top?limit=100 p50 goal < 2 ms: {'met' if top_p50 < 0.002 else 'MISSED'}")
    for name, p50 in {"/api/top (100)": top_p50, f"/api/top ({REPOS})": top_all_p50}.items():
        print(f"{name} p50 / healthz p50: {p50 / health_p50:.1f}")
    for page, p50 in (("GET /", page_p50), ("GET /repos/...", repo_p50)):
        verdict = "met" if p50 < 0.010 else "MISSED"
        print(
            f"web page {page} p50 {p50 * 1000:.2f} ms, {p50 / health_p50:.1f}x /healthz "
            f"(goal < 10 ms: {verdict})"
        )
    fast_p50, _ = report("precomputed: GET /api/trending?window=7d", fast)
    slow_p50, _ = report("live: stars_gained(7d) SQL over the history", slow)
    ratio = slow_p50 / fast_p50
    print(f"live/precomputed at p50: {ratio:.0f}x; precomputed p50 goal < 2 ms")
    print(f"result: trending_precomputed_vs_live {ratio:.0f} (goal >= 100)")


if __name__ == "__main__":
    main()
