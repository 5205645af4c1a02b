"""Every actor's retry, backoff, time-limit and queue options, written out (never Dramatiq's
defaults: 20 retries, up to 7 days of backoff), and the broker's connection safeguards."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import dramatiq
import pytest

import actors  # noqa: F401 (declares every actor on the broker)
from pipelines import catalog
from taskpipes.declare.settings import load_settings
from taskpipes.rabbitmq.queues import with_connection_params
from taskpipes.runtime.broker import build_broker

MINUTE_MS = 60_000
# RabbitMQ redelivers a message held unacked past its consumer_timeout (30 minutes).
CONSUMER_TIMEOUT_MS = 30 * MINUTE_MS
# actor: (queue, max_retries, min_backoff ms, max_backoff ms, time_limit ms), from the
# comments beside each actor's options.
EXPECTED = {
    "github_top_tick": ("github_top", 5, 2_000, 300_000, 600_000),
    "github_top_fetch": ("github_top", 5, 2_000, 300_000, 600_000),
    "github_top_normalize": ("github_top", 5, 2_000, 300_000, 600_000),
    "github_top_store": ("github_top", 5, 2_000, 300_000, 600_000),
    "github_top_aggregate": ("github_top", 5, 2_000, 300_000, 600_000),
    "rollup_tick": ("rollup", 5, 1_000, 120_000, 600_000),
    "rollup_buckets": ("rollup", 5, 1_000, 120_000, 600_000),
    "rollup_trending": ("rollup", 5, 1_000, 120_000, 600_000),
    "rollup_pages": ("rollup", 5, 1_000, 120_000, 600_000),
    "maintenance_tick": ("maintenance", 3, 10_000, 300_000, 600_000),
    "maintenance_prune": ("maintenance", 3, 10_000, 300_000, 600_000),
    "stargazers_tick": ("stargazers", 5, 2_000, 300_000, 120_000),
    "stargazers_plan": ("stargazers", 5, 2_000, 300_000, 600_000),
    "stargazers_wave": ("stargazers", 5, 2_000, 300_000, 120_000),
    "stargazers_page": ("stargazers", 5, 2_000, 300_000, 120_000),
    "language_stats_tick": ("language_stats", 5, 1_000, 120_000, 600_000),
    "language_stats_languages": ("language_stats", 5, 1_000, 120_000, 600_000),
    "catch_up": ("default", 3, 1_000, 10_000, 60_000),
    "observe_queues": ("default", 0, 1_000, 1_000, 30_000),
    "observe_pauses": ("default", 0, 1_000, 1_000, 30_000),
}
OPTIONS = ("max_retries", "min_backoff", "max_backoff", "time_limit")


def declared() -> dict[str, dramatiq.Actor]:
    """The application's actors: those on its pipelines' queues and the kit's `default`
    (tests declare pipelines of their own, on queues of their own, in the same process)."""
    queues = {p.queue_name for p in catalog.registry.declared} | {"default"}
    broker = dramatiq.get_broker()
    actors_ = (broker.get_actor(name) for name in broker.get_declared_actors())
    return {actor.actor_name: actor for actor in actors_ if actor.queue_name in queues}


def test_every_actor_is_listed() -> None:
    assert set(declared()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_actor_writes_out_its_options(name: str) -> None:
    actor = declared()[name]

    # Written on the actor itself, not inherited from the Retries/TimeLimit defaults
    assert set(OPTIONS) <= set(actor.options), name
    assert (actor.queue_name, *(actor.options[o] for o in OPTIONS)) == EXPECTED[name]
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
