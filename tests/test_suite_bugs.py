"""Every seeded bug really changes the node's behaviour: the same steps against the correct store
and against the store with the bug, on real node processes, give different answers."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from nodeproc import LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(90)]
TOKEN = "test-token"


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    clusters: list[LocalCluster] = []

    def start(size: int, bug: str | None, **settings: Any) -> LocalCluster:
        c = LocalCluster(tmp_path / f"c{len(clusters)}", size=size,
                         bugs=[bug] if bug else [], **settings)
        clusters.append(c)
        c.start_all()
        return c

    yield start
    for c in clusters:
        c.stop_all()


def put(c: LocalCluster, node: str, key: str, value: Any, context: str | None = None,
        **params: Any) -> requests.Response:
    return requests.put(c.url(node, f"/kv/{key}"), json={"value": value, "context": context},
                        params=params, timeout=10)


def get(c: LocalCluster, node: str, key: str, **params: Any) -> requests.Response:
    return requests.get(c.url(node, f"/kv/{key}"), params=params, timeout=10)


def replicas(c: LocalCluster, node: str, key: str) -> dict[str, Any]:
    return requests.get(c.url(node, f"/admin/replicas/{key}"), timeout=10).json()


def pref(c: LocalCluster, key: str) -> list[str]:
    return replicas(c, c.ids[0], key)["preference_list"]


def held(c: LocalCluster, node: str, key: str) -> set[Any]:
    """The values `node` itself stores for `key` (as /admin/replicas shows them)."""
    view = replicas(c, node, key)["replicas"].get(node, {})
    return {v["value"] for v in view.get("versions", []) if not v["tombstone"]}


def wait_until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def wait_up(c: LocalCluster, node: str, seconds: float = 10) -> None:
    """Until every other live node's failure detector holds `node` up again."""
    def seen() -> bool:
        for other in c.ids:
            if other == node or c.procs[other].poll() is not None:
                continue
            peers = requests.get(c.url(other, "/admin/status"), timeout=5).json()["peers"]
            if not peers.get(node, {}).get("up"):
                return False
        return True

    assert wait_until(seen, seconds), f"{node} not seen up again"


@pytest.mark.parametrize("bug", [None, "lww", "blind-overwrite"])
def test_concurrent_writes_stay_siblings_unless_a_bug_drops_one(make, bug: str | None) -> None:
    c = make(3, bug)
    # two writes with no context through the same coordinator are concurrent
    assert put(c, "n1", "k", "a").status_code == 200
    assert put(c, "n1", "k", "b").status_code == 200
    values = get(c, "n1", "k").json()["values"]
    if bug is None:
        assert sorted(values) == ["a", "b"]
    else:
        assert values == ["b"]  # a's add is gone, though it was acknowledged


@pytest.mark.parametrize("bug", [None, "ack-before-write"])
def test_acknowledged_write_survives_kill_9_unless_acked_from_memory(make, bug: str | None
                                                                     ) -> None:
    c = make(1, bug, n=1, r=1, w=1)
    assert put(c, "n1", "k", "kept?").status_code == 200
    c.kill9("n1")
    c.start("n1")
    values = get(c, "n1", "k").json()["values"]
    assert values == ([] if bug else ["kept?"])


@pytest.mark.parametrize("bug", [None, "strict-counts-fallbacks"])
def test_strict_quorum_refuses_fallbacks(make, bug: str | None) -> None:
    c = make(5, bug, sloppy_quorum=False)
    key = "k"
    p = pref(c, key)
    for node in p[1:]:
        c.kill9(node)
    r = put(c, p[0], key, "v")
    if bug is None:
        assert r.status_code == 503 and r.json()["quorum"] == "w"
    else:
        assert r.status_code == 200
        assert any(not rep["primary"] for rep in r.json()["replicas"])


@pytest.mark.parametrize("bug", [None, "stale-read-r1"])
def test_r2_read_waits_for_two_replies(make, bug: str | None) -> None:
    # no repair at all, or n3 may get "new" (a hint from n1) before it is read
    c = make(3, bug, sloppy_quorum=False, read_repair=False, anti_entropy=False,
             handoff_interval_ms=3_600_000)
    c.kill9("n3")
    assert put(c, "n1", "k", "new").status_code == 200  # on n1 and n2 only
    c.start("n3")
    wait_up(c, "n3")
    # n1 and n2 stopped: only n3's own (empty) reply can come, and R = 2 needs another
    for nid in ("n1", "n2"):
        c.procs[nid].send_signal(signal.SIGSTOP)
    try:
        r = get(c, "n3", "k", r=2, timeout_ms=500)
    finally:
        for nid in ("n1", "n2"):
            c.procs[nid].send_signal(signal.SIGCONT)
    if bug is None:
        assert r.status_code == 503 and r.json()["quorum"] == "r"
        assert get(c, "n3", "k", r=2).json()["values"] == ["new"]  # n1 and n2 answer again
    else:
        assert r.status_code == 404 and r.json()["values"] == []  # stale: it never saw "new"


