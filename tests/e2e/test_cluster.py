"""A three-node RabbitMQ cluster with quorum queues loses a node mid-run (`make faults`).

Each scenario counts the ticks it asked for against the runs stored: none lost (every tick
succeeded, with 100 snapshot rows), none duplicated (no tick with more rows or a second
run), and how long after the fault the next run finished. The table is printed at the end
of the session.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
import pika
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from db import schema as migrate
from db.models import Snapshot
from githubsim import Simulator
from taskpipes.declare.schedule import floor_minute
from taskpipes.rabbitmq.queues import TypedQueuesBroker
from taskpipes.store.tables import Run
from tests import cluster as clusters
from tests.cluster import Cluster, Node
from tests.processes import scheduler, service_env, taskpipes, workers
from tests.queues import wait_until
from tests.services import QUEUES

# Booting the cluster (~40 s), a minute's outage and minute ticks outlast the suite's
# 300 s per-test timeout; each wait below has its own, shorter bound.
pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
TICKS = 6
# Bounds: a bug fails the scenario rather than hanging `make faults`.
RUNS_DEADLINE_S = 300
OUTAGE_S = 60


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with clusters.three_nodes(tmp_path_factory.mktemp("rabbit-cluster")) as three:
        yield three


@pytest.fixture(scope="module")
def cluster_apart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with clusters.three_nodes_apart(tmp_path_factory.mktemp("rabbit-netns")) as three:
        yield three


def prepare(
    cluster: Cluster, leader: Node, postgres_url: str, simulator: Simulator, tmp_path: Path
):  # type: ignore[no-untyped-def]
    """A vhost of its own on the whole cluster, its queues led by `leader`, and the env."""
    for node in cluster.nodes:
        if not node.running:
            cluster.restart(node)
    vhost = cluster.add_vhost()
    migrate.upgrade(postgres_url)
    _declare_queues(leader.url(vhost))
    members = cluster.queue_members(vhost)
    assert {name: size for name, (_l, size) in members.items()} == {
        f"{q}{kind}": 3 for q in QUEUES for kind in ("", ".DQ", ".XQ")
    }
    assert {lead for lead, _size in members.values()} == {leader.name}

    def env(first: Node, **extra: str) -> dict[str, str]:
        order = [first] + [node for node in cluster.nodes if node is not first]
        return service_env(
            tmp_path,
            DATABASE_URL=postgres_url,
            BROKER_URL=cluster.url(vhost, order),
            GITHUB_API_URL=simulator.url,
            TASKPIPES_QUEUE_TYPE="quorum",
            **extra,
        )

    return vhost, env, create_engine(postgres_url)


@pytest.fixture
def deployment(cluster: Cluster, postgres_url: str, simulator: Simulator, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The loopback cluster, its queues led by node 1."""
    vhost, env, engine = prepare(cluster, cluster.nodes[0], postgres_url, simulator, tmp_path)
    yield vhost, env, engine
    engine.dispose()


def _declare_queues(url: str) -> None:
    broker = TypedQueuesBroker(queue_type="quorum", max_crashes=3, url=url, middleware=[])
    try:
        for queue in QUEUES:
            broker.declare_queue(queue, ensure=True)
    finally:
        broker.close()


