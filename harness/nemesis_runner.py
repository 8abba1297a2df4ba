"""Carries out a nemesis schedule on a platform, recording every step in the history.

The schedule (from `nemesis.schedule`) says what and when; this module asks the platform to do it,
from a worker thread so the clients keep running, and keeps the list of faults now active.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

from harness.history import History
from harness.platforms.base import Platform
from nemesis.grudges import grudge_to_json, isolate_node
from nemesis.schedule import Action, base_fault

CLOCK_SETTLE_S = 0.05  # libfaketime re-reads the file on the next time call; allow for it


class NemesisRunner:
    def __init__(self, platform: Platform, history: History,
                 holder: Callable[[str], str | None] | None = None) -> None:
        self.platform = platform
        self.history = history
        self.holder = holder  # role -> the node holding it now (targeted partitions and crashes)
        self.active: dict[int, Action] = {}
        self._strobes: dict[int, asyncio.Task] = {}
        self._aimed: dict[int, list[str]] = {}  # start id -> the nodes an aimed crash took

    def describe_active(self) -> list[str]:
        out = []
        for action in self.active.values():
            value = action.value
            targets = value.get("nodes") or sorted(value.get("offsets", {})) or sorted(
                value.get("grudge", {}))
            kind = f" {value['kind']}" if "kind" in value else ""
            out.append(f"{action.fault}{kind} {','.join(targets)}".strip())
        return out

    async def run(self, actions: list[Action], started_ns: int, stop: asyncio.Event) -> None:
        """Carry out every start/stop at its time until `stop` is set; heal is separate."""
        for action in actions:
            if action.f == "heal":
                continue
            delay = action.at - (self.history.now() - started_ns) / 1e9
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
            if stop.is_set():
                return
            await self.execute(action)

    async def execute(self, action: Action) -> dict[str, Any]:
        base = {"process": "nemesis", "f": action.f, "fault": action.fault}
        self.history.append(type="info", value=action.value, **base)
        try:
            result = await self._do(action)
        except Exception as e:  # recorded, and the test goes on: heal will retry
            result = {"error": f"{type(e).__name__}: {e}"}
        if action.f == "start":  # with the nodes it took (an aimed crash: not the stand-in)
            self.active[action.id] = dataclasses.replace(action,
                                                         value={**action.value, **result})
        else:
            self.active.pop(action.id, None)
        self.history.append(type="info", value={**action.value, **result}, **base)
        return result

    async def heal(self, record: bool = True) -> dict[str, Any]:
        """End every fault, whatever the schedule said; recorded as one `heal` operation."""
        for task in self._strobes.values():
            task.cancel()
        await asyncio.gather(*self._strobes.values(), return_exceptions=True)
        self._strobes.clear()
        base = {"process": "nemesis", "type": "info", "f": "heal"}
        if record:
            self.history.append(value={"active": self.describe_active()}, **base)
        errors = await asyncio.to_thread(self.platform.heal_all)
        self.active.clear()
        value: dict[str, Any] = {"healed": True}
        if errors:
            value["errors"] = errors
        if record:
            self.history.append(value=value, **base)
        return value

    async def _do(self, action: Action) -> dict[str, Any]:
        p, v = self.platform, action.value
        if action.fault == "partition":
            extra: dict[str, Any] = {}
            if action.f == "start":
                grudge = {node: set(drop) for node, drop in v["grudge"].items()}
                if "target" in v and self.holder is not None:
                    # aimed at a role: isolate whoever holds it now, not the schedule's stand-in
                    node = await asyncio.to_thread(self.holder, v["target"])
                    if node is not None:
                        grudge = {n: set(d) for n, d in
                                  isolate_node(p.node_ids(), node).items()}
                        extra = {"holder": node, "grudge": grudge_to_json(grudge)}
                    else:
                        extra = {"holder": None}
                errors = await asyncio.to_thread(p.partition, grudge)
            else:
                errors = await asyncio.to_thread(p.heal_partition)
            return {**extra, "errors": errors} if errors else extra
        if action.fault == "clock":
            return await self._clock(action)
        if action.fault in ("crash", "crash-many", "pause"):
            fn = {("crash", "start"): p.kill, ("crash", "stop"): p.restart,
                  ("pause", "start"): p.pause, ("pause", "stop"): p.resume}[
                (base_fault(action.fault), action.f)]
            aimed = await self._aim(action)
            errors = await asyncio.to_thread(_each, fn, aimed.get("nodes", v["nodes"]))
            return {**aimed, "errors": errors} if errors else aimed
        if action.fault in ("power", "wipe"):
            if action.f == "start":  # kill -9, then the disk loses what was unsynced, or all
                hurt = p.power_cut if action.fault == "power" else p.wipe
                return await asyncio.to_thread(_disk_fault, hurt, v["nodes"], action.fault)
            errors = await asyncio.to_thread(_each, p.restart, v["nodes"])
            if action.fault == "wipe":  # the identity it came back with (a new incarnation)
                return {"incarnations": await asyncio.to_thread(_incarnations, p, v["nodes"]),
                        **({"errors": errors} if errors else {})}
            return {"errors": errors} if errors else {}
        if action.fault == "packet":
            if action.f == "start":
                knobs = {k: float(v[k]) for k in ("delay_ms", "jitter_ms", "loss_percent")}
                errors = await asyncio.to_thread(
                    _each, lambda n: p.set_packet(n, **knobs), v["nodes"])
            else:
                errors = await asyncio.to_thread(p.heal_packet)
            return {"errors": errors} if errors else {}
        raise ValueError(f"unknown fault {action.fault!r}")

    async def _aim(self, action: Action) -> dict[str, Any]:
        """For a crash aimed at a role (`target`): whoever holds it now, unless that is a node
        the step says is restarting, instead of the schedule's stand-in; its stop restarts the
        same node. What is returned goes into the step's record."""
        if action.f == "stop":
            nodes = self._aimed.pop(action.id, None)
            return {} if nodes is None else {"nodes": nodes}
        role = action.value.get("target")
        if role is None or self.holder is None:
            return {}
        node = await asyncio.to_thread(self.holder, role)
        if node is None or node in action.value.get("restarting", ()):
            return {"holder": None}
        self._aimed[action.id] = [node]
        return {"holder": node, "nodes": [node]}

    async def _clock(self, action: Action) -> dict[str, Any]:
        p, v = self.platform, action.value
        if action.f == "start" and v["kind"] == "bump":
            for node, offset in v["offsets"].items():
                await asyncio.to_thread(p.set_clock_offset, node, float(offset))
        elif action.f == "start":
            self._strobes[action.id] = asyncio.create_task(
                self._strobe(v["nodes"], float(v["delta"]), float(v["period"])))
        else:
            task = self._strobes.pop(action.id, None)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            for node in v["nodes"]:
                await asyncio.to_thread(p.set_clock_offset, node, 0.0)
        await asyncio.sleep(CLOCK_SETTLE_S)
        measured = await asyncio.to_thread(p.read_clock_offsets)
        return {"measured": measured}

    async def _strobe(self, nodes: list[str], delta: float, period: float) -> None:
        """Flip the nodes' clocks between +delta and the true time every `period` seconds."""
        ahead = False
        while True:
            ahead = not ahead
            for node in nodes:
                await asyncio.to_thread(self.platform.set_clock_offset, node,
                                        delta if ahead else 0.0)
            await asyncio.sleep(period)