@pytest.mark.parametrize("bug", [None, "no-handoff"])
def test_hints_reach_the_owner_unless_never_delivered(make, bug: str | None) -> None:
    c = make(5, bug, read_repair=False, anti_entropy=False, handoff_interval_ms=200)
    key = "k"
    owner = pref(c, key)[2]
    coordinator = pref(c, key)[0]
    c.kill9(owner)
    assert put(c, coordinator, key, "hinted").status_code == 200
    c.start(owner)
    wait_up(c, owner)
    delivered = wait_until(lambda: held(c, owner, key) == {"hinted"}, 6)
    assert delivered is (bug is None)


@pytest.mark.parametrize("bug", [None, "aae-noop"])
def test_anti_entropy_repairs_unless_noop(make, bug: str | None) -> None:
    c = make(3, bug, read_repair=False, handoff_interval_ms=3_600_000, aae_interval_ms=200,
             sloppy_quorum=False)
    c.kill9("n3")
    assert put(c, "n1", "k", "missed").status_code == 200
    c.start("n3")
    wait_up(c, "n3")
    repaired = wait_until(lambda: held(c, "n3", "k") == {"missed"}, 6)
    assert repaired is (bug is None)


@pytest.mark.parametrize("bug", [None, "read-repair-clobbers"])
def test_read_repair_merges_unless_it_clobbers(make, bug: str | None) -> None:
    # handoff off too: n1 keeps a hint for n3, which would deliver "new" before read repair
    c = make(3, bug, anti_entropy=False, sloppy_quorum=False, handoff_interval_ms=3_600_000)
    first = put(c, "n1", "k", "old").json()
    assert wait_until(lambda: held(c, "n3", "k") == {"old"}, 5)
    c.kill9("n3")
    assert put(c, "n1", "k", "new", first["context"]).status_code == 200
    c.start("n3")
    wait_up(c, "n3")
    get(c, "n3", "k", r=3)  # n3 coordinates with its stale copy; read repair follows
    time.sleep(1.5)
    if bug is None:
        assert wait_until(lambda: held(c, "n3", "k") == {"new"}, 5)
        assert held(c, "n1", "k") == {"new"}
    else:
        # the acknowledged "new" was replaced by n3's stale copy
        assert wait_until(lambda: held(c, "n1", "k") == {"old"}, 5)


@pytest.mark.parametrize("bug", [None, "reap-early"])
def test_tombstones_wait_for_every_primary_unless_reaped_early(make, bug: str | None) -> None:
    # the shortest grace allowed: twice the request timeout (1 s)
    c = make(3, bug, sloppy_quorum=False, tombstone_grace_ms=2000, reap_interval_ms=100,
             read_repair=False, anti_entropy=False)
    first = put(c, "n1", "k", "doomed").json()
    assert wait_until(lambda: held(c, "n3", "k") == {"doomed"}, 5)
    c.kill9("n3")
    r = requests.delete(c.url("n1", "/kv/k"), json={"context": first["context"]}, timeout=10)
    assert r.status_code == 200

    def versions(node: str) -> list:
        return replicas(c, "n1", "k")["replicas"][node].get("versions", [])

    time.sleep(3.0)  # the grace time and several reaper rounds after it
    if bug is None:
        assert versions("n1") and all(v["tombstone"] for v in versions("n1"))
    else:
        assert wait_until(lambda: versions("n1") == [], 5)  # reaped with n3 still away


@pytest.mark.parametrize("bug", [None, "reuse-dots"])
def test_a_write_after_a_reap_survives_a_stale_context_unless_dots_are_reused(
        make, bug: str | None) -> None:
    c = make(3, bug, sloppy_quorum=False, tombstone_grace_ms=2000, reap_interval_ms=100,
             aae_interval_ms=3_600_000)
    key = next(f"d{i}" for i in range(1000) if pref(c, f"d{i}")[0] == "n1")
    ctx = put(c, "n1", key, "old", w=3).json()["context"]
    ctx = put(c, "n1", key, "older", ctx, w=3).json()["context"]
    stale = get(c, "n1", key, r=3).json()["context"]  # a client keeps this context
    r = requests.delete(c.url("n1", f"/kv/{key}"), json={"context": stale}, params={"w": 3},
                        timeout=10)
    assert r.status_code == 200
    assert wait_until(lambda: all(v.get("ok") and v["versions"] == []
                                  for v in replicas(c, "n1", key)["replicas"].values()), 15)
    assert put(c, "n1", key, "new", w=3).status_code == 200  # n1:1 again with the bug
    assert put(c, "n1", key, "stale", stale, w=3).status_code == 200  # past {n1:2}
    values = sorted(get(c, "n2", key, r=3).json()["values"])
    assert values == (["new", "stale"] if bug is None else ["stale"])
