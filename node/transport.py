"""Internode protocol: length-prefixed msgpack frames over persistent TCP connections.

Frame: 4-byte big-endian length, then a msgpack array:
  request: [0, request_id, sender_id, kind, body]
  reply:   [1, request_id, sender_id, ok, body]     (body is the error text when ok is false)

Each node opens one outbound connection per peer for its own requests (replies come back on it)
and accepts inbound connections for the peers' requests. A malformed or oversized frame closes
that connection and is logged; the node keeps serving. Frames carry the sender's id so that
`drop_from` can simulate a partition: every frame received from a listed peer is discarded.

With a cluster secret (node/peerauth.py) every connection starts with a mutual challenge-response
and every frame carries a MAC over an implicit sequence number; the sender id in a frame must be
the one the handshake proved. A peer that fails either is logged with its address and
disconnected. None of this shows in the `Transport` interface the node uses.

A frame this node would send over the peer's limit is never sent: the request fails with
PeerError "too_large" (a reply becomes an error reply), so one oversized key cannot tear down
the connection that every other key's requests share (issue 17).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import msgpack

from node.env import OnLoop
from node.peerauth import HANDSHAKE_MAX, TAG_BYTES, AuthError, Channel, Handshake

_HEADER = struct.Struct(">I")
REQUEST, REPLY = 0, 1

Handler = Callable[[str, str, Any], Awaitable[Any]]


class Transport(Protocol):
    """What a node needs from its network; a simulator provides an in-memory one. A transport
    may also offer `send(peer, kind, body, timeout) -> Future` (`request` without a coroutine,
    as TcpTransport does); the node uses it on the request path when it is there."""

    drop_from: frozenset[str]

    def set_handler(self, handler: Handler) -> None: ...

    def set_drop_from(self, peers: Iterable[str]) -> None: ...

    async def request(self, peer: str, kind: str, body: Any, timeout: float) -> Any: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class PeerError(Exception):
    """A request to a peer failed. `reason` is one of:
    "unreachable" (certainly not delivered), "timeout" or "lost" (may have been delivered),
    "remote" (the peer answered with an error)."""

    def __init__(self, peer: str, reason: str, detail: str = "") -> None:
        super().__init__(f"{peer}: {reason}{': ' + detail if detail else ''}")
        self.peer = peer
        self.reason = reason
        self.detail = detail

    @property
    def maybe_delivered(self) -> bool:
        return self.reason not in ("unreachable", "too_large")


class FrameError(ValueError):
    pass


class FrameReader:
    """A connection's frames after the handshake, read a chunk at a time: frames that arrived
    together (under load a segment holds several) are taken without another await."""

    __slots__ = ("reader", "max_frame", "channel", "buf")

    def __init__(self, reader: asyncio.StreamReader, max_frame: int,
                 channel: Channel | None) -> None:
        self.reader = reader
        self.max_frame = max_frame
        self.channel = channel
        self.buf = bytearray()

    async def read(self) -> list | None:
        """One decoded frame, or None at a clean end of stream. Raises FrameError if malformed
        (or, with a channel, if its MAC does not verify)."""
        while True:
            payload = self._take()
            if payload is not None:
                return open_frame(payload, self.channel)
            chunk = await self.reader.read(1 << 16)
            if not chunk:
                if self.buf:
                    where = "a frame header" if len(self.buf) < 4 else "a frame"
                    raise FrameError(f"connection closed inside {where}")
                return None
            self.buf += chunk

    def _take(self) -> bytes | None:
        buf = self.buf
        if len(buf) < 4:
            return None
        (length,) = _HEADER.unpack_from(buf)
        if length > self.max_frame:
            raise FrameError(f"frame of {length} bytes is over the limit of {self.max_frame}")
        end = 4 + length
        if len(buf) < end:
            return None
        payload = bytes(buf[4:end])
        del buf[:end]
        return payload


def open_frame(payload: bytes, channel: Channel | None) -> list:
    """A frame's payload checked (with a channel) and decoded; raises FrameError."""
    if channel is not None:
        try:
            payload = channel.open(payload)
        except AuthError as e:
            raise FrameError(str(e)) from e
    frame = decode(payload)
    if channel is not None and frame[2] != channel.peer:
        raise FrameError(f"frame claims sender {frame[2]!r} on {channel.peer!r}'s connection")
    return frame


