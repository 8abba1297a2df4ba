"""A cluster of reference nodes in one process: the real `node.server.Node`, each on its own
virtual clock, simulated disk and transport, with kill, restart, pause and clock skew.

Every random source is derived from the run's seed and the node's name (and its restart count),
so the same seed gives the same cluster, whatever else runs in the process.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from harness.sim.disk import SimDisk
from harness.sim.loop import DEAD, PAUSED, RUNNING, NodeGate, VirtualLoop
from harness.sim.net import SimNetwork, SimTransport
from node.config import ClusterConfig
from node.server import Node

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: virtual wall time 0


class SimClock:
    """A node's clock: the loop's virtual time, plus the offset the clock nemesis gives it."""

    def __init__(self, loop: VirtualLoop) -> None:
        self.loop = loop
        self.offset_s = 0.0

    def wall_ms(self) -> int:
        return EPOCH_MS + int((self.loop._vtime + self.offset_s) * 1000)  # type: ignore[attr-defined]

    def monotonic(self) -> float:
        return self.loop._vtime  # type: ignore[attr-defined]


class _BufferedFileHandler(logging.FileHandler):
    """A node's log file, written through the file's buffer and flushed when closed (the
    simulator's history is too): a run is replayed from its seed, so a log cut short by a
    dying harness is no loss, and a flush per line was a write(2) per line."""

    def flush(self) -> None:
        """Nothing: closing the file (`close`) writes out its buffer."""


class _VirtualTimeFormatter(logging.Formatter):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__("%(message)s")
        self.loop = loop

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.loop.time():10.4f} {record.levelname} {super().format(record)}"


@dataclass
class SimNode:
    id: str
    disk: SimDisk
    clock: SimClock
    log: logging.Logger
    gate: NodeGate
    node: Node | None = None
    starts: int = 0
    dead_since: list[float] = field(default_factory=list)


class SimCluster:
    def __init__(self, config: ClusterConfig, seed: int, loop: VirtualLoop,
                 log_dir: Path | None = None) -> None:
        self.config = config
        self.seed = seed
        self.loop = loop
        self.net = SimNetwork(random.Random(f"{seed}-net"))
        self.nodes: dict[str, SimNode] = {}
        for entry in config.nodes:
            log = logging.getLogger(f"sim.{id(self)}.{entry.id}")
            log.propagate = False
            log.setLevel(logging.INFO)
            if log_dir is not None:
                (log_dir / entry.id).mkdir(parents=True, exist_ok=True)
                handler = _BufferedFileHandler(log_dir / entry.id / "node.log",
                                               encoding="utf-8")
                handler.setFormatter(_VirtualTimeFormatter(loop))
                log.addHandler(handler)
            self.nodes[entry.id] = SimNode(entry.id, SimDisk(config.fsync), SimClock(loop), log,
                                           NodeGate(entry.id))

    def ids(self) -> list[str]:
        return list(self.nodes)

    def node(self, node_id: str) -> Node | None:
        """The node's running (or paused) incarnation; None when it is down."""
        sim = self.nodes[node_id]
        return None if sim.gate.state is DEAD else sim.node

    def gate(self, node_id: str) -> NodeGate:
        return self.nodes[node_id].gate

    # -- life cycle --

    def start(self, node_id: str) -> None:
        """Start the node (again), from what its disk kept."""
        sim = self.nodes[node_id]
        if sim.node is not None and sim.gate.state is not DEAD:
            return
        sim.gate = NodeGate(node_id)
        rng = random.Random(f"{self.seed}-{node_id}-{sim.starts}")
        sim.starts += 1
        transport = SimTransport(self.net, node_id)
        transport.drop_from = self.net.grudge.get(node_id, frozenset())

        def make() -> Node:
            node = Node(self.config, node_id, sim.clock, rng, sim.disk, transport, sim.log)
            node.start_background()
            return node

        sim.node = sim.gate.context.run(make)
        self.net.gates[node_id] = sim.gate
        sim.log.info("node %s started (incarnation %s, start %d)", node_id,
                     sim.node.incarnation, sim.starts)

    def kill(self, node_id: str, power: bool = False) -> dict[str, int]:
        """kill -9 (with `power`: and the disk loses what it had not synced)."""
        sim = self.nodes[node_id]
        if sim.gate.state is DEAD:
            return {}
        sim.gate.kill()
        self.net.crashed(node_id)  # its peers' requests to it fail now, as on a reset
        sim.log.warning("fault: %s", "power cut" if power else "killed")
        return sim.disk.power_cut() if power else sim.disk.crash()

    def wipe(self, node_id: str) -> dict[str, int]:
        """kill -9, then a new empty disk (a replaced drive): the node restarts with a new
        incarnation; what the old disk held."""
        self.kill(node_id)
        sim = self.nodes[node_id]
        old, sim.disk = sim.disk, SimDisk(self.config.fsync)
        sim.log.warning("fault: disk wiped")
        return {"keys": len(list(old.keys())), "hints": len(old.hint_keys())}

    def pause(self, node_id: str) -> None:
        gate = self.nodes[node_id].gate
        if gate.state is RUNNING:
            gate.state = PAUSED
            self.nodes[node_id].log.warning("fault: paused")

    def resume(self, node_id: str) -> None:
        sim = self.nodes[node_id]
        if sim.gate.state is PAUSED:
            self.loop.resume(sim.gate)
            sim.log.warning("fault: resumed")

    def is_running(self, node_id: str) -> bool:
        return self.nodes[node_id].gate.state is not DEAD

    def is_paused(self, node_id: str) -> bool:
        return self.nodes[node_id].gate.state is PAUSED

    def set_grudge(self, grudge: dict[str, frozenset[str] | set[str] | list[str]]) -> None:
        self.net.set_grudge({n: frozenset(d) for n, d in grudge.items()})
        for node_id, sim in self.nodes.items():
            if sim.node is not None:
                sim.node.transport.drop_from = self.net.grudge.get(node_id, frozenset())

    def stop_all(self) -> None:
        """Teardown: every node stops where it is (nothing of a simulation outlives it)."""
        for sim in self.nodes.values():
            sim.gate.kill()
            for handler in list(sim.log.handlers):
                handler.close()
                sim.log.removeHandler(handler)
