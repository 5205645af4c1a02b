"""A second loopback HTTP server playing another origin, recording every request it gets.

It answers like an empty GitHub search, so a client that wrongly follows a link there
would carry on and, without the origin check, hand it the token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

EMPTY_SEARCH = json.dumps({"total_count": 0, "incomplete_results": False, "items": []}).encode()


class _Recorder(BaseHTTPRequestHandler):
    server: ForeignServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.received.append({"path": self.path, "headers": dict(self.headers.items())})
        self.send_response(200)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(EMPTY_SEARCH)))
        self.end_headers()
        self.wfile.write(EMPTY_SEARCH)

    def log_message(self, format: str, *args: object) -> None:
        pass


class ForeignServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.received: list[dict[str, object]] = []


class ForeignHost:
    """The running server: its URL and what it received."""

    def __init__(self, server: ForeignServer) -> None:
        self._server = server

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{cast(str, host)}:{port}"

    @property
    def received(self) -> list[dict[str, object]]:
        return list(self._server.received)


@contextmanager
def foreign_host() -> Iterator[ForeignHost]:
    server = ForeignServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ForeignHost(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