def succeeded(engine: Engine) -> dict[datetime, datetime]:
    """Tick -> finish time of every succeeded github_top run."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Run.tick, Run.finished_at)
            .where(Run.pipeline == "github_top")
            .where(Run.status == "succeeded")
        )
        return {tick: finished for tick, finished in rows}


def fetching(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.scalar(select(func.count()).where(Run.status == "running")))


def record(scenario: str, engine: Engine, expected: list[datetime], fault_at: datetime) -> None:
    """Count lost and duplicated ticks, note the time to recover, and assert on both."""
    with engine.connect() as conn:
        rows = dict(conn.execute(select(Snapshot.tick, func.count()).group_by(Snapshot.tick)).all())
        runs = dict(
            conn.execute(
                select(Run.tick, func.count())
                .where(Run.pipeline == "github_top")
                .group_by(Run.tick)
            ).all()
        )
    done = succeeded(engine)
    lost = [tick for tick in expected if tick not in done or rows.get(tick) != 100]
    duplicated = [tick for tick in expected if rows.get(tick, 0) > 100 or runs.get(tick, 0) > 1]
    after = [finished for finished in done.values() if finished and finished > fault_at]
    recover = (min(after) - fault_at).total_seconds() if after else float("nan")
    clusters.TABLE.append(
        f"{scenario:<44} {len(expected):>8} {len(done):>6} {len(lost):>4} "
        f"{len(duplicated):>10} {recover:>10.1f}"
    )
    assert (lost, duplicated) == ([], [])


def send_ticks(env: dict[str, str], ticks: list[datetime], exits: list[int]) -> threading.Thread:
    """`taskpipes run` for each tick, one after the other, as an operator's loop would."""

    def loop() -> None:
        for tick in ticks:
            args = ["run", "github_top", "--at", tick.isoformat(), "--timeout", "240"]
            exits.append(taskpipes(args, env, timeout=300).returncode)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def ticks_through(  # type: ignore[no-untyped-def]
    fault: Callable[[], None],
    deployment,
    simulator: Simulator,
    tmp_path: Path,
    workers_on: list[Node],
    cli_on: Node,
) -> tuple[list[datetime], datetime, list[int]]:
    """Send TICKS ticks through the CLI and strike with `fault` in the middle of the third.

    Returns the ticks, when the fault struck and the CLI's exit codes.
    """
    _vhost, env, engine = deployment
    ticks = [T0 + timedelta(minutes=10 * i) for i in range(TICKS)]
    simulator.set_clock(T0)
    # Every fetch takes a moment, so the fault lands in the middle of one.
    simulator.add_fault("search", "stall", times=TICKS * 2, seconds=2)
    exits: list[int] = []
    with ExitStack() as stack:
        for node in workers_on:
            stack.enter_context(
                workers(env(node), tmp_path / f"workers-{node.ip}-{node.amqp_port}.log")
            )
        sender = send_ticks(env(cli_on), ticks, exits)
        wait_until(lambda: len(succeeded(engine)) >= 2 and fetching(engine), 120, "tick 3")
        fault_at = datetime.now(UTC)
        fault()
        wait_until(lambda: len(succeeded(engine)) == TICKS, RUNS_DEADLINE_S, "every tick")
        sender.join(60)
    return ticks, fault_at, exits


