"""The endpoint host's connections send small responses at once: TCP_NODELAY on every accepted
connection (without it the header and body writes of a response wait for the client's delayed ACK,
about 40 ms on every cheap request; bench.endpoint's added_p50_ms caught it)."""

from __future__ import annotations

import asyncio
import socket

from infra.local.sagemaker.host.server import listening_socket


def test_connections_on_the_hosts_socket_get_tcp_nodelay() -> None:
    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Record(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Record, sock=listening_socket("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            value = await asyncio.wait_for(seen, 10)
        server.close()
        return value

    assert asyncio.run(accepted_nodelay()) != 0
