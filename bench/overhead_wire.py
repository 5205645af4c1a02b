"""What a system asks of PostgreSQL, counted from outside its processes, for
bench/overhead.py's measuring pass.

Round trips: a loopback proxy between the processes and PostgreSQL sees every byte; one
round trip is a burst from the client answered by the server (a pipelined batch of
statements is one round trip, as it costs the client one wait). Statements: PostgreSQL's
own log, with `log_statement = 'all'` set on the system's database only while the pass
runs (a setting of that database: the shared server's configuration is not touched). The
log line's `[pid]` tells whose backend ran a statement.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from tests.tcpproxy import TcpProxy

# A statement as log_statement logs it: simple protocol, or an extended protocol Execute.
STATEMENT_LINE = re.compile(
    r"^(?P<prefix>.*?)LOG:  (?:statement|execute [^:]*): (?P<text>.*)$", re.M
)
# The backend's pid in the default log_line_prefix ('%m [%p] %q%u@%d ').
PREFIX_PID = re.compile(r"\[(\d+)\]")


class _Tap:
    """A socket whose reads are reported before the proxy forwards them."""

    def __init__(self, sock: socket.socket, saw: Callable[[], None]) -> None:
        self._sock, self._saw = sock, saw

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        if data:
            self._saw()
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def __hash__(self) -> int:
        return hash(self._sock)

    def __eq__(self, other: object) -> bool:
        return self._sock is (other._sock if isinstance(other, _Tap) else other)


class CountingProxy(TcpProxy):
    """A TCP proxy to PostgreSQL that counts round trips and connections."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.round_trips = 0
        self.connections = 0
        self.upstream_ports: set[int] = set()
        self._asked: set[socket.socket] = set()  # clients whose burst awaits its answer
        self._counting = threading.Lock()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        answers = source.getpeername() == self.target
        client = sink if answers else source
        if not answers:
            with self._counting:
                self.connections += 1
                self.upstream_ports.add(sink.getsockname()[1])
        saw = (lambda: self._answered(client)) if answers else (lambda: self._asks(client))
        super()._pipe(_Tap(source, saw), sink)  # type: ignore[arg-type]

    def _asks(self, client: socket.socket) -> None:
        with self._counting:
            self._asked.add(client)

    def _answered(self, client: socket.socket) -> None:
        with self._counting:
            if client in self._asked:
                self._asked.discard(client)
                self.round_trips += 1


@contextmanager
def statements_logged(admin_dsn: str, database: str) -> Iterator[None]:
    """log_statement = 'all' for sessions that start in `database` meanwhile."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{database}\" SET log_statement = 'all'")
    try:
        yield
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" RESET log_statement')


class ServerLog:
    """PostgreSQL's log file, read through the server (pg_read_binary_file)."""

    def __init__(self, admin_dsn: str) -> None:
        self._dsn = admin_dsn
        self.path = self._find()

    def _find(self) -> str:
        with psycopg.connect(self._dsn, autocommit=True) as admin:
            current = admin.execute("SELECT pg_current_logfile()").fetchone()
            if current and current[0]:
                return str(current[0])  # logging_collector on
            if "OVERHEAD_PG_LOG" in os.environ:
                return os.environ["OVERHEAD_PG_LOG"]
            pid_file = admin.execute("SELECT pg_read_file('postmaster.pid')").fetchone()
        # Without the collector the log is the postmaster's stderr (Debian's pg_ctlcluster).
        assert pid_file is not None
        return os.readlink(f"/proc/{pid_file[0].split()[0]}/fd/2")

    def size(self) -> int:
        with psycopg.connect(self._dsn, autocommit=True) as admin:
            row = admin.execute("SELECT (pg_stat_file(%s)).size", (self.path,)).fetchone()
        assert row is not None
        return int(row[0])

    def statements(self, database: str, since: int) -> dict[int, list[str]]:
        """The statements `database`'s sessions logged after byte `since`, by backend pid,
        in order (each one's first line)."""
        with psycopg.connect(self._dsn, autocommit=True) as admin:
            row = admin.execute(
                "SELECT pg_read_binary_file(%s, %s, (pg_stat_file(%s)).size - %s)",
                (self.path, since, self.path, since),
            ).fetchone()
        assert row is not None
        by_pid: dict[int, list[str]] = {}
        for line in STATEMENT_LINE.finditer(bytes(row[0]).decode(errors="replace")):
            pid = PREFIX_PID.search(line["prefix"])
            if database in line["prefix"] and pid:
                by_pid.setdefault(int(pid[1]), []).append(line["text"])
        return by_pid


def commits(statements: list[str]) -> int:
    """Transactions one session committed: its COMMITs, and each statement it ran outside
    BEGIN ... COMMIT (a transaction of its own, as pg_stat_database counts it)."""
    count, open_ = 0, False
    for text in statements:
        word = text.split(None, 1)[0].upper().rstrip(";") if text.strip() else ""
        if word in ("BEGIN", "START"):
            open_ = True
        elif word in ("COMMIT", "END") or (word == "ROLLBACK" and "TO" not in text.upper()):
            count += word != "ROLLBACK"
            open_ = False
        elif not open_:
            count += 1
    return count


def backend_pids(admin_dsn: str, client_ports: set[int]) -> set[int]:
    """The backends serving connections from these client ports (the proxy's side)."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", (list(client_ports),)
        ).fetchall()
    return {pid for (pid,) in rows}
