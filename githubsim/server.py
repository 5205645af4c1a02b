"""The HTTP edge: a stdlib threading server that turns sockets into `Request`s."""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import parse_qsl, urlsplit

from githubsim.control import PREFIX, answer_control
from githubsim.github_api import answer_github
from githubsim.messages import Request, Response
from githubsim.state import SimState


class SimServer(ThreadingHTTPServer):
    """Carries the shared state to the handlers; threads die with the process."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SimState) -> None:
        super().__init__(address, SimHandler)
        self.state = state

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """Clients that time out (the `stall` fault) hang up on us; that is expected."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class SimHandler(BaseHTTPRequestHandler):
    # Keep-alive makes benchmark clients (requests.Session) much faster.
    protocol_version = "HTTP/1.1"
    server: SimServer

    def do_GET(self) -> None:
        self.dispatch()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_GET

    def read_request(self) -> Request:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = parse_qsl(parts.query, keep_blank_values=True)
        # HTTPMessage: a Mapping with case-insensitive lookups, as Request expects.
        headers = cast(Mapping[str, str], self.headers)
        return Request(self.command, parts.path, query, headers, body)

    def dispatch(self) -> None:
        request = self.read_request()
        state = self.server.state
        if request.path.startswith(PREFIX):
            self.send(answer_control(state, request))
            return
        endpoint, response = answer_github(state, request)
        state.log.record(endpoint, response.status, request.path, request.headers)
        self.send(response)

    def send(self, response: Response) -> None:
        if response.abort == "reset":
            self.reset_connection()
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.abort == "unannounced":
            self.send_header("connection", "close")
            self.close_connection = True
        elif response.status != 304:
            self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if response.abort == "truncate":
            self.wfile.write(response.body[: len(response.body) // 2])
            self.close_connection = True
            return
        if self.command != "HEAD" and response.status != 304:
            self.wfile.write(response.body)

    def reset_connection(self) -> None:
        """Close with an RST (linger 0), as a crashing proxy does, and answer nothing."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def log_message(self, format: str, *args: object) -> None:
        """Silent: request lines could carry tokens in query strings, headers certainly do."""
