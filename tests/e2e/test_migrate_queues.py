"""`taskpipes rabbit migrate-queues`: classic queues become quorum queues, no message lost."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dramatiq
import pika

from taskpipes.rabbitmq.queues import TypedQueuesBroker, queue_arguments
from tests.processes import service_env, taskpipes
from tests.queues import dead_message, publish

# Every queue kind of two of the actors' queues.
QUEUES = [f"{q}{kind}" for q in ("github_top", "rollup") for kind in ("", ".DQ", ".XQ")]


def declare_classic(url: str) -> None:
    broker = TypedQueuesBroker(queue_type="classic", max_crashes=3, url=url, middleware=[])
    try:
        for queue in ("github_top", "rollup"):
            broker.declare_queue(queue, ensure=True)
    finally:
        broker.close()


def fill(url: str) -> dict[str, set[str]]:
    """Three messages in each queue; returns their ids per queue."""
    ids: dict[str, set[str]] = {}
    for queue in QUEUES:
        messages = [dead_message("fetch", queue.split(".")[0], n=n) for n in range(3)]
        for message in messages:
            publish(url, queue, message)
        ids[queue] = {m.message_id for m in messages}
    return ids


def held_ids(url: str, queue: str) -> set[str]:
    """The ids of every message in `queue`, read without removing any."""
    ids = []
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        while (got := channel.basic_get(queue, auto_ack=False))[0] is not None:
            ids.append(dramatiq.Message.decode(got[2]).message_id)
    assert len(ids) == len(set(ids)), f"{queue} holds a message twice"
    return set(ids)


def queue_types(url: str) -> dict[str, str]:
    vhost = url.rsplit("/", 1)[1]
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "type", "--no-table-headers"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return dict(line.split() for line in listing.splitlines() if line.strip())


def migrate(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = service_env(tmp_path, BROKER_URL=url, DATABASE_URL=f"sqlite:///{tmp_path / 'db'}")
    return taskpipes(["rabbit", "migrate-queues"], env)


def test_every_queue_kind_moves_to_quorum_with_its_messages(rabbitmq: str, tmp_path: Path) -> None:
    # Given classic queues, as a deployment before quorum has them, holding messages
    declare_classic(rabbitmq)
    ids = fill(rabbitmq)
    assert set(queue_types(rabbitmq).values()) == {"classic"}

    # When the queues are migrated
    result = migrate(rabbitmq, tmp_path)

    # Then every queue is quorum, with the very same messages, and no holding queue is left
    assert result.returncode == 0, result.stdout + result.stderr
    assert "github_top.XQ: now quorum, 3 message(s) moved" in result.stdout
    types = queue_types(rabbitmq)
    assert {q: types[q] for q in QUEUES} == dict.fromkeys(QUEUES, "quorum")
    assert not [q for q in types if q.endswith(".migrating")]
    assert {q: held_ids(rabbitmq, q) for q in QUEUES} == ids

    # And running it again changes nothing
    again = migrate(rabbitmq, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "github_top.DQ: already quorum" in again.stdout
    assert {q: held_ids(rabbitmq, q) for q in QUEUES} == ids


def test_an_interrupted_migration_finishes_when_run_again(rabbitmq: str, tmp_path: Path) -> None:
    # Given a migration cut off in the middle of moving github_top out (one message in the
    # holding queue, two still in the classic queue) and rollup.XQ cut off after it was
    # declared quorum again, before its messages came back
    declare_classic(rabbitmq)
    ids = fill(rabbitmq)
    with pika.BlockingConnection(pika.URLParameters(rabbitmq)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for queue in ("github_top", "rollup.XQ"):
            channel.queue_declare(f"{queue}.migrating", durable=True, arguments=QUORUM)
        _move_one(channel, "github_top", "github_top.migrating")
        for _ in range(3):
            _move_one(channel, "rollup.XQ", "rollup.XQ.migrating")
        channel.queue_delete("rollup.XQ", if_empty=True)
        channel.queue_declare(
            "rollup.XQ", durable=True, arguments=queue_arguments("rollup.XQ", "quorum", 3)
        )

    # When the migration runs again
    result = migrate(rabbitmq, tmp_path)

    # Then it finishes: every queue quorum, every message in its own queue once
    assert result.returncode == 0, result.stdout + result.stderr
    types = queue_types(rabbitmq)
    assert {q: types[q] for q in QUEUES} == dict.fromkeys(QUEUES, "quorum")
    assert not [q for q in types if q.endswith(".migrating")]
    assert {q: held_ids(rabbitmq, q) for q in QUEUES} == ids


def test_a_queue_with_consumers_is_left_alone(rabbitmq: str, tmp_path: Path) -> None:
    declare_classic(rabbitmq)
    with pika.BlockingConnection(pika.URLParameters(rabbitmq)) as connection:
        connection.channel().basic_consume("github_top", lambda *_: None)
        result = migrate(rabbitmq, tmp_path)

    assert result.returncode == 1
    assert "github_top has 1 consumer(s): stop the workers and schedulers first" in result.stderr
    assert queue_types(rabbitmq)["github_top"] == "classic"


QUORUM = {"x-queue-type": "quorum"}


def _move_one(channel, source: str, destination: str) -> None:  # type: ignore[no-untyped-def]
    method, properties, body = channel.basic_get(source, auto_ack=False)
    channel.basic_publish("", destination, body, properties, mandatory=True)
    channel.basic_ack(method.delivery_tag)
