"""What crosses the wire to PostgreSQL: a loopback proxy that counts, per client connection,
round trips and transactions, read off the protocol itself.

- A round trip is a burst of bytes from the client answered by bytes from the server:
  statements pipelined together (BEGIN, a statement, COMMIT, one Sync) are one.
- A transaction is a COMMIT or a ROLLBACK the server says it completed (a CommandComplete
  message with that tag), wherever it stands in a pipeline.

Connections must not negotiate SSL or GSS encryption (`sslmode=disable`,
`gssencmode=disable`: `WireCounter.url` adds them), so the server's bytes are plain
protocol messages from the first: a type byte, then a length that counts itself.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from tests.processes import free_port

# Bytes copied per read.
CHUNK = 65536
# The server's CommandComplete message, and the tags of one that ends a transaction.
COMMAND_COMPLETE = ord("C")
ENDS_TRANSACTION = (b"COMMIT\x00", b"ROLLBACK\x00")


@dataclass
class Conversation:
    """One client connection's counts, and where its server stream's framing stands."""

    round_trips: int = 0
    transactions: int = 0
    client_spoke_last: bool = False
    pending: bytearray = field(default_factory=bytearray)

    def client_sent(self) -> None:
        self.client_spoke_last = True

    def server_sent(self, data: bytes) -> None:
        if self.client_spoke_last:
            self.round_trips += 1
            self.client_spoke_last = False
        self.pending += data
        while len(self.pending) >= 5:
            kind, length = self.pending[0], struct.unpack("!i", self.pending[1:5])[0]
            if len(self.pending) < 1 + length:
                break
            if kind == COMMAND_COMPLETE and bytes(self.pending[5 : 1 + length]) in ENDS_TRANSACTION:
                self.transactions += 1
            del self.pending[: 1 + length]


class WireCounter:
    """`with WireCounter(5432) as wire:` connect through `wire.url(url)`; `wire.of(port)`
    is the conversation of the client whose local port is `port`."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._conversations: dict[int, Conversation] = {}
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))

    def url(self, url: str) -> str:
        """A SQLAlchemy or libpq URL of the target, through this proxy, unencrypted."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        query = "&".join(filter(None, [parts.query, "sslmode=disable&gssencmode=disable"]))
        return urlunsplit(parts._replace(netloc=netloc, query=query))

    def of(self, client_port: int) -> Conversation:
        with self._lock:
            return self._conversations.setdefault(client_port, Conversation())

    def totals(self) -> Counter[str]:
        with self._lock:
            conversations = list(self._conversations.values())
        return Counter(
            round_trips=sum(c.round_trips for c in conversations),
            transactions=sum(c.transactions for c in conversations),
        )

    def __enter__(self) -> WireCounter:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, (_, port) = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.target)
            conversation = self.of(port)
            threading.Thread(
                target=self._pump, args=(client, server, conversation, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, conversation, False), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, talk: Conversation, from_client: bool
    ) -> None:
        try:
            while data := source.recv(CHUNK):
                # Counted before forwarding: by the time the client reads an answer, it is
                # already counted.
                with self._lock:
                    if from_client:
                        talk.client_sent()
                    else:
                        talk.server_sent(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def local_port(dbapi_connection: object) -> int:
    """The client-side port of a psycopg connection's socket."""
    fd = dbapi_connection.pgconn.socket  # type: ignore[attr-defined]
    with socket.socket(fileno=socket.dup(fd)) as sock:
        return int(sock.getsockname()[1])
