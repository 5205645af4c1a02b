"""TASKPIPES_QUEUE_TYPE: classic or quorum queues, and BROKER_URL listing cluster nodes."""

from __future__ import annotations

import pika
import pytest
from dramatiq.errors import ConnectionClosed

from taskpipes.declare.settings import ConfigError, load_settings
from taskpipes.rabbitmq.queues import (
    RETURN_ALLOWANCE,
    TypedQueuesBroker,
    broker_hosts,
    queue_arguments,
)
from tests.e2e.test_migrate_queues import queue_types
from tests.processes import service_env, taskpipes
from tests.queues import count, dead_message, wait_until

DEAD_LETTERING = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "rollup.XQ"}


def test_classic_is_the_default_and_quorum_is_chosen_by_name() -> None:
    assert load_settings({}).queue_type == "classic"
    assert load_settings({"TASKPIPES_QUEUE_TYPE": "quorum"}).queue_type == "quorum"


@pytest.mark.parametrize("value", ["Quorum", "stream", "mirrored"])
def test_an_unknown_queue_type_names_the_variable(value: str) -> None:
    with pytest.raises(
        ConfigError, match=f"TASKPIPES_QUEUE_TYPE must be one of classic, quorum, got '{value}'"
    ):
        load_settings({"TASKPIPES_QUEUE_TYPE": value})


def test_classic_queues_keep_dramatiqs_own_arguments() -> None:
    assert queue_arguments("rollup", "classic", 3) == DEAD_LETTERING
    assert queue_arguments("rollup.DQ", "classic", 3) == DEAD_LETTERING
    assert queue_arguments("rollup.XQ", "classic", 3) == {"x-message-ttl": 7 * 86_400_000}


def test_quorum_queues_dead_letter_at_least_once_and_only_q_has_a_delivery_limit() -> None:
    safe = {"x-queue-type": "quorum", "x-dead-letter-strategy": "at-least-once"}
    safe["x-overflow"] = "reject-publish"
    assert queue_arguments("rollup", "quorum", 3) == {
        **DEAD_LETTERING,
        **safe,
        "x-delivery-limit": 3 + RETURN_ALLOWANCE,
    }
    assert queue_arguments("rollup.DQ", "quorum", 3) == {**DEAD_LETTERING, **safe}
    assert queue_arguments("rollup.XQ", "quorum", 3) == {
        "x-message-ttl": 7 * 86_400_000,
        "x-queue-type": "quorum",
    }


def test_broker_url_may_list_cluster_nodes_and_their_hosts_are_shown_without_passwords() -> None:
    url = "amqp://u:s3cret@10.0.0.1:5672/v;amqp://u:s3cret@10.0.0.2/v; amqp://u:s3cret@h3:5673/v"

    assert load_settings({"BROKER_URL": url}).broker_url == url
    assert broker_hosts(url) == "10.0.0.1:5672, 10.0.0.2:5672, h3:5673"


@pytest.mark.parametrize(
    ("url", "scheme"), [("amqp://a/v;http://b/v", "'http'"), ("amqp://a/v;", "''")]
)
def test_every_listed_node_must_be_amqp(url: str, scheme: str) -> None:
    with pytest.raises(ConfigError, match=f"BROKER_URL must be amqp:// .* got scheme {scheme}"):
        load_settings({"BROKER_URL": url})


def test_an_unreachable_cluster_names_every_node_and_no_password(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = ";".join(f"amqp://u:s3cret@127.0.0.1:{port}/v" for port in (1, 2))
    result = taskpipes(["dlq", "list"], service_env(tmp_path, BROKER_URL=url))

    assert result.returncode == 1
    assert "cannot reach RabbitMQ at 127.0.0.1:1, 127.0.0.1:2" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr


def quorum_broker(url: str) -> TypedQueuesBroker:
    return TypedQueuesBroker(
        queue_type="quorum", max_crashes=3, url=url, confirm_delivery=True, middleware=[]
    )


def test_workers_declare_every_queue_kind_as_quorum(rabbitmq: str) -> None:
    broker = quorum_broker(rabbitmq)
    try:
        broker.declare_queue("rollup", ensure=True)
    finally:
        broker.close()

    types = queue_types(rabbitmq)
    assert [types[q] for q in ("rollup", "rollup.DQ", "rollup.XQ")] == ["quorum"] * 3


def test_the_broker_buries_a_message_returned_past_its_delivery_limit(rabbitmq: str) -> None:
    # Given a quorum queue and a message whose every delivery ends without an ack, as when
    # it kills its worker each time (a SIGKILLed worker's channel closes the same way)
    broker = quorum_broker(rabbitmq)
    try:
        broker.enqueue(dead_message("rollup_tick", "rollup"))
    finally:
        broker.close()
    limit = 3 + RETURN_ALLOWANCE
    deliveries = 0
    with pika.BlockingConnection(pika.URLParameters(rabbitmq)) as connection:
        while deliveries <= limit + 1:
            channel = connection.channel()
            method, _properties, _body = channel.basic_get("rollup", auto_ack=False)
            channel.close()
            if method is None:
                break
            deliveries += 1

    # Then the broker delivered it once more than the limit, then moved it to the dead letters
    assert deliveries == limit + 1
    wait_until(lambda: count(rabbitmq, "rollup.XQ") == 1, 30, "the dead letter")
    assert count(rabbitmq, "rollup") == 0


def test_quorum_workers_on_classic_queues_say_to_migrate(
    rabbitmq: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the classic queues of a deployment that has not migrated
    classic = TypedQueuesBroker(queue_type="classic", max_crashes=3, url=rabbitmq, middleware=[])
    classic.declare_queue("rollup", ensure=True)
    classic.close()

    # When a worker configured for quorum queues declares them
    broker = quorum_broker(rabbitmq)
    try:
        with pytest.raises(ConnectionClosed):
            broker.declare_queue("rollup", ensure=True)
    finally:
        broker.close()

    # Then the log says what to do
    assert (
        "queue rollup exists with other arguments than TASKPIPES_QUEUE_TYPE=quorum declares "
        "(inequivalent arg 'x-"
    ) in caplog.text
    assert "if it is classic, run `taskpipes rabbit migrate-queues` first" in caplog.text
