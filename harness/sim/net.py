"""The in-memory network: every internode message crosses it with a seeded delay, and may be
lost, reordered, or dropped by a partition.

A message from S to D is dropped when D's grudge holds S (the node transport's `drop_from`, and
the partition shapes' meaning: one-way partitions are grudges on one side only). Each message
(request or reply) takes the base latency plus an exponential jitter, plus the packet fault of
either end (`delay_ms`, `jitter_ms`, `loss_percent`, as netem's); independent delays reorder
messages. Bodies are copied through msgpack, as the TCP transport encodes them, so no node ever
shares an object with another.

For speed a message costs one timer: at its arrival the receiver's handler starts at once in the
receiver's context (`harness.sim.loop.drive`, no Task), and the answer is one more timer. The
sender's timeout is a timer only when the answer is not decided at delivery (the message was
lost or dropped, the handler waits, the receiver is paused); otherwise the earlier of the
answer's arrival and the deadline is the one timer set.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Iterable
from dataclasses import dataclass
from math import log as _log
from typing import Any

import msgpack
from msgpack import unpackb

from harness.sim.loop import DEAD, RUNNING, NodeGate, VirtualLoop, drive
from node.transport import Handler, PeerError

_pack = msgpack.Packer(use_bin_type=True).pack  # msgpack.packb, without a Packer per call
_AS_IS = frozenset({bytes, bool, type(None)})  # what msgpack gives back equal and immutable
BASE_LATENCY_S = 0.0002
JITTER_S = 0.0002  # mean of the exponential extra delay


@dataclass
class Packet:
    """A packet fault on one node's messages, in and out."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_percent: float = 0.0


