"""A three-node RabbitMQ cluster of the tests' own, from Debian's rabbitmq-server.

Each node has its own node name, AMQP and distribution ports, data and log directories;
they share an Erlang cookie through the HOME every node and every rabbitmqctl call gets.
The machine's own node is never touched: different names, ports, cookie and files.

`three_nodes` puts them on loopback. `three_nodes_apart` puts each node in a network
namespace of its own, linked to a private bridge (no route leaves the machine), so one
node can be cut off from the others and from the clients: a network partition.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.private_services import RABBITMQ_BIN, RabbitNode
from tests.ports import server_port
from tests.services import unavailable

# The scenarios' results, one line each, printed at the end of the session.
TABLE: list[str] = []
TABLE_HEADER = (
    f"{'cluster scenario':<44} {'expected':>8} {'stored':>6} {'lost':>4} "
    f"{'duplicated':>10} {'recover_s':>10}"
)
# A node boots in ~10 s alone; on two busy shared cores it can take several times that.
BOOT_TIMEOUT_S = 180
# A node's distribution port and, above it, the ports its rabbitmqctl calls use.
DIST_SPAN = 10


@dataclass
class Node(RabbitNode):
    name: str
    amqp_port: int
    dist_port: int
    home: Path
    ip: str = "127.0.0.1"
    # The network namespace the node lives in; None: the machine's own, on loopback.
    netns: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    boot_timeout_s = BOOT_TIMEOUT_S

    @property
    def ports(self) -> tuple[int, ...]:
        # In a namespace of its own, nothing else can take them (nor can we look there).
        return () if self.netns else (self.amqp_port, self.dist_port)

    @property
    def base(self) -> Path:
        return self.home / self.name.split("@")[0]

    @property
    def console_log(self) -> Path:
        return self.base / "console.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        if self.netns:
            # Debian's rabbitmq-env.conf pins epmd and distribution to 127.0.0.1, which
            # the other namespaces cannot reach; nodes named by address need long names.
            env.update(
                RABBITMQ_CONF_ENV_FILE=str(self.home / "rabbitmq-env.conf"),
                RABBITMQ_USE_LONGNAME="true",
            )
        env.update(
            HOME=str(self.home),
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_NODE_IP_ADDRESS=self.ip,
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_CONFIG_FILE=str(self.home / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.home / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.base / "pid"),
            # rabbitmqctl's own distribution port: away from the machine node's range.
            RABBITMQ_CTL_DIST_PORT_MIN=str(self.dist_port + 1),
            RABBITMQ_CTL_DIST_PORT_MAX=str(self.dist_port + DIST_SPAN - 1),
        )
        return env

    def url(self, vhost: str) -> str:
        return f"amqp://guest:guest@{self.ip}:{self.amqp_port}/{vhost}"

    def command(self, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *args] if self.netns else args

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Cluster:
    nodes: list[Node]
    bridge: Bridge | None = None

    def url(self, vhost: str, order: list[Node] | None = None) -> str:
        """BROKER_URL listing every node, `;`-separated, in `order` (the first is tried first)."""
        return ";".join(node.url(vhost) for node in order or self.nodes)

    def running(self) -> Node:
        return next(node for node in self.nodes if node.running)

    def add_vhost(self) -> str:
        vhost = f"cluster_{uuid.uuid4().hex[:8]}"
        self.running().open_vhost(vhost)
        return vhost

    def queue_members(self, vhost: str) -> dict[str, tuple[str, int]]:
        """Each quorum queue's leader and number of members."""
        out = self.running().ctl(
            "list_queues", "-p", vhost, "name", "leader", "members", "--no-table-headers"
        )
        found = {}
        for line in out.splitlines():
            name, leader, *members = line.split()
            found[name] = (leader, len(" ".join(members).split(",")))
        return found

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def restart(self, node: Node) -> None:
        node.launch()
        node.await_startup()


CONFIG = """\
loopback_users = none
cluster_partition_handling = pause_minority
log.file.level = warning
"""


@contextmanager
def three_nodes(home: Path) -> Iterator[Cluster]:
    """Start three nodes on loopback, join them into one cluster; stop them at the end."""
    _prepare(home)
    host = socket.gethostname().split(".")[0]
    tag = uuid.uuid4().hex[:6]
    # Ports of their own: the scenarios stop and kill nodes and start them again on them.
    nodes = [
        Node(f"tp{tag}n{i}@{host}", server_port(), server_port(span=DIST_SPAN), home)
        for i in (1, 2, 3)
    ]
    with _joined(nodes) as cluster:
        yield cluster


