"""The client's outcome rules against a real socket: a write whose connection drops after the
request was sent is unknown (`info`), never `fail`, even when the node is gone by then."""

import asyncio

import pytest

from harness.client import NodeClient, OpFailed, OpUnknown, client_session


async def _node_that_dies_mid_request() -> tuple[asyncio.Server, list[bytes], str]:
    """A listener on loopback that takes one request, stops listening, and drops the connection
    without answering: what a node killed with -9 mid-request looks like to the client."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        server.close()  # nothing listens any more: a resend would be refused
        writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, received, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("method", ["put", "delete"])
def test_dropped_write_is_unknown_and_sent_once(method: str) -> None:
    async def scenario() -> None:
        server, received, url = await _node_that_dies_mid_request()
        async with client_session() as session:
            client = NodeClient(session, "n1", url, timeout_s=5)
            call = (client.put("k", "v", None) if method == "put"
                    else client.delete("k", None))
            with pytest.raises(OpUnknown):
                await call
        await server.wait_closed()
        assert len(received) == 1, "the write must not be sent twice"

    asyncio.run(scenario())


def test_refused_connection_is_a_certain_failure() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        async with client_session() as session:
            client = NodeClient(session, "n1", f"http://127.0.0.1:{port}", timeout_s=5)
            with pytest.raises(OpFailed):
                await client.put("k", "v", None)

    asyncio.run(scenario())
