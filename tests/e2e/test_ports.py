"""Ports of a restarted server's own: out of the ephemeral range, claimed across processes."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.ports import bindable, ephemeral_range, server_port


def test_a_server_port_is_free_and_below_the_range_connections_draw_from() -> None:
    port = server_port(span=10)
    assert port + 9 < ephemeral_range()[0]
    assert all(bindable(port + i) for i in range(10))


def test_another_process_cannot_claim_a_block_this_one_holds() -> None:
    port = server_port()
    claim_again = f"from tests.ports import _claim; print(_claim({port}))"
    answer = subprocess.run(
        [sys.executable, "-c", claim_again], capture_output=True, text=True, timeout=60
    )
    assert answer.stdout.strip() == "False", answer.stderr


def test_a_port_in_use_is_not_bindable_even_with_reuseaddr() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not bindable(listener.getsockname()[1], reuse=True)


def test_a_connection_closed_on_a_port_keeps_a_listener_off_it() -> None:
    # Given a client connection whose local port the kernel drew from the ephemeral range
    with socket.socket() as target:
        target.bind(("127.0.0.1", 0))
        target.listen()
        client = socket.create_connection(target.getsockname())
        port = client.getsockname()[1]
        accepted, _ = target.accept()
        # When the client closes first (its side waits in TIME_WAIT)
        client.close()
        accepted.close()
        # Then a listener cannot bind that port, even with SO_REUSEADDR: what kept a
        # restarted cluster node off a port free_port() had given it (issue 19)
        assert ephemeral_range()[0] <= port <= ephemeral_range()[1]
        assert not bindable(port, reuse=True)
