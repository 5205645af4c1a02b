"""DBOS for bench/overhead.py, run with bench/.dbos-venv's Python (DBOS is no dependency
of the project): a workflow of 4 steps, the last inserting one row, on a queue that each
worker process polls (8 workflows at a time, every 0.1 s). DBOS's system tables live in
the system's own database (OVERHEAD_DSN), beside the `finished` table.

`python -m bench.overhead_dbos --worker` is one worker process; without the flag it is
the bench's sender, enqueuing one workflow per key with DBOSClient."""

from __future__ import annotations

import os
import sys
import threading

from psycopg_pool import ConnectionPool

from bench.overhead_sender import serve

QUEUE = "overhead"
WORKFLOW = "overhead_run"
# Workflows one worker process runs at once (the Dramatiq and Celery workers' threads).
WORKER_CONCURRENCY = 8
POLLING_INTERVAL_S = 0.1
# DBOS runs each workflow on a thread of an unbounded pool: its system database pool is
# sized to the workflows one process runs at once, as the other systems' pools are to
# their threads (a connection per thread would not fit beside them in PostgreSQL's 100).
SYSTEM_POOL_SIZE = WORKER_CONCURRENCY
# The last step borrows its connection from a small pool of its own: the insert is short.
FINISH_POOL_SIZE = 2


def system_database_url() -> str:
    return os.environ["OVERHEAD_DSN"].replace("postgresql://", "postgresql+psycopg://", 1)


def work() -> None:
    from dbos import DBOS

    finish_pool = ConnectionPool(
        os.environ["OVERHEAD_DSN"], min_size=1, max_size=FINISH_POOL_SIZE, open=True
    )

    @DBOS.step()
    def step(run: int) -> None:
        """The first three do nothing."""

    @DBOS.step()
    def finish(run: int) -> None:
        with finish_pool.connection() as conn:
            conn.execute("INSERT INTO finished (run) VALUES (%s)", (run,))

    @DBOS.workflow(name=WORKFLOW)
    def overhead_run(run: int) -> None:
        step(run)
        step(run)
        step(run)
        finish(run)

    DBOS(
        config={
            "name": "overhead",
            "system_database_url": system_database_url(),
            "sys_db_pool_size": SYSTEM_POOL_SIZE,
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    DBOS.register_queue(
        QUEUE, worker_concurrency=WORKER_CONCURRENCY, polling_interval_sec=POLLING_INTERVAL_S
    )
    threading.Event().wait()  # until the bench stops the process


def send() -> None:
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=system_database_url(), system_database_pool_size=2)
    options = {"queue_name": QUEUE, "workflow_name": WORKFLOW}

    def enqueue(keys: list[int]) -> None:
        for key in keys:
            client.enqueue(options, key)  # type: ignore[arg-type]

    serve(enqueue)


if __name__ == "__main__":
    work() if "--worker" in sys.argv else send()
