"""The internode transport over real TCP: requests, timeouts, garbage, drop_from."""

from __future__ import annotations

import asyncio
import logging
import struct

import msgpack
import pytest
from nodeproc import free_ports

from node.transport import PeerError, TcpTransport

LOG = logging.getLogger("test")
HOST = "127.0.0.1"


async def pair() -> tuple[TcpTransport, TcpTransport]:
    pa, pb = free_ports([HOST, HOST])  # distinct: both bound until both are chosen
    a = TcpTransport("a", HOST, pa, {"b": (HOST, pb)}, LOG, max_frame=4096)
    b = TcpTransport("b", HOST, pb, {"a": (HOST, pa)}, LOG, max_frame=4096)

    async def echo(sender: str, kind: str, body: object) -> object:
        if kind == "sleep":
            await asyncio.sleep(float(body))
        if kind == "boom":
            raise ValueError("boom")
        return [sender, kind, body]

    a.set_handler(echo)
    b.set_handler(echo)
    await a.start()
    await b.start()
    return a, b


def run(coro_fn) -> None:
    async def main() -> None:
        a, b = await pair()
        try:
            await coro_fn(a, b)
        finally:
            await a.close()
            await b.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_request_reply_and_many_in_flight() -> None:
    async def body(a: TcpTransport, b: TcpTransport) -> None:
        assert await a.request("b", "hi", {"x": b"\x00"}, 1) == ["a", "hi", {"x": b"\x00"}]
        replies = await asyncio.gather(*(a.request("b", "n", i, 2) for i in range(300)))
        assert [r[2] for r in replies] == list(range(300))

    run(body)


def test_timeout_error_and_unreachable() -> None:
    async def body(a: TcpTransport, b: TcpTransport) -> None:
        with pytest.raises(PeerError) as e:
            await a.request("b", "sleep", 1.0, 0.1)
        assert e.value.reason == "timeout" and e.value.maybe_delivered
        with pytest.raises(PeerError) as e:
            await a.request("b", "boom", None, 1)
        assert e.value.reason == "remote" and "boom" in e.value.detail
        await b.close()
        await asyncio.sleep(0.05)
        with pytest.raises(PeerError) as e:
            await a.request("b", "hi", None, 1)
        assert e.value.reason in ("unreachable", "lost")

    run(body)


def test_nothing_stays_pending_after_replies_timeouts_and_late_replies() -> None:
    """A request's entry (its future and its timeout) leaves with its reply or its timeout, on
    the future path (`send`) as on `request`; a reply that comes after its timeout is dropped
    and the connection goes on serving."""
    async def body(a: TcpTransport, b: TcpTransport) -> None:
        await a.request("b", "hi", None, 1)  # connected: `send` takes the future path
        out = a._out["b"]
        replies = await asyncio.gather(*(a.send("b", "n", i, 1) for i in range(50)))
        assert [r[2] for r in replies] == list(range(50))
        assert out.pending == {}
        with pytest.raises(PeerError) as e:
            await a.send("b", "sleep", 0.3, 0.05)
        assert e.value.reason == "timeout"
        assert out.pending == {}
        await asyncio.sleep(0.4)  # the late reply arrives, finds no entry, is dropped
        assert out.pending == {}
        assert (await a.send("b", "hi", None, 1))[0] == "a"
        assert out.pending == {}

    run(body)


def test_drop_from_discards_frames_like_a_firewall() -> None:
    async def body(a: TcpTransport, b: TcpTransport) -> None:
        b.set_drop_from(["a"])
        with pytest.raises(PeerError) as e:
            await a.request("b", "hi", None, 0.2)
        assert e.value.reason == "timeout"
        b.set_drop_from([])
        assert (await a.request("b", "hi", None, 1))[0] == "a"

    run(body)


@pytest.mark.parametrize("garbage", [
    b"\xff\xff\xff\xff" + b"x" * 16,  # oversized length
    struct.pack(">I", 3) + b"\xc1\xc1\xc1",  # undecodable msgpack
    struct.pack(">I", 1) + msgpack.packb(7),  # not a frame
    b"GET / HTTP/1.1\r\n\r\n",
])
def test_garbage_closes_that_connection_only(garbage: bytes) -> None:
    async def body(a: TcpTransport, b: TcpTransport) -> None:
        reader, writer = await asyncio.open_connection(HOST, b.port)
        writer.write(garbage)
        await writer.drain()
        # the node closes the bad connection ...
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        # ... and keeps serving others
        assert (await a.request("b", "hi", 1, 1))[2] == 1

    run(body)
