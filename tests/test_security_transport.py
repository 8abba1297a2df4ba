"""The TCP transport in one process: an oversized request or reply fails alone, without closing
the connection other requests share (issue 17), with and without authentication; and the
frame MAC itself (node/peerauth.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nodeproc import free_ports

from node.peerauth import AuthError, Handshake
from node.transport import PeerError, TcpTransport

HOST = "127.0.0.1"
LOG = logging.getLogger("test")


async def pair(secret: str) -> tuple[TcpTransport, TcpTransport]:
    pa, pb = free_ports([HOST, HOST])
    a = TcpTransport("a", HOST, pa, {"b": (HOST, pb)}, LOG, max_frame=4096, secret=secret)
    b = TcpTransport("b", HOST, pb, {"a": (HOST, pa)}, LOG, max_frame=4096, secret=secret)

    async def handler(sender: str, kind: str, body: object) -> object:
        if kind == "big":
            return b"y" * 5000
        return [sender, kind, body]

    a.set_handler(handler)
    b.set_handler(handler)
    await a.start()
    await b.start()
    return a, b


@pytest.mark.parametrize("secret", ["", "a-secret-of-sixteen+"])
def test_an_oversized_frame_fails_alone(secret: str) -> None:
    async def main() -> None:
        a, b = await pair(secret)
        try:
            assert await a.request("b", "echo", 1, 5) == ["a", "echo", 1]
            writer = a._out["b"].writer
            with pytest.raises(PeerError) as e:
                await a.request("b", "echo", b"x" * 5000, 5)
            assert e.value.reason == "too_large" and not e.value.maybe_delivered
            with pytest.raises(PeerError) as e:
                await a.request("b", "big", None, 5)
            assert e.value.reason == "remote" and "max_frame_bytes" in e.value.detail
            # the same connection still carries the next request
            assert await a.request("b", "echo", 2, 5) == ["a", "echo", 2]
            assert a._out["b"].writer is writer and not writer.is_closing()
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_channels_refuse_altered_replayed_and_reflected_frames() -> None:
    left, right = Handshake("s" * 16, "c", "n1"), Handshake("s" * 16, "c", "n2")
    hello, nonce = left.hello("n2")
    challenge, transcript, sender = right.challenge(hello, {"n1"})
    auth, to_n2 = left.answer_challenge("n2", nonce, challenge)
    to_n1 = right.verify_auth(auth, transcript, sender)
    sealed = to_n2.seal(b"payload")
    assert to_n1.open(sealed) == b"payload"
    with pytest.raises(AuthError):
        to_n1.open(sealed)  # replayed
    second = bytearray(to_n2.seal(b"payload"))
    second[0] ^= 1
    with pytest.raises(AuthError):
        to_n1.open(bytes(second))  # altered
    with pytest.raises(AuthError):
        to_n2.open(to_n2.seal(b"x"))  # reflected back to its sender
    with pytest.raises(AuthError):
        right.verify_auth(["auth", b"\0" * 32], transcript, sender)
