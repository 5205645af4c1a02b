"""The API's listening socket lets asyncio turn Nagle's algorithm off on every connection.

asyncio sets TCP_NODELAY only on sockets whose protocol says TCP; a socket made with
protocol 0 kept Nagle on, and each answer then waited ~40 ms for the client's delayed ACK.
"""

from __future__ import annotations

import asyncio
import socket

from taskpipes.cli.main import listening_socket


def test_accepted_connections_have_nagle_off() -> None:
    listener = listening_socket("127.0.0.1", 0)
    nodelay: list[int] = []

    async def accept_one() -> None:
        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            nodelay.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listener)
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        while not nodelay:
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(asyncio.wait_for(accept_one(), timeout=10))

    assert nodelay == [1]