def _disk_fault(hurt: Callable[[list[str]], dict[str, dict[str, Any]]], nodes: list[str],
                fault: str) -> dict[str, Any]:
    """A power cut or wipe of the nodes (all killed first, then every disk hurt): what each
    disk lost (`dropped` by a cut, `wiped`), and the errors."""
    try:
        result = hurt(nodes)
    except Exception as e:  # recorded; heal restarts whatever is down
        return {"errors": {node: f"{type(e).__name__}: {e}" for node in nodes}}
    errors = {n: str(r["error"]) for n, r in result.items() if "error" in r}
    lost = {n: r for n, r in result.items() if "error" not in r}
    key = "dropped" if fault == "power" else "wiped"
    return {key: lost, **({"errors": errors} if errors else {})}


def _incarnations(platform: Platform, nodes: list[str]) -> dict[str, str | None]:
    """Each node's incarnation from its status (None when it does not say)."""
    out: dict[str, str | None] = {}
    for node in nodes:
        status = platform.status(node)
        out[node] = str(status["incarnation"]) if status and "incarnation" in status else None
    return out


def _each(fn: Any, nodes: list[str]) -> dict[str, str]:
    errors = {}
    for node in nodes:
        try:
            fn(node)
        except Exception as e:  # a fault on one node must not stop the others
            errors[node] = f"{type(e).__name__}: {e}"
    return errors
