"""Issue 11, item 3: a node never reuses a dot for a key, so a write made after the key's
tombstone was reaped survives a later write with a context read before the delete, a leftover
tombstone, and a kill -9 of the coordinator. Each cluster test also runs with the seeded bug
`reuse-dots` (counters derived per key only) and must see the write lost there: that proves the
steps really reach the defect."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from nodeproc import LocalCluster, eventually

from node import clocks
from node.env import ManualClock
from node.reaper import Reaper
from node.replica import LEASE_META, DotCounter, Replica
from node.ring import Ring
from node.storage import MemoryStorage
from node.transport import PeerError

BUGS = [None, "reuse-dots"]
# grace: the shortest allowed (2 x request_timeout_ms); anti-entropy and handoff kept out of the
# way so that nothing but the steps below moves a version
SETTINGS: dict[str, Any] = {"request_timeout_ms": 1000, "tombstone_grace_ms": 2000,
                            "reap_interval_ms": 100, "aae_interval_ms": 3_600_000,
                            "handoff_interval_ms": 3_600_000, "sloppy_quorum": False,
                            "gossip_interval_ms": 200, "probe_interval_ms": 200}


# ---- on real node processes ----

@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    clusters: list[LocalCluster] = []

    def start(bug: str | None, first_host: int) -> LocalCluster:
        c = LocalCluster(tmp_path / f"c{len(clusters)}", size=3, first_host=first_host,
                         bugs=[bug] if bug else [], **SETTINGS)
        clusters.append(c)
        c.start_all()
        for nid in c.ids:
            wait_sees_up(c, nid)
        return c

    yield start
    for c in clusters:
        c.stop_all()


def wait_sees_up(c: LocalCluster, nid: str) -> None:
    """Until every other running node's failure detector holds `nid` up."""
    def seen() -> bool:
        for other in c.ids:
            if other != nid and c.procs[other].poll() is None:
                peers = requests.get(c.url(other, "/admin/status"), timeout=5).json()["peers"]
                if not peers.get(nid, {}).get("up"):
                    return False
        return True

    eventually(seen, 15, f"every node sees {nid} up")


def put(c: LocalCluster, nid: str, key: str, value: Any, context: str | None) -> dict:
    r = requests.put(c.url(nid, f"/kv/{key}"), json={"value": value, "context": context},
                     params={"w": 3}, timeout=15)
    assert r.status_code == 200, r.text
    return r.json()


def delete(c: LocalCluster, nid: str, key: str, context: str) -> dict:
    r = requests.delete(c.url(nid, f"/kv/{key}"), json={"context": context}, params={"w": 3},
                        timeout=15)
    assert r.status_code == 200, r.text
    return r.json()


def read(c: LocalCluster, nid: str, key: str) -> dict:
    r = requests.get(c.url(nid, f"/kv/{key}"), params={"r": 3}, timeout=15)
    assert r.status_code in (200, 404), r.text
    return r.json()


def versions(c: LocalCluster, key: str) -> dict[str, list[dict]] | None:
    """Every primary's stored versions of `key`, or None while one cannot be asked."""
    view = requests.get(c.url("n1", f"/admin/replicas/{key}"), timeout=10).json()["replicas"]
    if not all(r["ok"] for r in view.values()):
        return None
    return {n: r["versions"] for n, r in view.items()}


def counter(version_id: str) -> int:
    return int(version_id.rsplit(":", 1)[1])


def key_led_by(nid: str, prefix: str) -> str:
    """A key whose first primary (the one that reaps it) is `nid`."""
    ring = Ring.build(["n1", "n2", "n3"], 64, 3)
    return next(f"{prefix}{i}" for i in range(1000)
                if ring.preference_list(f"{prefix}{i}")[0] == nid)


