"""Membership and liveness: a local failure detector and gossip.

Liveness is this node's own opinion, as in Dynamo: a peer is down once a request to it failed
(unreachable, timed out, connection lost) and up again once it answered anything, including the
periodic probe. A partition therefore looks real: the transport drops probes and gossip too.

Membership is gossiped: every member's entry is (generation, heartbeat, incarnation, ring hash).
The generation is the wall time at which the process started, so a restarted member's entries
supersede its old ones; a newer generation heard through gossip makes this node probe that peer
at once, which is how a restarted node is seen as up within a probe or gossip interval.

Pure state only: the loops that send probes and gossip live in `Node` (node/server.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from node.env import Clock

# request failures that make a peer down; "remote" (it answered with an error) keeps it up
DOWN_REASONS = frozenset({"unreachable", "timeout", "lost"})


@dataclass
class Liveness:
    up: bool = True  # optimistic until the first probe: a wrong guess costs one failed request
    last_ms: int | None = None
    since_ms: int | None = None
    last_error: str = ""
    checked: bool = False


@dataclass
class Membership:
    me: str
    peers: tuple[str, ...]
    clock: Clock
    incarnation: str
    ring_hash: str
    log: logging.Logger
    generation: int = 0
    heartbeat: int = 0
    live: dict[str, Liveness] = field(default_factory=dict)
    # member -> {"generation", "heartbeat", "incarnation", "ring"} as last heard
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    restarted: set[str] = field(default_factory=set)  # peers to probe at once

    def __post_init__(self) -> None:
        self.generation = self.generation or self.clock.wall_ms()
        self.live = {p: Liveness() for p in self.peers}
        self.members[self.me] = self._own()

    def _own(self) -> dict[str, Any]:
        return {"generation": self.generation, "heartbeat": self.heartbeat,
                "incarnation": self.incarnation, "ring": self.ring_hash}

    # ---- failure detector ----

    def is_up(self, peer: str) -> bool:
        if peer == self.me:
            return True
        state = self.live.get(peer)
        return state is not None and state.up

    def saw(self, peer: str, ok: bool, reason: str = "") -> None:
        """Record the outcome of a request to `peer` (ok, or the PeerError reason)."""
        state = self.live.get(peer)
        if state is None:
            return
        now = self.clock.wall_ms()
        up = ok or reason not in DOWN_REASONS
        if up != state.up or not state.checked:
            if up != state.up:
                self.log.info("failure detector: %s is %s%s", peer, "up" if up else "down",
                              "" if up else f" ({reason})")
            state.since_ms = now
        state.up, state.checked, state.last_ms = up, True, now
        if not up:
            state.last_error = reason

    def to_probe(self, stale_ms: int) -> list[str]:
        """Peers worth a probe: down, never checked, restarted, or silent for `stale_ms`."""
        now = self.clock.wall_ms()
        out = []
        for p, s in self.live.items():
            if (not s.up or not s.checked or p in self.restarted
                    or s.last_ms is None or now - s.last_ms >= stale_ms):
                out.append(p)
        self.restarted.clear()
        return out

    # ---- gossip ----

    def beat(self) -> dict[str, Any]:
        """Advance our heartbeat; the state to send in a gossip message."""
        self.heartbeat += 1
        self.members[self.me] = self._own()
        return {m: dict(e) for m, e in self.members.items()}

    def merge(self, state: Any) -> None:
        """Take in a peer's gossip: newer (generation, heartbeat) entries win."""
        if not isinstance(state, dict):
            raise ValueError("gossip state must be a map")
        for member, entry in state.items():
            if member == self.me or member not in self.live or not isinstance(entry, dict):
                continue
            try:
                ver = (int(entry["generation"]), int(entry["heartbeat"]))
            except (KeyError, TypeError, ValueError):
                continue
            mine = self.members.get(member)
            if mine is not None and ver <= (mine["generation"], mine["heartbeat"]):
                continue
            if mine is not None and ver[0] > mine["generation"]:
                self.log.info("gossip: %s restarted (incarnation %s)", member,
                              entry.get("incarnation"))
                self.restarted.add(member)
            if entry.get("ring") != self.ring_hash and (
                    mine is None or mine.get("ring") != entry.get("ring")):
                self.log.warning("gossip: %s has a different ring (%s, ours %s)", member,
                                 entry.get("ring"), self.ring_hash)
            self.members[member] = {"generation": ver[0], "heartbeat": ver[1],
                                    "incarnation": str(entry.get("incarnation", "")),
                                    "ring": str(entry.get("ring", ""))}

    # ---- views ----

    def snapshot(self) -> dict[str, dict]:
        out = {}
        for p in self.peers:
            s = self.live[p]
            entry: dict[str, Any] = {"up": s.up, "checked": s.checked, "last_ms": s.last_ms,
                                     "since_ms": s.since_ms}
            if s.last_error:
                entry["last_error"] = s.last_error
            gossip = self.members.get(p)
            if gossip is not None:
                entry.update(incarnation=gossip["incarnation"], heartbeat=gossip["heartbeat"],
                             generation=gossip["generation"])
            out[p] = entry
        return out

    def membership(self) -> dict[str, dict]:
        return {m: dict(e) for m, e in sorted(self.members.items())}
