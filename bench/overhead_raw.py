"""Raw Dramatiq for bench/overhead.py: 4 actors, each sends the next, the last inserts one
row (its only transaction). `dramatiq bench.overhead_raw` works it; OVERHEAD_BROKER_URL and
OVERHEAD_DSN say where. Run as a script, it is the bench's sender (bench/overhead_sender.py).
Each worker thread keeps one connection: the pool is sized to the threads."""

from __future__ import annotations

import os
import threading
from typing import Any

import dramatiq
import psycopg
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from bench.overhead_sender import serve

broker = RabbitmqBroker(url=os.environ["OVERHEAD_BROKER_URL"], confirm_delivery=True)
dramatiq.set_broker(broker)
OPTIONS: dict[str, Any] = {
    "broker": broker,
    "queue_name": "raw",
    "max_retries": 3,
    "min_backoff": 1000,
}
_local = threading.local()


def _connection() -> psycopg.Connection:
    if not hasattr(_local, "conn"):
        _local.conn = psycopg.connect(os.environ["OVERHEAD_DSN"], autocommit=True)
    return _local.conn


@dramatiq.actor(**OPTIONS)
def raw_4(run: int) -> None:
    _connection().execute("INSERT INTO finished (run) VALUES (%s)", (run,))


@dramatiq.actor(**OPTIONS)
def raw_3(run: int) -> None:
    raw_4.send(run)


@dramatiq.actor(**OPTIONS)
def raw_2(run: int) -> None:
    raw_3.send(run)


@dramatiq.actor(**OPTIONS)
def raw_1(run: int) -> None:
    raw_2.send(run)


def send(keys: list[int]) -> None:
    for key in keys:
        raw_1.send(key)


if __name__ == "__main__":
    serve(send)