def written_then_deleted(c: LocalCluster, key: str, writes: int = 3) -> tuple[str, int]:
    """n1 writes `key` `writes` times (dots n1:1..n1:writes on every primary), a client reads
    it, and n1 deletes it with that context. Returns the context read before the delete and the
    highest counter handed out."""
    ctx = None
    for i in range(writes):
        ctx = put(c, "n1", key, f"v{i}", ctx)["context"]
    before = read(c, "n1", key)
    assert before["values"] == [f"v{writes - 1}"]
    tomb = delete(c, "n1", key, before["context"])
    return before["context"], counter(tomb["version"])


def wait_reaped(c: LocalCluster, key: str) -> None:
    eventually(lambda: (v := versions(c, key)) is not None and all(x == [] for x in v.values()),
               20, f"{key} reaped on every primary")


@pytest.mark.cluster
@pytest.mark.timeout(90)
@pytest.mark.parametrize("bug", BUGS)
def test_write_after_full_reap_survives_a_stale_context(make, bug: str | None) -> None:
    c = make(bug, 20)
    key = key_led_by("n1", "full")
    stale_ctx, top = written_then_deleted(c, key)  # C1 keeps the context it read: {n1:3}
    wait_reaped(c, key)
    new = put(c, "n1", key, "new", None)  # C2, knowing nothing of the key
    stale = put(c, "n1", key, "stale", stale_ctx)  # C1 writes over what it read
    values = read(c, "n2", key)["values"]
    if bug is None:
        assert counter(new["version"]) > top
        assert sorted(values) == ["new", "stale"]  # concurrent: both kept as siblings
    else:
        assert counter(new["version"]) == 1  # the counter started again after the reap
        assert counter(stale["version"]) == top  # past {n1:3} covers n1:1
        assert values == ["stale"]  # the acknowledged "new" is gone


@pytest.mark.cluster
@pytest.mark.timeout(120)
@pytest.mark.parametrize("bug", BUGS)
def test_write_after_partial_reap_survives_a_leftover_tombstone(make, bug: str | None) -> None:
    """A primary keeps the tombstone that the others reaped (the state a reap request that
    never reached it leaves). Made deterministic by restoring that primary's data directory
    from a copy taken before the reap; then a GET merges its tombstone with a fresh write."""
    c = make(bug, 30)
    key = key_led_by("n1", "part")
    _, top = written_then_deleted(c, key)
    c.kill9("n3")  # the tombstone is durable there (w = 3, fsync = "always")
    saved = c.workdir / "n3-before-reap"
    shutil.copytree(c.workdir / "data" / "n3", saved)
    c.start("n3")
    wait_reaped(c, key)
    c.kill9("n3")
    shutil.rmtree(c.workdir / "data" / "n3")
    shutil.copytree(saved, c.workdir / "data" / "n3")
    c.start("n3")
    wait_sees_up(c, "n3")
    left = versions(c, key)
    assert left is not None and left["n1"] == left["n2"] == []
    assert [counter(v["id"]) for v in left["n3"]] == [top] and left["n3"][0]["tombstone"]

    new = put(c, "n1", key, "new", None)  # reaches n3 too (w = 3), which merges it
    values = read(c, "n2", key)["values"]  # merges every primary's copy (and repairs)
    if bug is None:
        assert counter(new["version"]) > top
        assert values == ["new"]
        # read repair leaves every primary with the write (and the harmless old tombstone)
        eventually(lambda: all(any(x["value"] == "new" for x in vs)
                               for vs in (versions(c, key) or {"-": []}).values()),
                   10, "every primary holds the fresh write")
    else:
        assert counter(new["version"]) == 1
        assert values == []  # the tombstone n1:top with past {n1:top-1} covered n1:1


