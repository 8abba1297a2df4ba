"""After heal: wait (bounded) until every key's replicas agree, and collect their final views."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp


def version_ids(replica: dict[str, Any]) -> frozenset[str]:
    return frozenset(str(v.get("id")) for v in replica.get("versions", []))


def replicas_agree(view: dict[str, Any]) -> bool:
    """True when every preference-list replica answered and all hold the same version ids."""
    replicas = view.get("replicas") or {}
    wanted = view.get("preference_list") or list(replicas)
    sets = []
    for node in wanted:
        rep = replicas.get(node)
        if not rep or not rep.get("ok"):
            return False
        sets.append(version_ids(rep))
    return len(set(sets)) <= 1


async def fetch_view(session: aiohttp.ClientSession, urls: Sequence[str], key: str,
                     timeout_s: float) -> dict[str, Any] | None:
    """`/admin/replicas/{key}` from the first node that answers."""
    for url in urls:
        try:
            async with session.get(f"{url}/admin/replicas/{quote(key, safe='')}",
                                   timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                if resp.status == 200:
                    body = await resp.json(content_type=None)
                    if isinstance(body, dict):
                        return body
        except (aiohttp.ClientError, TimeoutError, ValueError):
            continue
    return None


async def wait_converged(urls: Sequence[str], keys: Sequence[str], timeout_s: float,
                         now: Callable[[], int], poll_s: float = 0.5,
                         request_timeout_s: float = 3.0, headers: dict[str, str] | None = None
                         ) -> tuple[int | None, dict[str, Any]]:
    """Poll until every key's replicas agree or the time is up.

    Returns (the history time when they first all agreed, or None; the last view of each key).
    """
    deadline = time.monotonic() + timeout_s
    views: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            rotated = list(urls)
            fetched = await asyncio.gather(*(
                fetch_view(session, rotated[i % len(rotated):] + rotated[:i % len(rotated)], key,
                           request_timeout_s)
                for i, key in enumerate(keys)))
            for key, view in zip(keys, fetched, strict=True):
                views[key] = view if view is not None else {"error": "no node answered"}
            if all(v is not None and replicas_agree(v) for v in fetched):
                return now(), views
            if time.monotonic() + poll_s > deadline:
                return None, views
            await asyncio.sleep(poll_s)


def replicas_document(heal_time: int | None, converged_time: int | None,
                      views: dict[str, Any]) -> dict[str, Any]:
    """The `replicas.json` shape the convergence checker reads."""
    keys = {}
    for key, view in sorted(views.items()):
        keys[key] = {"preference_list": view.get("preference_list", []),
                     "replicas": view.get("replicas", {})}
        if "error" in view:
            keys[key]["error"] = view["error"]
    return {"heal_time": heal_time, "converged_time": converged_time, "keys": keys}



NO_ANSWER = -1  # fetch_hints: the node did not answer (down, paused, slow)


async def fetch_hints(session: aiohttp.ClientSession, url: str,
                      timeout_s: float) -> int | None:
    """The `hints_pending` counter of one node's `/admin/stats`: NO_ANSWER if the node did not
    answer, None if it answered without such a counter (it keeps no hints)."""
    try:
        async with session.get(f"{url}/admin/stats",
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                return NO_ANSWER
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return NO_ANSWER
    value = body.get("hints_pending") if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


HintCount = Callable[[str], Awaitable[int | None]]  # node -> hints_pending, NO_ANSWER or None


async def wait_hints_drained(nodes: Sequence[str], count: HintCount, timeout_s: float,
                             now: Callable[[], int], poll_s: float = 0.5) -> dict[str, Any] | None:
    """After heal, poll every node's `hints_pending` (through `count`) until all are 0 or the
    time is up; the loop's clock, so the wait is virtual on the sim platform.

    Every node is up and reachable again, so a store with hinted handoff must deliver every hint
    it holds: one still held after a bounded wait never reached its owner (checkers/handoff.py).
    Returns `{"pending": {node: count, or None if it did not answer}, "drained_time": history
    time or None, "waited_ms"}`; None when the nodes answer without the counter (no hints)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        counts = await asyncio.gather(*(count(n) for n in nodes))
        if counts and all(c is None for c in counts):
            return None
        pending = {n: (None if c in (None, NO_ANSWER) else c)
                   for n, c in zip(nodes, counts, strict=True)}
        drained = all(c == 0 for c in pending.values())
        if drained or loop.time() + poll_s > started + timeout_s:
            return {"pending": pending, "drained_time": now() if drained else None,
                    "waited_ms": round((loop.time() - started) * 1000)}
        await asyncio.sleep(poll_s)