class SimNetwork:
    def __init__(self, rng: random.Random, latency_s: float = BASE_LATENCY_S,
                 jitter_s: float = JITTER_S) -> None:
        self.rng = rng
        self.latency_s = latency_s
        self.jitter_s = jitter_s
        self.grudge: dict[str, frozenset[str]] = {}  # node -> senders whose messages it drops
        self.packet: dict[str, Packet] = {}
        self.gates: dict[str, NodeGate] = {}  # the live incarnation of each node
        self.handlers: dict[str, Handler] = {}
        self.sent = 0
        self.dropped = 0
        # network events (delivery, replies) belong to no node: a paused sender's messages
        # still arrive
        self._ctx = contextvars.Context()
        self._loop: VirtualLoop | None = None
        self._random = rng.random
        self._lambd = 1 / jitter_s
        # per receiver, its requests not yet answered: [sender, future, _Reply once delivered];
        # what a crash resets (`crashed`). Pruned of answered ones as it grows, not per answer.
        self._open: dict[str, list[list]] = {}
        self._open_prune: dict[str, int] = {}

    # -- faults --

    def set_grudge(self, grudge: dict[str, Iterable[str]]) -> None:
        self.grudge = {n: frozenset(d) for n, d in grudge.items() if d}

    def drops(self, sender: str, receiver: str) -> bool:
        return sender in self.grudge.get(receiver, ())

    # -- delivery --

    def _delay_or_loss(self, a: str, b: str) -> float | None:
        """The delay of one message between a and b, or None when it is lost."""
        delay = self.latency_s - _log(1.0 - self._random()) / self._lambd  # expovariate
        if not self.packet:
            return delay
        for end in (a, b):
            p = self.packet.get(end)
            if p is None:
                continue
            if p.loss_percent and self.rng.random() * 100 < p.loss_percent:
                return None
            delay += p.delay_ms / 1000 + (self.rng.uniform(-1, 1) * p.jitter_ms / 1000)
        return max(delay, self.latency_s)

    @property
    def loop(self) -> VirtualLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()  # type: ignore[assignment]
        return self._loop  # type: ignore[return-value]

    def request(self, src: str, dst: str, kind: str, body: Any, timeout: float
                ) -> asyncio.Future:
        """Send a request: the future of its answer (a PeerError when it fails)."""
        if timeout <= 0:
            raise PeerError(dst, "timeout", "no time left")
        gate = self.gates.get(dst)
        if gate is None or gate.state is DEAD:
            raise PeerError(dst, "unreachable", "connection refused")
        loop = self._loop or self.loop
        fut = loop.create_future()
        deadline = loop._vtime + timeout
        self.sent += 1
        payload = _pack(body)
        entry = [src, fut, None]
        open_ = self._open.get(dst)
        if open_ is None:
            open_ = self._open[dst] = []
        open_.append(entry)
        if len(open_) > self._open_prune.get(dst, 64):
            open_[:] = [e for e in open_ if not e[1].done()]
            self._open_prune[dst] = 2 * len(open_) + 64
        delay = self._delay_or_loss(src, dst)
        if delay is None or src in self.grudge.get(dst, ()):
            self.dropped += 1
            loop.at(deadline, _expire, (fut, dst), self._ctx)
        else:
            loop.at(loop._vtime + delay, self._deliver,
                    (src, dst, gate, kind, payload, fut, deadline, entry), self._ctx)
        return fut

    def crashed(self, node: str) -> int:
        """`node` was killed: its connections die with it, so each request to it that it had
        not answered fails at its sender, one hop later, as a connection reset (the TCP
        transport fails every request pending on a connection that closes), unless the sender
        drops what `node` sends (a partition: the reset is lost too). An answer it sent before
        dying still arrives first, as its bytes precede the close. Returns how many fail."""
        loop = self._loop or self.loop
        at = loop._vtime + self.latency_s
        failed = 0
        for src, fut, reply in self._open.pop(node, []):
            if fut.done() or (reply is not None and reply.sent) \
                    or node in self.grudge.get(src, ()):
                continue
            loop.at(at, _fail, (fut, PeerError(node, "lost", "connection reset")), self._ctx)
            failed += 1
        self._open_prune.pop(node, None)
        return failed

    def _deliver(self, src: str, dst: str, gate: NodeGate, kind: str, payload: bytes,
                 fut: asyncio.Future, deadline: float, entry: list) -> None:
        """The request arrives: the receiver's handler starts at once (when it runs)."""
        loop = self._loop
        if gate.state is DEAD or self.gates.get(dst) is not gate:
            # the connection dies with the process: the sender learns it, or times out first
            back = loop._vtime + self.latency_s
            if back < deadline:
                loop.at(back, _fail, (fut, PeerError(dst, "lost", "connection reset")),
                        self._ctx)
            else:
                loop.at(deadline, _expire, (fut, dst), self._ctx)
            return
        reply = entry[2] = _Reply(self, src, dst, fut, deadline)
        if gate.state is RUNNING:
            # the handler is called at once in the receiver's context; a future it answers
            # with (the request path's kinds) ends the request through a callback in that
            # context, so a node paused meanwhile holds the answer (no coroutine, no driver)
            context = gate.context.copy()
            try:
                aw = context.run(self.handlers[dst], src, kind, unpackb(payload))
            except Exception as e:  # a handler that fails at the call: its error is the answer
                aw = None
                context.run(reply.done, None, e)
            if isinstance(aw, asyncio.Future):
                if aw.done():
                    reply.settled(aw)
                else:
                    aw.add_done_callback(reply.settled, context=context)
            elif aw is not None:
                drive(aw, gate, reply.done)
        else:  # paused: the call itself waits for the node, as any step of it does
            drive(_handled(self.handlers[dst], src, kind, unpackb(payload)), gate, reply.done)
        if not reply.sent:
            # the handler waits (or its node is paused): the sender's timeout runs meanwhile
            reply.timer = loop.call_at(deadline, _expire, fut, dst, context=self._ctx)