@pytest.mark.cluster
@pytest.mark.timeout(90)
@pytest.mark.parametrize("bug", BUGS)
def test_dots_stay_above_everything_handed_out_after_kill_9(make, bug: str | None) -> None:
    c = make(bug, 40)
    key = key_led_by("n1", "restart")
    actor = requests.get(c.url("n1", "/admin/status"), timeout=5).json()["actor"]
    _, top = written_then_deleted(c, key, writes=5)  # n1:1..n1:6, nothing of n1's is left
    wait_reaped(c, key)
    c.kill9("n1")
    c.start("n1")
    for nid in ("n2", "n3"):
        eventually(lambda nid=nid: requests.get(c.url("n1", "/admin/status"), timeout=5)
                   .json()["peers"][nid]["up"], 15, f"n1 sees {nid} up")
    assert requests.get(c.url("n1", "/admin/status"), timeout=5).json()["actor"] == actor
    after = put(c, "n1", key, "after", None)
    assert after["version"].startswith(actor + ":")
    if bug is None:
        assert counter(after["version"]) > top
    else:
        assert counter(after["version"]) == 1  # n1:1 again, a dot it had handed out before


# ---- in process: the lease and the reaper's retries ----

def test_dot_counter_is_shared_by_keys_and_leased_ahead() -> None:
    async def run() -> None:
        storage = MemoryStorage()
        dots = DotCounter(storage, block=100)
        assert [dots.take(1), dots.take(1), dots.take(1)] == [1, 2, 3]
        assert storage.meta_get(LEASE_META) == "101"  # one write for the whole block
        assert dots.take(50) == 50  # a context from this actor that is further ahead
        assert dots.take(150) == 150 and storage.meta_get(LEASE_META) == "250"
        again = DotCounter(storage, block=100)  # a restart: above everything handed out
        assert again.take(1) == 251

        replica = Replica(storage, "x.1", ManualClock(5))
        first, _, _ = replica.coordinate("k", '"a"', {}, False)
        await replica.storage.delete("k")  # as a reap does
        second, _, _ = replica.coordinate("k", '"b"', {}, False)
        assert second.counter > first.counter  # the key's own state started from nothing

    asyncio.run(run())


def test_reaper_asks_every_primary_and_retries_the_one_it_missed() -> None:
    async def run() -> None:
        ring = Ring.build(["n1", "n2", "n3"], 64, 3)
        key = key_led_by("n1", "r")
        clock = ManualClock(1_000_000)
        replicas = {n: Replica(MemoryStorage(), f"{n}.1", clock) for n in ring.nodes}
        _, siblings, _ = replicas["n1"].coordinate(key, None, {}, True)
        for r in replicas.values():
            await r.merge(key, siblings)
        down: set[str] = set()  # primaries whose reap requests fail

        async def call(peer: str, kind: str, body: Any, timeout: float) -> Any:
            if kind == "read":
                return replicas[peer].read_blob(body[0])
            if kind == "hints_for":
                return {}
            assert kind == "reap"
            if peer in down:  # it answered the checks, then became unreachable
                raise PeerError(peer, "unreachable")
            durable = replicas[peer].reap(body[0], body[1])
            if durable is None:
                return False
            await durable
            return True

        reaper = Reaper("n1", ring, replicas["n1"], call, clock, 2000, 1.0, {},
                        logging.getLogger("test"))
        replicas["n1"].write_hooks.append(reaper.on_write)
        reaper.on_write(key, siblings, None)
        clock.advance(3)
        order = ring.preference_list(key)
        down.add(order[1])  # fails after the checks, when the reaping has begun

        assert await reaper.run_once() == 0
        # the other primaries were still asked; the one missed is remembered
        assert replicas[order[0]].read(key) == [] and replicas[order[2]].read(key) == []
        assert replicas[order[1]].read(key) != []
        assert key in reaper.due()
        assert await reaper.run_once() == 0  # still away: still remembered
        down.clear()
        assert await reaper.run_once() == 1
        assert replicas[order[1]].read(key) == [] and key not in reaper.due()

    asyncio.run(run())


def test_clocks_floor_keeps_new_dots_above_handed_out_ones() -> None:
    assert clocks.next_counter([], {}, "x.1", floor=41) == 42
    assert clocks.next_counter([], {"x.1": (50, 0)}, "x.1", floor=41) == 51
