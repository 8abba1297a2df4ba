"""The `sim` platform: the reference store's nodes as coroutines in this process, on virtual time.

`SimPlatform` does what every platform does (start, kill, pause, partition, skew a clock) to a
`harness.sim.cluster.SimCluster`; `SimDynamoStore` is the reference store there, with a client
that calls a node's coordinator in-process instead of over HTTP (the same requests and answers,
JSON-encoded as the HTTP API would) and a quiesce that reads every replica the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from checkers.history import loads_json
from harness import quiesce
from harness.client import Client, NodeClient, OpFailed, OpUnknown
from harness.platforms.base import Grudge, NodeSpec, Platform, PlatformError
from harness.settings import ClusterSettings
from harness.sim.cluster import SimCluster
from harness.sim.loop import DEAD, VirtualLoop, drive
from harness.sim.net import Packet
from harness.stores.dynamo import CLUSTER_FILE, DynamoStore
from node import clocks
from node.config import parse_cluster
from node.coordinator import dumps

URL_PREFIX = "sim://"
MECHANISMS = {
    "partition": "simulated: the in-memory network drops the messages (one-way too); no TCP",
    "clock": "simulated: the node's virtual wall clock is offset (no libfaketime)",
    "crash": "simulated kill -9: the node's tasks are dropped; its disk keeps what the fsync "
             "policy had committed",
    "pause": "simulated SIGSTOP: the node's callbacks are held until resume",
    "packet": "simulated: per-message delay, jitter and loss on the node's messages",
    "power": "simulated power cut: kill, and the disk keeps only what was fsynced",
    "wipe": "simulated lost disk: kill, and the node restarts on a new empty disk (a new "
            "incarnation)",
}


def specs_for(nodes: int) -> list[NodeSpec]:
    """Placeholder addresses: nothing listens, but the cluster file needs them."""
    return [NodeSpec(f"n{i}", "sim", 10_000 + 2 * i, 10_001 + 2 * i)
            for i in range(1, nodes + 1)]


class SimPlatform(Platform):
    name = "sim"
    mechanisms = MECHANISMS

    def __init__(self, root: Path, cluster: ClusterSettings, seed: int,
                 store: DynamoStore) -> None:
        self.root = root
        self.settings = cluster
        self.specs = specs_for(cluster.nodes)
        root.mkdir(parents=True, exist_ok=True)
        store.layout(root, self.specs)
        config = parse_cluster((root / CLUSTER_FILE).read_text(encoding="utf-8"), root)
        if config.cluster_secret:
            # the secret signs client contexts, which the history records: one seed, one secret
            secret = hashlib.sha256(f"sim cluster secret {seed}".encode()).hexdigest()
            config = dataclasses.replace(config, cluster_secret=secret)
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualLoop):
            raise PlatformError("the sim platform runs on the simulator's virtual-time loop "
                                "(harness.sim.run)")
        self.cluster = SimCluster(config, seed, loop, root)
        self.offsets: dict[str, float] = {}
        if isinstance(store, SimDynamoStore):
            store.sim = self.cluster

    def node_ids(self) -> list[str]:
        return self.cluster.ids()

    def client_url(self, node: str) -> str:
        return URL_PREFIX + node

    def spec(self, node: str) -> NodeSpec:
        return next(s for s in self.specs if s.id == node)

    def start(self) -> None:
        for node in self.node_ids():
            self.cluster.start(node)

    def stop(self) -> None:
        self.cluster.stop_all()

    def kill(self, node: str) -> None:
        self.cluster.kill(self._known(node))

    def restart(self, node: str) -> None:
        self.cluster.start(self._known(node))

    def power_cut(self, nodes: list[str]) -> dict[str, dict[str, Any]]:
        return {n: self.cluster.kill(self._known(n), power=True) for n in nodes}

    def wipe(self, nodes: list[str]) -> dict[str, dict[str, Any]]:
        return {n: self.cluster.wipe(self._known(n)) for n in nodes}

    def pause(self, node: str) -> None:
        self.cluster.pause(self._known(node))

    def resume(self, node: str) -> None:
        self.cluster.resume(self._known(node))

    def partition(self, grudge: Grudge) -> dict[str, str]:
        self.cluster.set_grudge({n: frozenset(d) for n, d in grudge.items()})
        return {}

    def heal_partition(self) -> dict[str, str]:
        self.cluster.set_grudge({})
        return {}

    def set_packet(self, node: str, delay_ms: float = 0.0, jitter_ms: float = 0.0,
                   loss_percent: float = 0.0) -> None:
        self.cluster.net.packet[self._known(node)] = Packet(delay_ms, jitter_ms, loss_percent)

    def heal_packet(self) -> dict[str, str]:
        self.cluster.net.packet.clear()
        return {}

    def set_clock_offset(self, node: str, seconds: float) -> None:
        self.cluster.nodes[self._known(node)].clock.offset_s = seconds
        self.offsets[node] = seconds

    def reset_clocks(self) -> None:
        for node in self.node_ids():
            self.set_clock_offset(node, 0.0)

    def read_clock_offsets(self) -> dict[str, float | None]:
        return {n: (None if not self.cluster.is_running(n) or self.cluster.is_paused(n)
                    else round(self.cluster.nodes[n].clock.offset_s, 3))
                for n in self.node_ids()}

    def node_dir(self, node: str) -> Path:
        return self.root / node

    def pids(self) -> dict[str, int]:
        return {}  # one process: nothing per node to sample

    def status(self, node: str) -> dict[str, Any] | None:
        live = self.cluster.node(node)
        return None if live is None or self.cluster.is_paused(node) else live.status()

    def _resume_all(self) -> dict[str, str]:
        for node in self.node_ids():
            self.cluster.resume(node)
        return {}

    def _restart_dead(self) -> dict[str, str]:
        for node in self.node_ids():
            self.cluster.start(node)
        return {}

    def _known(self, node: str) -> str:
        if node not in self.cluster.nodes:
            raise PlatformError(f"no node {node!r}; the nodes are {', '.join(self.node_ids())}")
        return node


class SimClient(NodeClient):
    """The reference node's client, calling the node's coordinator in-process: the requests and
    answers of the HTTP API (`node/http_api.py`), without HTTP."""

    def __init__(self, cluster: SimCluster, node: str, timeout_s: float,
                 params: dict[str, str] | None = None) -> None:
        super().__init__(None, node, URL_PREFIX + node, timeout_s, params)  # type: ignore[arg-type]
        self.cluster = cluster
        self.timeout_s = timeout_s

    async def _request(self, method: str, key: str, payload: Any) -> tuple[int, dict[str, Any]]:
        live = self.cluster.node(self.node)
        if live is None:
            raise OpFailed("connect failed: connection refused")
        gate = self.cluster.gate(self.node)
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        # the node serves the request as its own work (a paused node holds it, a killed one
        # drops it); the client waits for the answer or its timeout, whichever comes first
        drive(_serve(live, method, key, payload, self.params), gate,
              functools.partial(_answered, answer))
        if not answer.done():
            timer = loop.call_later(self.timeout_s, _settle, answer, _TIMEOUT)
            try:
                await answer
            finally:
                timer.cancel()
        outcome = answer.result()
        if outcome is _TIMEOUT:
            if gate.state is DEAD:
                raise OpUnknown("ServerDisconnectedError: the node was killed")
            raise OpUnknown("timeout")
        result, exc = outcome
        if exc is not None:
            raise exc
        status, raw = result
        return status, loads_json(raw)


_TIMEOUT = object()


def _value_json(value: Any) -> str:
    """`json.dumps(value, separators=(",", ":"), ensure_ascii=False)`, as `node/http_api.py`
    stores a value; a list of plain ASCII strings (the cart's and the set workloads' values) is
    written directly, which gives the same text."""
    if type(value) is list and all(type(e) is str for e in value):
        text = "".join(value)
        if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
            return '["' + '","'.join(value) + '"]' if value else "[]"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _answered(answer: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if not answer.done():
        answer.set_result((result, exc))


def _settle(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


async def _serve(node: Any, method: str, key: str, payload: Any,
                 params: dict[str, str]) -> tuple[int, bytes]:
    """What `node/http_api.py` does for GET, PUT and DELETE /kv/{key}."""
    cfg = node.config
    timeout = cfg.request_timeout_ms / 1000
    if method == "GET":
        status, body = await node.coordinator.get(key, int(params.get("r", cfg.r)),
                                                  int(params.get("pr", 0)), timeout)
        return status, dumps(body)
    try:
        ctx = clocks.decode_context((payload or {}).get("context"))
    except clocks.ContextError as e:
        return 400, dumps({"error": "bad_context", "message": str(e)})
    w, pw = int(params.get("w", cfg.w)), int(params.get("pw", 0))
    if method == "PUT":
        value = _value_json(payload["value"])
        status, body = await node.coordinator.put(key, value, ctx, False, w, pw, timeout)
    else:
        status, body = await node.coordinator.put(key, None, ctx, True, w, pw, timeout)
    return status, dumps(body)


class SimDynamoStore(DynamoStore):
    """The reference store on the sim platform (set `cluster` before use)."""

    sim: SimCluster  # set by SimPlatform

    def __init__(self, cluster: ClusterSettings, options: Sequence[str] = ()) -> None:
        super().__init__(cluster, options, token="sim")

    def client(self, session: aiohttp.ClientSession | None, node: str, url: str,
               timeout_s: float, final: bool = False) -> Client:
        params = {"pr": str(self.cluster.r)} if final else None
        return SimClient(self.sim, node, timeout_s, params)

    def is_ready(self, spec: NodeSpec) -> bool:
        return self.sim.node(spec.id) is not None

    def drop_from(self, spec: NodeSpec, peers: Sequence[NodeSpec]) -> str | None:
        live = self.sim.node(spec.id)
        if live is None:
            return "node is down"
        live.transport.set_drop_from([p.id for p in peers])
        return None

    async def wait_hints_drained(self, urls: dict[str, str], timeout_s: float,
                                 now: Callable[[], int]) -> dict[str, Any] | None:
        async def count(node: str) -> int | None:
            live = self.sim.node(node)
            if live is None or self.sim.is_paused(node):
                return quiesce.NO_ANSWER
            return int(live.stats_view()["hints_pending"])

        return await quiesce.wait_hints_drained(list(urls), count, timeout_s, now)

    async def final_state(self, urls: Sequence[str], keys: Sequence[str], timeout_s: float,
                          now: Callable[[], int]) -> tuple[int | None, dict[str, Any]]:
        """Poll every key's replicas (from a live node, rotating) until they agree or the
        (virtual) time is up, as `quiesce.wait_converged` does over HTTP."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        nodes = [u.removeprefix(URL_PREFIX) for u in urls]
        views: dict[str, Any] = {}
        while True:
            fetched = await asyncio.gather(*(self._view(nodes, i, key)
                                             for i, key in enumerate(keys)))
            for key, view in zip(keys, fetched, strict=True):
                views[key] = view if view is not None else {"error": "no node answered"}
            if all(v is not None and quiesce.replicas_agree(v) for v in fetched):
                return now(), views
            if loop.time() + 0.5 > deadline:
                return None, views
            await asyncio.sleep(0.5)

    async def _view(self, nodes: list[str], i: int, key: str) -> dict[str, Any] | None:
        for j in range(len(nodes)):
            node = nodes[(i + j) % len(nodes)]
            live = self.sim.node(node)
            if live is None or self.sim.is_paused(node):
                continue
            task = asyncio.get_running_loop().create_task(
                live.coordinator.replicas_view(key, 3.0),
                context=self.sim.gate(node).new_context())
            done, _ = await asyncio.wait({task}, timeout=3.5)
            if done and task.exception() is None:
                return loads_json(dumps(task.result()))
        return None