def test_sigkill_of_the_node_the_workers_use(cluster, deployment, simulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Given workers and the CLI connected to node 2 (the queues are led by node 1)
    workers_on = cluster.nodes[1]
    # When node 2 is SIGKILLed in the middle of a run
    ticks, fault_at, exits = ticks_through(
        workers_on.kill, deployment, simulator, tmp_path, [workers_on], workers_on
    )
    # Then the workers and the CLI move to a surviving node and every tick runs once
    record("SIGKILL the workers' node (node 2)", deployment[2], ticks, fault_at)
    assert exits == [0] * TICKS, exits


def test_sigkill_of_the_queue_leader(cluster, deployment, simulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Given the queues led by node 1 and the workers on node 2
    leader, workers_on = cluster.nodes[0], cluster.nodes[1]
    # When the leader is SIGKILLed in the middle of a run
    ticks, fault_at, exits = ticks_through(
        leader.kill, deployment, simulator, tmp_path, [workers_on], workers_on
    )
    # Then a follower takes the lead with every message and every tick runs once
    record("SIGKILL the queue leader (node 1)", deployment[2], ticks, fault_at)
    assert exits == [0] * TICKS, exits
    vhost = deployment[0]
    assert leader.name not in {lead for lead, _size in cluster.queue_members(vhost).values()}


def test_a_node_stopped_for_a_minute_while_two_schedulers_tick(  # type: ignore[no-untyped-def]
    cluster, deployment, tmp_path
) -> None:
    _vhost, env, engine = deployment
    every_minute = {"TASKPIPES_SCHEDULE_GITHUB_TOP": "* * * * *"}
    first, second, third = cluster.nodes
    with (
        workers(env(third, **every_minute), tmp_path / "workers.log"),
        scheduler(env(first, **every_minute), tmp_path / "scheduler-1.log"),
        scheduler(env(second, **every_minute), tmp_path / "scheduler-2.log"),
    ):
        # Given two schedulers ticking every minute (one on node 1, one on node 2)
        wait_until(lambda: succeeded(engine), 150, "the first scheduled tick")
        # When node 1 (the leader, and one scheduler's node) stops for a minute
        fault_at = datetime.now(UTC)
        first.stop()
        time.sleep(OUTAGE_S)  # the outage itself, not a wait for a result
        cluster.restart(first)
        # Then every minute keeps its tick, run once, through the outage and after it
        back = floor_minute(datetime.now(UTC))
        wait_until(lambda: back + timedelta(minutes=1) in succeeded(engine), 200, "ticks after")
    # Expected: every minute from the first tick the schedulers sent to the last one awaited.
    expected = _minutes(min(succeeded(engine)), back + timedelta(minutes=1))
    record(f"stop node 1 for {OUTAGE_S} s, two schedulers", engine, expected, fault_at)


def _minutes(start: datetime, end: datetime) -> list[datetime]:
    count = int((end - start).total_seconds() // 60) + 1
    return [start + timedelta(minutes=i) for i in range(count)]


def test_a_network_partition_of_the_leaders_node(  # type: ignore[no-untyped-def]
    cluster_apart, postgres_url, simulator, tmp_path
) -> None:
    # Given nodes in network namespaces of their own, the queues led by node 3, one worker
    # group connected to node 3 and one to node 1
    one, _two, three = cluster_apart.nodes
    deployment = prepare(cluster_apart, three, postgres_url, simulator, tmp_path)
    vhost, _env, engine = deployment
    try:
        # When node 3's link goes down mid-run: no reset, its packets just stop
        ticks, fault_at, exits = ticks_through(
            lambda: cluster_apart.bridge.cut(3), deployment, simulator, tmp_path, [three, one], one
        )
    finally:
        cluster_apart.bridge.heal(3)
    # Then the majority took the lead and every tick ran, once
    record("partition the leaders' node (node 3)", engine, ticks, fault_at)
    engine.dispose()
    assert exits == [0] * TICKS, exits
    assert three.name not in {lead for lead, _size in cluster_apart.queue_members(vhost).values()}
    # And with the link back, node 3 rejoins (pause_minority paused it meanwhile)
    wait_until(lambda: _whole(one, 3), 180, "node 3 back in the cluster")


def _whole(node: Node, size: int) -> bool:
    status = json.loads(node.ctl("cluster_status", "--formatter", "json"))
    return len(status.get("running_nodes", [])) == size and not status.get("partitions")


def test_consumer_timeout_returns_a_message_held_too_long_by_a_quorum_consumer(
    cluster: Cluster,
) -> None:
    # Given node 1 with a 2 s consumer_timeout, checked every second (30 min and 1 min by
    # default: too long for a test; new channels read both when they open)
    node = cluster.nodes[0]
    vhost = cluster.add_vhost()
    url = node.url(vhost)
    _declare_queues(url)
    settings = {"consumer_timeout": (2000, 1_800_000), "channel_tick_interval": (1000, 60_000)}
    for key, (short, _default) in settings.items():
        node.ctl("eval", f"application:set_env(rabbit, {key}, {short}).")
    try:
        broker = TypedQueuesBroker(
            queue_type="quorum", max_crashes=3, url=url, confirm_delivery=True, middleware=[]
        )
        broker.enqueue(dramatiq.Message("rollup", "rollup_tick", (), {}, {}))
        broker.close()
        deliveries: list[bool] = []
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            channel.basic_consume(
                "rollup", lambda _c, method, _p, _b: deliveries.append(method.redelivered)
            )

            # When the consumer holds the message without acking it past the timeout
            def closed() -> bool:
                connection.process_data_events(time_limit=0.5)
                return not channel.is_open

            wait_until(closed, 120, "the broker to close the channel")
            # Then the broker closed the channel and the message is ready again, redelivered
            again = connection.channel()
            method, _properties, _body = again.basic_get("rollup", auto_ack=True)
        assert deliveries == [False]
        assert method is not None and method.redelivered
    finally:
        for key, (_short, default) in settings.items():
            node.ctl("eval", f"application:set_env(rabbit, {key}, {default}).")
