"""The in-memory network: every internode message crosses it with a seeded delay, and may be
lost, reordered, or dropped by a partition.

A message from S to D is dropped when D's grudge holds S (the node transport's `drop_from`, and
the partition shapes' meaning: one-way partitions are grudges on one side only). Each message
(request or reply) takes the base latency plus an exponential jitter, plus the packet fault of
either end (`delay_ms`, `jitter_ms`, `loss_percent`, as netem's); independent delays reorder
messages. Bodies are copied through msgpack, as the TCP transport encodes them, so no node ever
shares an object with another.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from harness.sim.loop import DEAD, NodeGate
from node.transport import Handler, PeerError

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

    # -- faults --

    def set_grudge(self, grudge: dict[str, Iterable[str]]) -> None:
        self.grudge = {n: frozenset(d) for n, d in grudge.items() if d}

    def drops(self, sender: str, receiver: str) -> bool:
        return sender in self.grudge.get(receiver, ())

    # -- delivery --

    def _delay_or_loss(self, a: str, b: str) -> float | None:
        """The delay of one message between a and b, or None when it is lost."""
        delay = self.latency_s + self.rng.expovariate(1 / self.jitter_s)
        for end in (a, b):
            p = self.packet.get(end)
            if p is None:
                continue
            if p.loss_percent and self.rng.random() * 100 < p.loss_percent:
                return None
            delay += p.delay_ms / 1000 + (self.rng.uniform(-1, 1) * p.jitter_ms / 1000)
        return max(delay, self.latency_s)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_later(delay, fn, *args, context=self._ctx)

    async def request(self, src: str, dst: str, kind: str, body: Any, timeout: float) -> Any:
        if timeout <= 0:
            raise PeerError(dst, "timeout", "no time left")
        gate = self.gates.get(dst)
        if gate is None or gate.state is DEAD:
            raise PeerError(dst, "unreachable", "connection refused")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        timer = loop.call_at(loop.time() + timeout, _expire, fut, dst, context=self._ctx)
        self.sent += 1
        payload = msgpack.packb(body, use_bin_type=True)
        delay = self._delay_or_loss(src, dst)
        if delay is None or self.drops(src, dst):
            self.dropped += 1
        else:
            self._later(delay, self._deliver, src, dst, gate, kind, payload, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    def _deliver(self, src: str, dst: str, gate: NodeGate, kind: str, payload: bytes,
                 fut: asyncio.Future) -> None:
        if gate.state is DEAD or self.gates.get(dst) is not gate:
            # the connection dies with the process: the sender learns it
            self._later(self.latency_s, _fail, fut, PeerError(dst, "lost", "connection reset"))
            return
        body = msgpack.unpackb(payload, raw=False)
        asyncio.get_running_loop().create_task(
            self._serve(src, dst, self.handlers[dst], kind, body, fut),
            context=gate.new_context())

    async def _serve(self, src: str, dst: str, handler: Handler, kind: str, body: Any,
                     fut: asyncio.Future) -> None:
        """The receiving node handles the request (in its context), then the reply leaves."""
        try:
            result = await handler(src, kind, body)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            outcome: tuple[bool, Any] = (False, f"{type(e).__name__}: {e}")
        else:
            outcome = (True, msgpack.unpackb(msgpack.packb(result, use_bin_type=True),
                                             raw=False))
        delay = self._delay_or_loss(dst, src)
        if delay is None or self.drops(dst, src):
            self.dropped += 1
            return
        self.loop.call_later(delay, _answer, fut, dst, outcome, context=self._ctx)

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

    async def request(self, peer: str, kind: str, body: Any, timeout: float) -> Any:
        return await self.net.request(self.me, peer, kind, body, timeout)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
