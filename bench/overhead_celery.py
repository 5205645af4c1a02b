"""Celery for bench/overhead.py, run with bench/.celery-venv's Python (Celery is no
dependency of the project): a chain of 4 tasks, acks_late, publisher confirms, the last
inserts one row. As a worker: `celery -A bench.overhead_celery worker ...`. As a script it
is the bench's sender (bench/overhead_sender.py), one chain per key. Each worker thread
keeps one connection: the pool is sized to the threads."""

from __future__ import annotations

import os
import threading

import psycopg
from celery import Celery, chain

from bench.overhead_sender import serve

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


def send(keys: list[int]) -> None:
    for run in keys:
        chain(step.si(run), step.si(run), step.si(run), finish.si(run)).apply_async()


if __name__ == "__main__":
    serve(send)
