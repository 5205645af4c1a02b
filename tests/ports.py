"""Loopback ports that a test's server keeps across its restarts.

`free_port()` takes a port from the kernel's ephemeral range, the range the kernel also
gives every outgoing connection on the machine as its local port. While a server is down
between a stop and a start, any client connection (this suite's or another's) may get the
server's port, and the server cannot listen on it again (EADDRINUSE) until that
connection and its TIME_WAIT (60 s) end. On this shared machine about 900 loopback
connections sit in TIME_WAIT at any moment, so that happened (`make faults`, issue 19: a
cluster node restarted on 38263 could not listen). A port below the ephemeral range is
never given to a connection; a lock file claims it from the other test processes that
pick from the same range.
"""

from __future__ import annotations

import fcntl
import random
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import IO

# Where the claims live: one lock file per block, shared by every test process here.
CLAIMS_DIR = Path(tempfile.gettempdir()) / "taskpipes-ports"
# A claim covers a block of ports, so a server may use a run of them (a RabbitMQ node's
# distribution port and the nine its rabbitmqctl calls use above it).
BLOCK = 16
# The lowest port handed out: clear of the usual fixed ports (5432, 5672, 9090, 15672...).
LOWEST = 20000
# Claims stay open (hence locked) until the process exits: a restart needs the same port.
_claims: list[IO[bytes]] = []


def server_port(span: int = 1) -> int:
    """A port, with the `span - 1` above it, outside the ephemeral range, free now and
    claimed by this process until it exits."""
    assert span <= BLOCK
    blocks = range(LOWEST // BLOCK, ephemeral_range()[0] // BLOCK)
    for block in random.sample(blocks, len(blocks)):
        port = block * BLOCK
        if _claim(port) and all(bindable(port + i) for i in range(span)):
            return port
    raise RuntimeError(f"no free block of {BLOCK} ports below the ephemeral range")


def ephemeral_range() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def _claim(port: int) -> bool:
    CLAIMS_DIR.mkdir(exist_ok=True)
    claim = (CLAIMS_DIR / str(port)).open("ab")
    try:
        fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        claim.close()
        return False
    _claims.append(claim)
    return True


def bindable(port: int, reuse: bool = False) -> bool:
    """Whether a listener could bind 127.0.0.1:port now. With `reuse`, as one with
    SO_REUSEADDR would (RabbitMQ's and Erlang distribution's listeners): its own old
    connections in TIME_WAIT do not stop it, anything else on the port does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse))
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def holders(port: int) -> str:
    """The sockets on local port `port`, with their processes, as `ss` lists them."""
    try:
        listed = subprocess.run(
            ["ss", "-Htanp", f"sport = :{port}"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(ss failed: {exc})"
    return listed.stdout.strip() or "(no socket listed)"
