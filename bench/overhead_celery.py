"""Celery for bench/overhead.py, run with bench/.celery-venv's Python (Celery is no
dependency of the project): a chain of 4 tasks, acks_late, publisher confirms, the last
inserts one row. As a worker: `celery -A bench.overhead_celery worker ...`. As a script it
is the bench's sender: it reads `KEY...` lines on stdin, sends one chain per key and
answers `sent` once every publish is confirmed."""

from __future__ import annotations

import os
import sys
import threading

import psycopg
from celery import Celery, chain

app = Celery("overhead", broker=os.environ["OVERHEAD_BROKER_URL"])
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    broker_transport_options={"confirm_publish": True},
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
)
_local = threading.local()


def _connection() -> psycopg.Connection:
    if not hasattr(_local, "conn"):
        _local.conn = psycopg.connect(os.environ["OVERHEAD_DSN"], autocommit=True)
    return _local.conn


@app.task(name="step")
def step(run: int) -> None:
    """The first three do nothing."""


@app.task(name="finish")
def finish(run: int) -> None:
    _connection().execute("INSERT INTO finished (run) VALUES (%s)", (run,))


def send(run: int) -> None:
    chain(step.si(run), step.si(run), step.si(run), finish.si(run)).apply_async()


if __name__ == "__main__":
    for line in sys.stdin:
        for key in line.split():
            send(int(key))
        print("sent", flush=True)