@contextmanager
def three_nodes_apart(home: Path) -> Iterator[Cluster]:
    """Three nodes, each in a network namespace of its own on a private bridge."""
    if shutil.which("ip") is None or _run(["ip", "netns", "list"]).returncode != 0:
        unavailable("network namespaces (`ip netns`, as root)")
    _prepare(home)
    # Faster partition detection than the 60 s default, for a bounded test.
    with (home / "rabbitmq.conf").open("a") as config:
        config.write("net_ticktime = 10\n")
    (home / "rabbitmq-env.conf").write_text("")
    with Bridge() as bridge:
        nodes = [
            Node(
                f"tp{bridge.tag}n{i}@{bridge.address(i)}",
                5672,
                25672,
                home,
                ip=bridge.address(i),
                netns=bridge.attach(i),
            )
            for i in (1, 2, 3)
        ]
        with _joined(nodes) as cluster:
            cluster.bridge = bridge
            yield cluster


def _prepare(home: Path) -> None:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists() or shutil.which("erl") is None:
        unavailable("Debian's rabbitmq-server (to start a cluster of the tests' own)")
    home.mkdir(parents=True, exist_ok=True)
    cookie = home / ".erlang.cookie"
    cookie.write_text(uuid.uuid4().hex.upper())
    cookie.chmod(0o400)
    (home / "rabbitmq.conf").write_text(CONFIG)
    (home / "enabled_plugins").write_text("[].\n")


@contextmanager
def _joined(nodes: list[Node]) -> Iterator[Cluster]:
    """Start `nodes`, join the others to the first; stop them all at the end."""
    try:
        for node in nodes:
            node.launch()
        for node in nodes:
            node.await_startup()
        for node in nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", nodes[0].name)
            node.ctl("start_app")
            node.await_startup()
        yield Cluster(nodes)
    finally:
        for node in nodes:
            node.stop()


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def _must(args: list[str]) -> None:
    done = _run(args)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")


class Bridge:
    """A private /24 on a bridge of its own; each node's namespace gets a veth link to it.

    `cut(i)` takes node i's link down: its peers and its clients lose it at once, and it
    loses them (no reset, no goodbye: packets simply stop). `heal(i)` brings it back.
    """

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:4]
        self.network = _free_network()
        self.name = f"tp{self.tag}br"
        self.namespaces: list[str] = []

    def address(self, i: int) -> str:
        return str(self.network.network_address + i)

    def __enter__(self) -> Bridge:
        gateway = f"{self.network.network_address + 254}/{self.network.prefixlen}"
        _must(["ip", "link", "add", self.name, "type", "bridge"])
        _must(["ip", "addr", "add", gateway, "dev", self.name])
        _must(["ip", "link", "set", self.name, "up"])
        return self

    def link(self, i: int) -> str:
        return f"tp{self.tag}v{i}"

    def attach(self, i: int) -> str:
        netns = f"tp{self.tag}n{i}"
        inside = ["ip", "netns", "exec", netns, "ip"]
        _must(["ip", "netns", "add", netns])
        self.namespaces.append(netns)
        _must(
            [
                "ip",
                "link",
                "add",
                self.link(i),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                netns,
            ]
        )
        _must(["ip", "link", "set", self.link(i), "master", self.name])
        _must(["ip", "link", "set", self.link(i), "up"])
        _must(
            [*inside, "addr", "add", f"{self.address(i)}/{self.network.prefixlen}", "dev", "eth0"]
        )
        _must([*inside, "link", "set", "eth0", "up"])
        _must([*inside, "link", "set", "lo", "up"])
        return netns

    def cut(self, i: int) -> None:
        _must(["ip", "link", "set", self.link(i), "down"])

    def heal(self, i: int) -> None:
        _must(["ip", "link", "set", self.link(i), "up"])

    def __exit__(self, *exc: object) -> None:
        for netns in self.namespaces:
            # epmd (started by the node) lives on in the namespace: end it, then the namespace.
            pids = _run(["ip", "netns", "pids", netns]).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _run(["ip", "netns", "del", netns])
        _run(["ip", "link", "del", self.name])


def _free_network() -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 no route of this machine uses yet."""
    routes = _run(["ip", "-4", "route", "show"]).stdout
    taken = [
        ipaddress.ip_network(line.split()[0])
        for line in routes.splitlines()
        if "/" in line.split()[0]
    ]
    while True:
        network = ipaddress.ip_network(
            f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
        )
        if not any(network.overlaps(other) for other in taken):
            return network