class _Reply:
    """The answer to one delivered request, sent when its handler ends."""

    __slots__ = ("net", "src", "dst", "fut", "deadline", "sent", "timer")

    def __init__(self, net: SimNetwork, src: str, dst: str, fut: asyncio.Future,
                 deadline: float) -> None:
        self.net = net
        self.src = src
        self.dst = dst
        self.fut = fut
        self.deadline = deadline
        self.sent = False
        self.timer: Any = None

    def settled(self, fut: asyncio.Future) -> None:
        """`done`, from the future a handler answered with."""
        if fut.cancelled():
            self.done(None, asyncio.CancelledError())
        else:
            exc = fut.exception()
            self.done(None if exc is not None else fut.result(), exc)

    def done(self, result: Any, exc: BaseException | None) -> None:
        """The handler ended (in the receiver's context): its answer leaves, unless the handler
        was cancelled or the answer is lost or dropped."""
        self.sent = True
        net = self.net
        loop = net._loop
        arrive = None
        if exc is None:
            # the answer as the sender decodes it; bytes, None and booleans (a read's sibling
            # set, a write's ack: most answers) come back from msgpack as they went, and are
            # immutable, so they need no copy
            outcome: tuple[bool, Any] = (True, result if type(result) in _AS_IS
                                         else unpackb(_pack(result)))
        elif isinstance(exc, asyncio.CancelledError):
            outcome = (False, None)  # no answer
        else:
            outcome = (False, f"{type(exc).__name__}: {exc}")
        if outcome[1] is not None or outcome[0]:
            delay = net._delay_or_loss(self.dst, self.src)
            if delay is None or self.dst in net.grudge.get(self.src, ()):
                net.dropped += 1
            else:
                arrive = loop._vtime + delay
        if self.timer is None:  # the handler ended at once: one timer for the sender
            if arrive is not None and arrive < self.deadline:
                loop.at(arrive, _answer, (self.fut, self.dst, outcome), net._ctx)
            else:
                loop.at(self.deadline, _expire, (self.fut, self.dst), net._ctx)
        elif arrive is not None and arrive < self.deadline:
            self.timer.cancel()
            loop.at(arrive, _answer, (self.fut, self.dst, outcome), net._ctx)


def _expire(fut: asyncio.Future, peer: str) -> None:
    if not fut.done():
        fut.set_exception(PeerError(peer, "timeout"))


def _fail(fut: asyncio.Future, err: Exception) -> None:
    if not fut.done():
        fut.set_exception(err)


def _answer(fut: asyncio.Future, peer: str, outcome: tuple[bool, Any]) -> None:
    if fut.done():
        return
    ok, body = outcome
    if ok:
        fut.set_result(body)
    else:
        fut.set_exception(PeerError(peer, "remote", str(body)))


class SimTransport:
    """One node's `Transport` on the simulated network."""

    def __init__(self, net: SimNetwork, me: str) -> None:
        self.net = net
        self.me = me
        self.drop_from: frozenset[str] = frozenset()

    def set_handler(self, handler: Handler) -> None:
        self.net.handlers[self.me] = handler

    def set_drop_from(self, peers: Iterable[str]) -> None:
        # the admin API's own partition: the same grudge the nemesis sets
        self.drop_from = frozenset(peers)
        grudge = dict(self.net.grudge)
        grudge[self.me] = self.drop_from
        self.net.set_grudge(grudge)

    def request(self, peer: str, kind: str, body: Any, timeout: float) -> asyncio.Future:
        # a future, not a coroutine: the node awaits it the same, one frame cheaper
        return self.net.request(self.me, peer, kind, body, timeout)

    def send(self, peer: str, kind: str, body: Any, timeout: float) -> asyncio.Future:
        """`TcpTransport.send`: `request` whose failure is the future's, never raised. With it
        `Node.send` takes the TCP transport's path (a future per request, no coroutine or task),
        as a real node's request path does."""
        try:
            return self.net.request(self.me, peer, kind, body, timeout)
        except PeerError as e:
            fut = self.net.loop.create_future()
            fut.set_exception(e)
            return fut

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def _handled(handler: Handler, src: str, kind: str, body: Any) -> Any:
    """The handler called inside the receiver's coroutine: a node's handler may do its work at
    the call and answer with a future (the request path's kinds), and that call must wait, as
    any step of the node does, until the node runs."""
    return await handler(src, kind, body)
