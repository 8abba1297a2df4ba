"""Internode authentication: a mutual challenge-response at connection start, then a MAC and an
implicit sequence number on every frame. Pure computation (no sockets): the TCP transport calls it.

Handshake (each message one length-prefixed msgpack frame, at most HANDSHAKE_MAX bytes):
  connector -> acceptor  ["hello", VERSION, cluster name, connector id, acceptor id, nonce_c]
  acceptor  -> connector ["challenge", acceptor id, nonce_s, HMAC(secret, "S" + transcript)]
  connector -> acceptor  ["auth", HMAC(secret, "C" + transcript)]
where transcript = msgpack([VERSION, cluster, connector id, acceptor id, nonce_c, nonce_s]).
Both sides prove they hold the secret over nonces the other just chose, so a recorded handshake
is useless; the ids and the cluster name are inside the MAC, so a node of another cluster, or a
member claiming another member's id, is refused.

Frames after it: the msgpack payload, then a 32-byte MAC: keyed BLAKE2b(direction key,
seq || payload) (BLAKE2's own MAC mode, RFC 7693 section 2.9: one pass, where HMAC-SHA256 takes
two and costs twice the CPU per frame on the request path). Each direction has its own key
derived from the transcript (so a frame cannot be reflected back, nor replayed on another
connection) and its own counter from 0 (so a frame cannot be replayed, dropped or reordered on
this one without the next MAC failing).

Why not TLS: the nodes need to prove membership of one cluster, not identity to the world; a
shared secret in the cluster file (Riak's Erlang cookie does the same) needs no certificates,
no CA and no clock, works identically on every platform the harness drives, and costs one
BLAKE2b pass per frame. It gives no confidentiality: values cross the wire in clear text.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from typing import Any

import msgpack

VERSION = 2  # 2: frame MACs are keyed BLAKE2b (1: HMAC-SHA256)
NONCE_BYTES = 32
TAG_BYTES = 32
HANDSHAKE_MAX = 4096  # no unauthenticated peer makes this node buffer more than this
_SEQ = struct.Struct(">Q")


class AuthError(ValueError):
    """The peer failed the handshake or sent a frame whose MAC does not verify."""


def _mac(key: bytes, *parts: bytes) -> bytes:
    h = hmac.new(key, digestmod=hashlib.sha256)
    for p in parts:
        h.update(p)
    return h.digest()


def _frame_mac(keyed: Any, seq: int, payload: bytes) -> bytes:
    """BLAKE2b keyed MAC over the sequence number and the payload. `keyed` is the state after
    the key block, hashed once per connection: copying it skips a compression per frame."""
    h = keyed.copy()
    h.update(_SEQ.pack(seq))
    h.update(payload)
    return h.digest()


def _keyed(key: bytes) -> Any:
    return hashlib.blake2b(key=key, digest_size=TAG_BYTES)


class Channel:
    """One authenticated connection's frame sealing and opening (one per direction pair)."""

    __slots__ = ("send_mac", "recv_mac", "send_seq", "recv_seq", "peer")

    def __init__(self, send_key: bytes, recv_key: bytes, peer: str) -> None:
        self.send_mac, self.recv_mac = _keyed(send_key), _keyed(recv_key)
        self.send_seq = self.recv_seq = 0
        self.peer = peer

    def seal(self, payload: bytes) -> bytes:
        tag = _frame_mac(self.send_mac, self.send_seq, payload)
        self.send_seq += 1
        return payload + tag

    def open(self, data: bytes) -> bytes:
        if len(data) < TAG_BYTES:
            raise AuthError("frame shorter than its MAC")
        payload, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
        want = _frame_mac(self.recv_mac, self.recv_seq, payload)
        if not hmac.compare_digest(tag, want):
            raise AuthError(f"frame #{self.recv_seq} fails its MAC (forged, altered, replayed "
                            "or out of order)")
        self.recv_seq += 1
        return payload


class Handshake:
    """Both sides' steps, given the cluster's secret and name."""

    def __init__(self, secret: str, cluster: str, self_id: str) -> None:
        self.secret = secret.encode()
        self.cluster = cluster
        self.self_id = self_id

    # ---- the connecting side ----

    def hello(self, peer: str) -> tuple[list, bytes]:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return ["hello", VERSION, self.cluster, self.self_id, peer, nonce], nonce

    def answer_challenge(self, peer: str, nonce_c: bytes, msg: object) -> tuple[list, Channel]:
        if (not isinstance(msg, list) or len(msg) != 4 or msg[0] != "challenge"
                or not isinstance(msg[2], bytes) or not isinstance(msg[3], bytes)):
            raise AuthError("expected a challenge")
        if msg[1] != peer:
            raise AuthError(f"the peer says it is {msg[1]!r}, not {peer!r}")
        t = self._transcript(self.self_id, peer, nonce_c, msg[2])
        if not hmac.compare_digest(msg[3], _mac(self.secret, b"S", t)):
            raise AuthError("the peer does not hold the cluster secret")
        return ["auth", _mac(self.secret, b"C", t)], self._channel(t, peer, connector=True)

    # ---- the accepting side ----

    def challenge(self, msg: object, known: set[str]) -> tuple[list, bytes, str]:
        """The challenge for a hello; returns it, the transcript and the connector's id."""
        if (not isinstance(msg, list) or len(msg) != 6 or msg[0] != "hello"
                or not isinstance(msg[5], bytes) or len(msg[5]) != NONCE_BYTES):
            raise AuthError("expected a hello")
        _, version, cluster, sender, target, nonce_c = msg
        if version != VERSION:
            raise AuthError(f"protocol version {version!r}, this node speaks {VERSION}")
        if cluster != self.cluster:
            raise AuthError(f"cluster {cluster!r}, this node is in {self.cluster!r}")
        if target != self.self_id:
            raise AuthError(f"hello meant for {target!r}, this is {self.self_id!r}")
        if not isinstance(sender, str) or sender not in known:
            raise AuthError(f"sender id {sender!r} is not a member of the cluster")
        nonce_s = secrets.token_bytes(NONCE_BYTES)
        t = self._transcript(sender, self.self_id, nonce_c, nonce_s)
        return ["challenge", self.self_id, nonce_s, _mac(self.secret, b"S", t)], t, sender

    def verify_auth(self, msg: object, transcript: bytes, sender: str) -> Channel:
        if (not isinstance(msg, list) or len(msg) != 2 or msg[0] != "auth"
                or not isinstance(msg[1], bytes)):
            raise AuthError("expected an auth message")
        if not hmac.compare_digest(msg[1], _mac(self.secret, b"C", transcript)):
            raise AuthError(f"{sender!r} does not hold the cluster secret")
        return self._channel(transcript, sender, connector=False)

    # ---- shared ----

    def _transcript(self, connector: str, acceptor: str, nonce_c: bytes, nonce_s: bytes) -> bytes:
        return msgpack.packb([VERSION, self.cluster, connector, acceptor, nonce_c, nonce_s],
                             use_bin_type=True)

    def _channel(self, transcript: bytes, peer: str, connector: bool) -> Channel:
        to_acceptor = _mac(self.secret, b"K>", transcript)
        to_connector = _mac(self.secret, b"K<", transcript)
        if connector:
            return Channel(to_acceptor, to_connector, peer)
        return Channel(to_connector, to_acceptor, peer)