async def read_payload(reader: asyncio.StreamReader, max_frame: int) -> bytes | None:
    """One frame's bytes, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(4)
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise FrameError("connection closed inside a frame header") from e
        return None
    (length,) = _HEADER.unpack(header)
    if length > max_frame:
        raise FrameError(f"frame of {length} bytes is over the limit of {max_frame}")
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as e:
        raise FrameError("connection closed inside a frame") from e
    return payload


def decode(payload: bytes) -> list:
    try:
        frame = msgpack.unpackb(payload, raw=False)
    except Exception as e:  # msgpack raises several unrelated types on garbage
        raise FrameError(f"undecodable frame: {type(e).__name__}: {e}") from e
    if (not isinstance(frame, list) or len(frame) != 5 or frame[0] not in (REQUEST, REPLY)
            or not isinstance(frame[1], int) or not isinstance(frame[2], str)):
        raise FrameError("frame is not [type, id, sender, ..., body]")
    if frame[0] == REQUEST and not isinstance(frame[3], str):
        raise FrameError("request frame without a kind")
    return frame


def pack_frame(frame: list, channel: Channel | None = None) -> bytes:
    return seal(msgpack.packb(frame, use_bin_type=True), channel)


def seal(payload: bytes, channel: Channel | None) -> bytes:
    """The frame on the wire for a packed payload (the channel's sequence advances)."""
    if channel is not None:
        payload = channel.seal(payload)
    return _HEADER.pack(len(payload)) + payload


async def _read_hello(reader: asyncio.StreamReader) -> object:
    payload = await read_payload(reader, HANDSHAKE_MAX)
    if payload is None:
        raise FrameError("connection closed during the handshake")
    try:
        return msgpack.unpackb(payload, raw=False)
    except Exception as e:  # msgpack raises several unrelated types on garbage
        raise FrameError(f"undecodable handshake message: {type(e).__name__}") from e


def _send_raw(writer: asyncio.StreamWriter, msg: list) -> None:
    writer.write(pack_frame(msg))


class _Corked:
    """Frames written during one turn of the event loop leave in one send() call: on loopback
    the syscall, not the bytes, is the cost."""

    __slots__ = ("writer", "buf", "loop")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.buf: list[bytes] = []
        self.loop = asyncio.get_running_loop()

    def send(self, data: bytes) -> None:
        if not self.buf:
            self.loop.call_soon(self.flush)
        self.buf.append(data)

    def flush(self) -> None:
        buf, self.buf = self.buf, []
        if buf and not self.writer.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                self.writer.write(b"".join(buf))


class _Outbound:
    """This node's connection to one peer, for its own requests."""

    def __init__(self, transport: TcpTransport, peer: str) -> None:
        self.t = transport
        self.peer = peer
        self.writer: asyncio.StreamWriter | None = None
        self.corked: _Corked | None = None
        self.channel: Channel | None = None
        # request id -> (the reply's future, its timeout): both settled where the reply, the
        # timeout or the connection's end is seen, with no done-callback per request
        self.pending: dict[int, tuple[asyncio.Future, asyncio.TimerHandle]] = {}
        self.connecting: asyncio.Future | None = None
        self.reader_task: asyncio.Task | None = None

    async def ensure(self, timeout: float) -> _Corked:
        if self.writer is not None and not self.writer.is_closing():
            return self.corked
        if self.connecting is None:
            self.connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.wait_for(asyncio.shield(self.connecting), timeout)
        except TimeoutError as e:
            raise PeerError(self.peer, "unreachable", "connect timed out") from e

    async def _connect(self) -> _Corked:
        host, port = self.t.peers[self.peer]
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.t.connect_timeout)
            channel = None
            if self.t.auth is not None:
                channel = await asyncio.wait_for(self._handshake(reader, writer),
                                                 self.t.handshake_timeout)
        except (TimeoutError, OSError) as e:
            raise PeerError(self.peer, "unreachable", str(e) or type(e).__name__) from e
        except (AuthError, FrameError) as e:
            self.t.log.warning("transport: peer %s at %s:%s failed the handshake, "
                               "disconnecting: %s", self.peer, host, port, e)
            writer.close()
            raise PeerError(self.peer, "unreachable", f"handshake failed: {e}") from e
        finally:
            self.connecting = None
        self.writer = writer
        self.channel = channel
        self.corked = _Corked(writer)
        self.reader_task = asyncio.ensure_future(self._read_replies(reader, writer, channel))
        return self.corked

    async def _handshake(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> Channel:
        try:
            hello, nonce = self.t.auth.hello(self.peer)
            _send_raw(writer, hello)
            reply, channel = self.t.auth.answer_challenge(self.peer, nonce,
                                                          await _read_hello(reader))
            _send_raw(writer, reply)
            return channel
        except BaseException:
            writer.close()
            raise

    async def _read_replies(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter, channel: Channel | None) -> None:
        reason = "connection closed"
        frames = FrameReader(reader, self.t.max_frame, channel)
        try:
            while True:
                frame = await frames.read()
                if frame is None:
                    break
                if frame[0] != REPLY:
                    raise FrameError("a request arrived on an outbound connection")
                if frame[2] in self.t.drop_from:
                    continue
                entry = self.pending.pop(frame[1], None)
                if entry is None:
                    continue
                fut, timer = entry
                timer.cancel()
                if not fut.done():
                    if frame[3]:
                        fut.set_result(frame[4])
                    else:
                        fut.set_exception(PeerError(self.peer, "remote", str(frame[4])))
        except FrameError as e:
            reason = str(e)
            self.t.log.warning("transport: bad frame from %s, closing: %s", self.peer, e)
        except (OSError, asyncio.IncompleteReadError) as e:
            reason = str(e)
        finally:
            if self.writer is writer:
                self.writer = None
            writer.close()
            for fut, timer in self.pending.values():
                timer.cancel()
                if not fut.done():
                    fut.set_exception(PeerError(self.peer, "lost", reason))
            self.pending.clear()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.reader_task is not None:
            self.reader_task.cancel()


class TcpTransport(OnLoop):
    def __init__(self, self_id: str, host: str, port: int, peers: dict[str, tuple[str, int]],
                 log: logging.Logger, max_frame: int = 16 << 20,
                 connect_timeout: float = 0.5, secret: str = "", cluster: str = "dynamo",
                 handshake_timeout: float = 5.0) -> None:
        """`secret`: the cluster secret; "" runs the unauthenticated protocol (insecure)."""
        self.self_id = self_id
        self.auth = Handshake(secret, cluster, self_id) if secret else None
        self.handshake_timeout = max(handshake_timeout, connect_timeout)
        self.host = host
        self.port = port
        self.peers = dict(peers)
        self.log = log
        self.max_frame = max_frame
        self.connect_timeout = connect_timeout
        self.drop_from: frozenset[str] = frozenset()
        self._handler: Handler | None = None
        self._server: asyncio.base_events.Server | None = None
        self._out: dict[str, _Outbound] = {}
        self._next_id = 0
        self._inbound: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    def set_handler(self, handler: Handler) -> None:
        self._handler = handler

    def set_drop_from(self, peers: Iterable[str]) -> None:
        self.drop_from = frozenset(peers)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for out in self._out.values():
            out.close()
        for w in list(self._inbound):
            w.close()
        for task in list(self._tasks):
            task.cancel()

    async def request(self, peer: str, kind: str, body: Any, timeout: float) -> Any:
        """Send a request and wait for its reply body; raises PeerError."""
        if peer not in self.peers:
            raise PeerError(peer, "unreachable", "unknown peer")
        if timeout <= 0:
            raise PeerError(peer, "timeout", "no time left")
        deadline = asyncio.get_running_loop().time() + timeout
        out = self._out.get(peer)
        if out is None:
            out = self._out[peer] = _Outbound(self, peer)
        corked = await out.ensure(timeout)
        fut = self._send(out, corked, kind, body, deadline)
        if corked.writer.transport.get_write_buffer_size() > (1 << 20):
            try:
                await corked.writer.drain()
            except (OSError, RuntimeError) as e:
                fut.cancel()
                raise PeerError(peer, "lost", str(e)) from e
        return await fut

    def send(self, peer: str, kind: str, body: Any, timeout: float) -> asyncio.Future:
        """`request` as a future of the reply body: on an open connection with room in its
        buffer (the common case) no coroutine or task is made; otherwise it runs `request`."""
        out = self._out.get(peer)
        corked = out.corked if out is not None and out.writer is not None else None
        if (corked is None or corked.writer.is_closing() or timeout <= 0
                or corked.writer.transport.get_write_buffer_size() > (1 << 20)):
            return self._loop.create_task(self.request(peer, kind, body, timeout))
        return self._send(out, corked, kind, body, self._loop.time() + timeout)

    def _send(self, out: _Outbound, corked: _Corked, kind: str, body: Any,
              deadline: float) -> asyncio.Future:
        """Queue one request frame; the future gets the reply body or a PeerError."""
        loop = self._loop
        fut = loop.create_future()
        self._next_id += 1
        rid = self._next_id
        payload = msgpack.packb([REQUEST, rid, self.self_id, kind, body], use_bin_type=True)
        if len(payload) + TAG_BYTES > self.max_frame:
            # sending it would make the peer close the connection every other request shares
            fut.set_exception(PeerError(out.peer, "too_large",
                                        f"a {kind} request of {len(payload)} bytes is over "
                                        f"max_frame_bytes ({self.max_frame})"))
            return fut
        corked.send(seal(payload, out.channel))
        out.pending[rid] = (fut, loop.call_at(deadline, _expire, out, rid))
        return fut

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> Channel | None:
        if self.auth is None:
            return None
        msg, transcript, sender = self.auth.challenge(await _read_hello(reader),
                                                      set(self.peers))
        _send_raw(writer, msg)
        return self.auth.verify_auth(await _read_hello(reader), transcript, sender)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._inbound.add(writer)
        corked = _Corked(writer)
        addr = writer.get_extra_info("peername")
        try:
            try:
                channel = await asyncio.wait_for(self._accept(reader, writer),
                                                 self.handshake_timeout)
            except (OSError, asyncio.IncompleteReadError):
                return
            except Exception as e:  # noqa: BLE001 - whatever a stranger sends, it is logged
                self.log.warning("transport: bad frame or failed handshake from %s, "
                                 "disconnecting: %s", addr, str(e) or type(e).__name__)
                return
            frames = FrameReader(reader, self.max_frame, channel)
            while True:
                frame = await frames.read()
                if frame is None:
                    break
                if frame[0] != REQUEST:
                    raise FrameError("a reply arrived on an inbound connection")
                if frame[2] in self.drop_from:
                    continue
                self._start(frame, corked, channel)
        except FrameError as e:
            self.log.warning("transport: bad frame from %s, closing the connection: %s", addr, e)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._inbound.discard(writer)
            writer.close()

    def _start(self, frame: list, corked: _Corked, channel: Channel | None) -> None:
        """Hand a request to the handler. A handler that answers with a future (the node's
        reads and replicas' writes) is answered from the future's callback, with no task."""
        _, rid, sender, kind, body = frame
        answer = functools.partial(self._answer, corked, channel, rid, sender, kind)
        try:
            if self._handler is None:
                raise RuntimeError("not ready")
            aw = self._handler(sender, kind, body)
        except Exception as e:
            answer(None, e)
            return
        if isinstance(aw, asyncio.Future):
            if aw.done():  # a read: answered in this turn, not the next one
                _answer_future(answer, aw)
            else:
                aw.add_done_callback(functools.partial(_answer_future, answer))
            return
        task = self._loop.create_task(self._dispatch(aw, answer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, aw: Awaitable[Any], answer: Callable[..., None]) -> None:
        try:
            result = await aw
        except asyncio.CancelledError:
            raise
        except Exception as e:
            answer(None, e)
            return
        answer(result, None)

    def _answer(self, corked: _Corked, channel: Channel | None, rid: int, sender: str,
                kind: str, result: Any, error: Exception | None) -> None:
        if error is None:
            reply = [REPLY, rid, self.self_id, True, result]
        else:
            self.log.warning("transport: %s request from %s failed: %s", kind, sender, error)
            reply = [REPLY, rid, self.self_id, False, f"{type(error).__name__}: {error}"]
        payload = msgpack.packb(reply, use_bin_type=True)
        if len(payload) + TAG_BYTES > self.max_frame:
            self.log.warning("transport: the reply to %s's %s request is %d bytes, over "
                             "max_frame_bytes (%d): answering an error instead",
                             sender, kind, len(payload), self.max_frame)
            payload = msgpack.packb(
                [REPLY, rid, self.self_id, False,
                 f"reply of {len(payload)} bytes is over max_frame_bytes ({self.max_frame})"])
        corked.send(seal(payload, channel))


def _answer_future(answer: Callable[..., None], fut: asyncio.Future) -> None:
    if fut.cancelled():
        return  # as a cancelled task: no reply (the node is shutting down)
    error = fut.exception()
    answer(None if error is not None else fut.result(), error)


def _expire(out: _Outbound, rid: int) -> None:
    entry = out.pending.pop(rid, None)
    if entry is not None and not entry[0].done():
        entry[0].set_exception(PeerError(out.peer, "timeout"))
