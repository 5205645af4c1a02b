"""Every actor's retry, backoff, time-limit and queue options, written out (never Dramatiq's
defaults: 20 retries, up to 7 days of backoff), and the broker's connection safeguards."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import dramatiq
import pytest

import actors  # noqa: F401 (declares every actor on the broker)
from pipelines import catalog
from taskpipes import FanOut
from taskpipes.declare.settings import load_settings
from taskpipes.rabbitmq.queues import with_connection_params
from taskpipes.runtime.broker import build_broker

MINUTE_MS = 60_000
# RabbitMQ redelivers a message held unacked past its consumer_timeout (30 minutes).
CONSUMER_TIMEOUT_MS = 30 * MINUTE_MS
# The kit's own actors: (queue, max_retries, min_backoff ms, max_backoff ms, time_limit ms).
KIT_ACTORS = {
    "catch_up": ("default", 3, 1_000, 10_000, 60_000),
    "observe_queues": ("default", 0, 1_000, 1_000, 30_000),
    "observe_pauses": ("default", 0, 1_000, 1_000, 30_000),
}
OPTIONS = ("max_retries", "min_backoff", "max_backoff", "time_limit")


def application_actors() -> dict[str, dramatiq.Actor]:
    """The actors on the application's queues and the kit's `default` (tests declare
    pipelines of their own, on queues of their own, in the same process)."""
    queues = {p.queue_name for p in catalog.registry.declared} | {"default"}
    broker = dramatiq.get_broker()
    actors_ = (broker.get_actor(name) for name in broker.get_declared_actors())
    return {actor.actor_name: actor for actor in actors_ if actor.queue_name in queues}


def from_declarations() -> dict[str, tuple[str, int, int, int, int]]:
    """Each tick and stage actor's options as its pipeline's declaration says them."""
    expected = {}
    for pipeline in catalog.registry.declared:
        for part, stage in [("tick", None), *((s.name, s) for s in pipeline.stages)]:
            if isinstance(stage, FanOut):
                continue  # the application builds a fan-out's actors itself
            retries = getattr(stage, "retries", None) or pipeline.retries
            expected[pipeline.actor_name(part)] = (
                pipeline.queue_name,
                retries.max,
                retries.min_backoff_ms or load_settings({}).retry_min_backoff_ms,
                retries.max_backoff_ms,
                retries.time_limit_ms,
            )
    return expected


def options_of(actor: dramatiq.Actor) -> tuple[str, int, int, int, int]:
    # Written on the actor itself, not inherited from Dramatiq's Retries/TimeLimit defaults
    assert set(OPTIONS) <= set(actor.options), actor.actor_name
    return (actor.queue_name, *(actor.options[o] for o in OPTIONS))  # type: ignore[return-value]


def test_every_declared_actor_exists_with_its_declared_options() -> None:
    actors_ = application_actors()

    for name, expected in (from_declarations() | KIT_ACTORS).items():
        assert name in actors_, name
        assert options_of(actors_[name]) == expected, name


@pytest.mark.parametrize("name", sorted(application_actors()))
def test_each_actor_writes_out_bounded_options(name: str) -> None:
    actor = application_actors()[name]

    options_of(actor)
    # A run holds a message at most this long, and a retry's delay sits unacked in a
    # worker's memory: both stay far below RabbitMQ's consumer_timeout
    assert actor.options["time_limit"] <= CONSUMER_TIMEOUT_MS / 3
    assert actor.options["max_backoff"] <= CONSUMER_TIMEOUT_MS / 3


def test_the_rabbitmq_broker_confirms_and_bounds_its_connection() -> None:
    settings = load_settings({"BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/taskpipes"})

    broker = build_broker(settings)

    assert broker.confirm_delivery is True  # type: ignore[attr-defined]
    # One set of connection parameters per node BROKER_URL lists
    nodes = broker.parameters  # type: ignore[attr-defined]
    assert [(p.heartbeat, p.blocked_connection_timeout) for p in nodes] == [(30, 60)]


def test_connection_params_keep_what_the_url_already_says() -> None:
    url = with_connection_params("amqp://u:p@rabbit:5672/vh?heartbeat=5")

    assert dict(parse_qsl(urlsplit(url).query)) == {
        "heartbeat": "5",
        "blocked_connection_timeout": "60",
    }
    assert urlsplit(url).path == "/vh" and urlsplit(url).netloc == "u:p@rabbit:5672"
