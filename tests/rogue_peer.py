"""A hand-driven internode client for tests and the fuzzer: speaks the handshake of
node/peerauth.py with whatever secret, ids and bytes a test chooses."""

from __future__ import annotations

import socket
import struct
from typing import Any

import msgpack

from node.peerauth import Channel, Handshake, _mac

HEADER = struct.Struct(">I")


def frame_bytes(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def read_one(sock: socket.socket) -> bytes | None:
    """One frame's payload, or None when the peer closed the connection."""
    head = _exactly(sock, 4)
    if head is None:
        return None
    return _exactly(sock, HEADER.unpack(head)[0])


def _exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except (ConnectionResetError, TimeoutError):
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


class RoguePeer:
    """A TCP connection to a node's peer port, claiming to be `claim` (a member id)."""

    def __init__(self, addr: tuple[str, int], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(addr, timeout)
        self.sock.settimeout(timeout)
        self.channel: Channel | None = None
        self.claim = "n2"
        self.next_id = 1

    def handshake(self, secret: str, cluster: str, claim: str, target: str) -> bool:
        """True when the node accepted us (it answered a ping afterwards)."""
        self.claim = claim
        hs = Handshake(secret, cluster, claim)
        hello, nonce = hs.hello(target)
        self.send_raw(msgpack.packb(hello, use_bin_type=True))
        got = read_one(self.sock)
        if got is None:
            return False
        challenge = msgpack.unpackb(got, raw=False)
        # with a wrong secret the node's proof does not verify for us either: answer anyway,
        # with our own (wrong) MAC, to see the node refuse it
        try:
            reply, self.channel = hs.answer_challenge(target, nonce, challenge)
        except ValueError:
            t = hs._transcript(claim, target, nonce, challenge[2])
            reply = ["auth", _mac(secret.encode(), b"C", t)]
        self.send_raw(msgpack.packb(reply, use_bin_type=True))
        return self.request("ping", None) is not None

    def send_raw(self, payload: bytes) -> None:
        self.sock.sendall(frame_bytes(payload))

    def sealed(self, kind: str, body: Any, sender: str | None = None) -> bytes:
        """The bytes of one request frame (header included), sealed by the channel if any."""
        rid, self.next_id = self.next_id, self.next_id + 1
        payload = msgpack.packb([0, rid, sender or self.claim, kind, body], use_bin_type=True)
        if self.channel is not None:
            payload = self.channel.seal(payload)
        return frame_bytes(payload)

    def request(self, kind: str, body: Any, sender: str | None = None) -> Any:
        """Send a request; its reply frame (decoded) or None if the node closed on us."""
        self.sock.sendall(self.sealed(kind, body, sender))
        return self.reply()

    def reply(self) -> Any:
        got = read_one(self.sock)
        if got is None:
            return None
        if self.channel is not None:
            got = self.channel.open(got)
        return msgpack.unpackb(got, raw=False)

    def closed(self) -> bool:
        """True when the node hung up (what it does to a peer that fails)."""
        self.sock.settimeout(10)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return True

    def close(self) -> None:
        self.sock.close()
