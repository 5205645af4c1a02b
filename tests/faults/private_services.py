"""A RabbitMQ node and a PostgreSQL cluster of a test's own, which it may stop and start.

The machine's own RabbitMQ (5672) and PostgreSQL (5432) serve every other test running
right now, so a scenario that takes a broker or a database away starts a private one: its
own node name, ports, data and log directories under a temporary directory, torn down at
the end. Both are Debian's packaged servers, run the way their packages run them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from tests.ports import bindable, holders, server_port
from tests.queues import POLL_S, wait_until

# RabbitMQ's own scripts, not the /usr/sbin wrappers (those switch to the system node's user
# and home, hence its cookie and its environment file).
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
# Where Debian installs each PostgreSQL major version's server binaries.
POSTGRES_LIB = Path("/usr/lib/postgresql")
# How long a server gets to boot on a busy 2-core machine.
BOOT_TIMEOUT_S = 120
# Launches of a private node before its boot counts as failed.
BOOT_ATTEMPTS = 3
# PostgreSQL refuses to run as root; Debian's package makes this user.
POSTGRES_USER = "postgres"
# How long a stopped or killed node's VM, its epmd name and its ports get to go away.
RELEASE_TIMEOUT_S = 120
# epmd, where each VM registers its node name (the machine's, on loopback).
EPMD = ("127.0.0.1", 4369)


def available() -> str | None:
    """Why private servers cannot run here, or None when they can."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        return f"{RABBITMQ_BIN}/rabbitmq-server (Debian's rabbitmq-server package)"
    if postgres_bin() is None:
        return f"{POSTGRES_LIB}/*/bin/initdb (Debian's postgresql package)"
    return None


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory."""
    versions = sorted(POSTGRES_LIB.glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


class NodeExited(RuntimeError):
    """The node's VM exited before it served."""


class RabbitNode:
    """What every RabbitMQ node of the tests' own does, wherever it lives: boot, answer
    `rabbitmqctl`, die. A node says its name, its environment (`env`), where its console
    output goes (`console_log`) and, if it lives in a network namespace, how a command
    gets there (`command`)."""

    name: str
    proc: subprocess.Popen[bytes] | None = None
    boot_timeout_s: float = BOOT_TIMEOUT_S
    # The process group of the last VM launched (it outlives `proc`, which `stop` clears).
    group: int | None = None

    @property
    def ports(self) -> tuple[int, ...]:
        """The loopback ports the node listens on: its next launch waits for them."""
        return ()

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    @property
    def console_log(self) -> Path:
        raise NotImplementedError

    def command(self, args: list[str]) -> list[str]:
        return args

    def ctl(self, *args: str, timeout: float = BOOT_TIMEOUT_S) -> str:
        """Run `rabbitmqctl -n NODE ARGS`; fail with its output when it fails."""
        result = subprocess.run(
            self.command([str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", self.name, *args]),
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {self.name}: {result.stdout}{result.stderr}"
            )
        return result.stdout

    def launch(self) -> None:
        """Start the node's VM (again, after a stop or a kill, on the same data)."""
        self.await_release()
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        with self.console_log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command([str(RABBITMQ_BIN / "rabbitmq-server")]),
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.group = self.proc.pid

    def await_release(self) -> None:
        """Wait until the previous VM has let go of what a new one needs; fail naming what
        is still held. Its script's exit (all `stop` and `kill` wait for) can come before
        the VM's own, and a VM still registered with epmd or listening makes the new one
        exit at boot (`could_not_start_listener ... eaddrinuse`)."""
        began = time.monotonic()
        first = held = self.still_held()
        while held:
            if time.monotonic() - began > RELEASE_TIMEOUT_S:
                raise RuntimeError(
                    f"{self.name} cannot start again: after {RELEASE_TIMEOUT_S} s, "
                    + "; ".join(held)
                )
            time.sleep(POLL_S)
            held = self.still_held()
        if first:
            print(f"{self.name} waited {time.monotonic() - began:.1f} s for: {'; '.join(first)}")

    def still_held(self) -> list[str]:
        """What a previous VM of this node still holds, one line each."""
        held = []
        if self.group is not None and (pids := live_members(self.group)):
            held.append(f"its previous VM (process group {self.group}) still runs: {pids}")
        if f"name {self.name.split('@')[0]} at port" in epmd_names():
            held.append(f"epmd still lists its name:\n{epmd_names()}")
        for port in self.ports:
            if not bindable(port, reuse=True):
                held.append(f"port {port} is in use:\n{holders(port)}")
        return held

    def await_startup(self) -> None:
        wait_until(self._booted, self.boot_timeout_s, f"RabbitMQ node {self.name} to boot")

    def _booted(self) -> bool:
        # await_startup fails at once until the VM has registered the node with epmd.
        if not self.running:
            tail = self.console_log.read_text(errors="replace")[-3000:]
            raise NodeExited(f"rabbitmq-server exited; the end of {self.console_log}:\n{tail}")
        try:
            self.ctl("await_startup", "--timeout", "30", timeout=40)
        except RuntimeError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL the node: no goodbye to its peers or its clients, nothing flushed."""
        if self.running:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def open_vhost(self, vhost: str) -> None:
        """Add a virtual host `guest` may use."""
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")


def live_members(group: int) -> list[int]:
    """The processes of process group `group` that have not exited (a zombie holds no
    socket and no name)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _parent, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
        except (OSError, ValueError):
            continue  # the process ended while we looked
        if int(pgrp) == group and state != "Z":
            members.append(int(stat.parent.name))
    return members


def epmd_names() -> str:
    """The node names epmd lists ("name N at port P" lines); empty when none answers."""
    try:
        with socket.create_connection(EPMD, timeout=5) as epmd:
            epmd.sendall(b"\x00\x01n")  # NAMES_REQ: a 2-byte length, then 'n'
            reply = b"".join(iter(lambda: epmd.recv(4096), b""))
    except OSError:
        return ""
    return reply[4:].decode(errors="replace")  # after epmd's own port number


class PrivateRabbit(RabbitNode):
    """One RabbitMQ node on loopback ports of its own; `guest` may connect from 127.0.0.1."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="taskpipes-rabbit-"))
        self.name = f"taskpipes-{uuid.uuid4().hex[:8]}@localhost"
        # Ports of its own: it is stopped and started again on them.
        self.port = server_port()
        self.dist_port = server_port()
        self._write_config()

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.dist_port)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def vhost_url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    @property
    def console_log(self) -> Path:
        return self.root / "server.log"

    def _write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # The CLI authenticates with the cookie in $HOME; the node reads the same one.
        cookie = self.root / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex)
        cookie.chmod(0o400)
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            # No disk alarm on a nearly full tmp: an alarm would block every publish.
            "disk_free_limit.absolute = 1MB\n"
        )
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq-env.conf").write_text("")

    def env(self) -> dict[str, str]:
        """The environment of the node and of every rabbitmqctl aimed at it."""
        return {
            **os.environ,
            "HOME": str(self.root),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self) -> None:
        """Boot the node (again, after `stop` or `kill`, on the same data) until it serves.

        A VM that exits while booting is launched again (once seen right after a full
        stop on the loaded machine; the console log it left is printed)."""
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            self.launch()
            try:
                self.await_startup()
                return
            except NodeExited as exc:
                if attempt == BOOT_ATTEMPTS:
                    raise
                print(f"boot attempt {attempt} of {self.name} failed: {exc}")

    def stop(self) -> None:
        """Stop the whole node (the Erlang VM exits), as `systemctl stop` would."""
        if self.proc is None:
            return
        if self.running:
            try:
                self.ctl("stop")
            except RuntimeError:
                self.proc.terminate()
            self.proc.wait(60)
        self.proc = None

    def stop_app(self) -> None:
        """Stop RabbitMQ inside a running VM: every connection is closed, no port listens."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup", "--timeout", str(BOOT_TIMEOUT_S), timeout=BOOT_TIMEOUT_S + 10)

    def add_vhost(self, vhost: str) -> str:
        """A virtual host `guest` may use; returns its URL."""
        self.open_vhost(vhost)
        return self.vhost_url(vhost)

    def __enter__(self) -> PrivateRabbit:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class PrivatePostgres:
    """One PostgreSQL cluster on a loopback port of its own, trust auth for `postgres`."""

    def __init__(self, root: Path | None = None) -> None:
        bin_dir = postgres_bin()
        assert bin_dir is not None, available()
        self.bin = bin_dir
        self.root = Path(root or tempfile.mkdtemp(prefix="taskpipes-postgres-"))
        self.data = self.root / "data"
        # A port of its own: it is stopped and started again on it.
        self.port = server_port()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def _pg(self, *args: str, timeout: float = BOOT_TIMEOUT_S) -> None:
        # As the postgres user when we are root: initdb and postgres refuse to run as root.
        prefix = ["runuser", "-u", POSTGRES_USER, "--"] if os.geteuid() == 0 else []
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {result.stdout}{result.stderr}")

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, POSTGRES_USER)
        self._pg(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            # A throwaway cluster: durability is not what these tests are about.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._pg(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "postgres.log"),
            "-o",
            options,
            "-w",
            "-t",
            str(BOOT_TIMEOUT_S),
            "start",
        )
        wait_until(self._answers, BOOT_TIMEOUT_S, "the private PostgreSQL to answer")

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back open transactions and closes every session, as a shutdown does;
        `immediate` is a crash."""
        self._pg(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> str:
        """A new database; returns its SQLAlchemy URL."""
        with psycopg.connect(self.dsn(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PrivatePostgres:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
