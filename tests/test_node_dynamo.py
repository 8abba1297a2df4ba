"""Issue 3 on a real 5-node cluster (N=3): failure detection and gossip, sloppy quorum with
durable hinted handoff, strict quorums, read repair, Merkle anti-entropy, tombstones, KV679."""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from nodeproc import LocalCluster, eventually

from node.ring import Ring

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

FAST = {"gossip_interval_ms": 200, "probe_interval_ms": 200, "handoff_interval_ms": 300,
        "reap_interval_ms": 300, "aae_interval_ms": 500}


def cluster5(tmp: Path, name: str, first_host: int, **settings: Any) -> LocalCluster:
    c = LocalCluster(tmp / name, size=5, first_host=first_host, **{**FAST, **settings})
    c.start_all()
    # nodes that probed peers not yet started hold them down until the next probe
    eventually(lambda: all(p["up"] for n in c.ids for p in status(c, n)["peers"].values()),
               10, "every node sees every peer up")
    return c


def ring(c: LocalCluster) -> Ring:
    return Ring.build(c.ids, 64, 3)


def put(c: LocalCluster, nid: str, key: str, value: Any, context: str | None = None,
        **params: Any) -> requests.Response:
    return requests.put(c.url(nid, f"/kv/{key}"), params=params,
                        json={"value": value, "context": context}, timeout=15)


def get(c: LocalCluster, nid: str, key: str, **params: Any) -> requests.Response:
    return requests.get(c.url(nid, f"/kv/{key}"), params=params, timeout=15)


def view(c: LocalCluster, nid: str, key: str) -> dict:
    return requests.get(c.url(nid, f"/admin/replicas/{key}"), timeout=15).json()


def values_on(v: dict, node: str) -> list | None:
    rep = v["replicas"].get(node)
    if not rep or not rep["ok"]:
        return None
    return [x["value"] for x in rep["versions"] if not x["tombstone"]]


def status(c: LocalCluster, nid: str) -> dict:
    return requests.get(c.url(nid, "/admin/status"), timeout=5).json()


def sees(c: LocalCluster, observers: list[str], peer: str, up: bool) -> bool:
    return all(status(c, o)["peers"][peer]["up"] == up for o in observers)


def test_failure_detector_and_gossip(tmp_path: Path) -> None:
    with cluster5(tmp_path, "fd", 40) as c:
        others = [n for n in c.ids if n != "n3"]
        hashes = {status(c, n)["ring"]["hash"] for n in c.ids}
        assert len(hashes) == 1
        eventually(lambda: all(set(status(c, n)["membership"]) == set(c.ids) for n in c.ids),
                   10, "every node hears of every member through gossip")
        before = status(c, "n1")["membership"]["n3"]["generation"]
        c.kill9("n3")
        eventually(lambda: sees(c, others, "n3", False), 10, "every peer sees n3 down")
        c.start("n3")
        t0 = time.monotonic()
        eventually(lambda: sees(c, others, "n3", True), 5, "every peer sees n3 up again")
        assert time.monotonic() - t0 < 5
        eventually(lambda: status(c, "n1")["membership"]["n3"]["generation"] > before, 10,
                   "gossip carries n3's new generation")
        # a partition looks real to the failure detector: probes are dropped too
        hdr = {"X-Admin-Token": "test-token"}
        r = requests.put(c.url("n1", "/admin/faults/partition"), json={"drop_from": ["n2"]},
                         headers=hdr, timeout=5)
        assert r.status_code == 200
        eventually(lambda: not status(c, "n1")["peers"]["n2"]["up"], 10, "n1 sees n2 down")
        requests.delete(c.url("n1", "/admin/faults/partition"), headers=hdr, timeout=5)
        eventually(lambda: status(c, "n1")["peers"]["n2"]["up"], 10, "n1 sees n2 up again")


def test_hinted_handoff_is_durable_and_delivered(tmp_path: Path) -> None:
    with cluster5(tmp_path, "hh", 50, anti_entropy=False, read_repair=False) as c:
        rg = ring(c)
        # keys coordinated by n1, replicated on n2, whose first fallback is the same node
        walks = {f"h{i}": rg.walk(rg.partition(f"h{i}")) for i in range(3000)}
        cands = {k: w for k, w in walks.items() if w[0] == "n1" and "n2" in w[:3]}
        fallback = max({w[3] for w in cands.values()},
                       key=lambda f: sum(w[3] == f for w in cands.values()))
        keys = sorted(k for k, w in cands.items() if w[3] == fallback)[:20]
        assert len(keys) >= 5
        c.kill9("n2")
        for i, key in enumerate(keys):
            r = put(c, "n1", key, {"i": i}, w=2)
            assert r.status_code == 200, r.text
        # with w=3 the answer must wait for the fallback, and says it stood in for n2
        r = put(c, "n1", keys[0], {"i": 0}, get(c, "n1", keys[0]).json()["context"], w=3)
        assert r.status_code == 200, r.text
        assert {"node": fallback, "primary": False, "for": "n2"} in r.json()["replicas"]

        def fallback_stats() -> dict:
            return requests.get(c.url(fallback, "/admin/stats"), timeout=5).json()

        pending: list[int] = []
        eventually(lambda: pending.append(fallback_stats()["hints_pending"])
                   or pending[-1] == len(keys), 10,
                   f"every write left a hint on the fallback (pending: {pending})")
        assert fallback_stats()["hints_stored"] >= len(keys) + 1
        # the fallback crashes and comes back: the hints are on its disk
        c.kill9(fallback)
        c.start(fallback)
        for key in keys[:3]:
            hv = eventually(lambda k=key: view(c, "n1", k)["hints"][fallback]["ok"]
                            and view(c, "n1", k), 10, "the fallback answers")
            held = hv["hints"][fallback]["held"]
            assert [h["owner"] for h in held] == ["n2"], held
        c.start("n2")

        def delivered() -> bool:
            for i, key in enumerate(keys):
                v = view(c, "n1", key)
                if values_on(v, "n2") != [{"i": i}] or v["hints"][fallback]["held"]:
                    return False
            return True

        eventually(delivered, 30, "every hinted write is on n2 and no hint is left", every=0.5)
        stats = requests.get(c.url(fallback, "/admin/stats"), timeout=5).json()
        assert stats["hints_pending"] == 0 and stats["hints_handed_off"] >= len(keys)


def test_strict_quorums_refuse_fallbacks(tmp_path: Path) -> None:
    with cluster5(tmp_path, "strict", 60, sloppy_quorum=False, anti_entropy=False) as c:
        rg = ring(c)
        key = next(f"s{i}" for i in range(1000) if rg.preference_list(f"s{i}")[0] == "n1")
        pref = rg.preference_list(key)
        for nid in pref[1:]:
            c.kill9(nid)
        r = put(c, "n1", key, 1, w=2)
        assert r.status_code == 503, r.text
        body = r.json()
        assert (body["quorum"], body["needed"], body["acks"], body["written"]) == ("w", 2, 1, 1)
        assert body["failed"] == {pref[1]: "unreachable", pref[2]: "unreachable"}
        assert body["answered"] == ["n1"] and not body["fallbacks"]
        assert "w=2 needed 2 replies, got 1" in body["message"]
        for fb in rg.fallbacks(key):
            assert requests.get(c.url(fb, "/admin/stats"), timeout=5).json()["hints_stored"] == 0
    with cluster5(tmp_path, "pw", 70, anti_entropy=False) as c:
        rg = ring(c)
        key = next(f"s{i}" for i in range(1000) if rg.preference_list(f"s{i}")[0] == "n1")
        pref = rg.preference_list(key)
        for nid in pref[1:]:
            c.kill9(nid)
        ok = put(c, "n1", key, 1, w=2)  # sloppy: two fallbacks stand in
        assert ok.status_code == 200, ok.text
        assert sum(not x["primary"] for x in ok.json()["replicas"]) >= 1
        r = put(c, "n1", key, 2, ok.json()["context"], w=2, pw=2)
        assert r.status_code == 503, r.text
        body = r.json()
        assert (body["quorum"], body["needed"], body["acks"]) == ("pw", 2, 1)
        assert body["failed"] == {pref[1]: "down", pref[2]: "down"}
        assert set(body["fallbacks"].values()) == set(pref[1:])
        assert "fallbacks do not count toward pw" in body["message"]
        g = get(c, "n1", key, pr=2)
        assert g.status_code == 503 and g.json()["quorum"] == "pr"


def test_read_repair_fixes_a_stale_replica_after_one_get(tmp_path: Path) -> None:
    # handoff off too: the coordinators keep hints for n3, which missed the writes while down
    with cluster5(tmp_path, "rr", 80, sloppy_quorum=False, anti_entropy=False,
                  handoff_interval_ms=3_600_000) as c:
        rg = ring(c)
        keys = [k for k in (f"r{i}" for i in range(400)) if "n3" in rg.preference_list(k)
                and rg.preference_list(k)[0] != "n3"][:15]
        c.kill9("n3")
        for i, key in enumerate(keys):
            assert put(c, rg.preference_list(key)[0], key, i, w=2).status_code == 200
        c.start("n3")
        assert all(values_on(view(c, "n1", k), "n3") == [] for k in keys)
        for i, key in enumerate(keys):
            g = get(c, "n1", key, r=2)
            assert g.json()["values"] == [i]
        eventually(lambda: all(values_on(view(c, "n1", k), "n3") == [i]
                               for i, k in enumerate(keys)), 10, "read repair reached n3")
        sent = sum(requests.get(c.url(n, "/admin/stats"), timeout=5).json()["read_repairs_sent"]
                   for n in c.ids)
        assert sent >= len(keys)


def roots_agree(c: LocalCluster) -> bool:
    by_node = {n: requests.get(c.url(n, "/admin/aae"), timeout=10).json()["partitions"]
               for n in c.ids}
    for p in range(64):
        roots = {parts[str(p)]["root"] for parts in by_node.values() if str(p) in parts}
        if len(roots) != 1:
            return False
    return True


def test_anti_entropy_alone_converges_a_node_that_missed_1000_writes(tmp_path: Path) -> None:
    # handoff off too: the coordinators keep hints for n4, which missed the writes while down
    with cluster5(tmp_path, "aae", 90, sloppy_quorum=False, read_repair=False,
                  aae_interval_ms=1000, handoff_interval_ms=3_600_000) as c:
        rg = ring(c)
        c.kill9("n4")
        coord = {f"a{i}": rg.preference_list(f"a{i}")[0] for i in range(1000)}
        coord = {k: (p if p != "n4" else rg.preference_list(k)[1]) for k, p in coord.items()}

        def write(key: str) -> int:
            return put(c, coord[key], key, key, w=2).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(write, coord)) == {200}
        mine = [k for k in coord if "n4" in rg.preference_list(k)]
        c.start("n4")
        t0 = time.monotonic()

        def n4_has_all() -> bool:
            aae = requests.get(c.url("n4", "/admin/aae"), timeout=10).json()["partitions"]
            return sum(p["keys"] for p in aae.values()) == len(mine)

        eventually(n4_has_all, 30, "n4 holds every key it replicates", every=0.5)
        took = time.monotonic() - t0
        eventually(lambda: roots_agree(c), 10, "every replica's Merkle root matches")
        for key in mine[:50]:  # and the values, not just the count
            assert values_on(view(c, "n1", key), "n4") == [key]
        stats = requests.get(c.url("n4", "/admin/stats"), timeout=5).json()
        assert stats["read_repairs_sent"] == 0 and stats["hints_stored"] == 0
        repaired = sum(requests.get(c.url(n, "/admin/stats"), timeout=5).json()
                       ["aae_keys_repaired"] for n in c.ids)
        assert repaired >= len(mine)
        print(f"anti-entropy converged {len(mine)} keys on n4 in {took:.1f} s")


def test_delete_stays_deleted_and_tombstone_is_reaped(tmp_path: Path) -> None:
    with cluster5(tmp_path, "tomb", 100, sloppy_quorum=False, read_repair=False,
                  tombstone_grace_ms=2000) as c:
        rg = ring(c)
        key = next(f"t{i}" for i in range(1000) if rg.preference_list(f"t{i}")[0] == "n1")
        pref = rg.preference_list(key)
        victim = pref[2]
        ctx = put(c, "n1", key, "alive", w=3).json()["context"]
        c.kill9(victim)
        d = requests.delete(c.url("n1", f"/kv/{key}"), json={"context": ctx},
                            params={"w": 2}, timeout=10)
        assert d.status_code == 200, d.text
        c.start(victim)
        assert values_on(view(c, "n1", key), victim) == ["alive"]  # the stale replica is back
        seen_tombstone = []

        def reaped() -> bool:
            g = get(c, "n2", key, r=3)
            assert g.status_code in (404, 503) and g.json().get("values", []) == [], g.text
            v = view(c, "n1", key)
            if all(r["ok"] and r["versions"] and all(x["tombstone"] for x in r["versions"])
                   for r in v["replicas"].values()):
                seen_tombstone.append(True)
            return all(r["ok"] and r["versions"] == [] for r in v["replicas"].values())

        eventually(reaped, 30, "the tombstone reaches every replica and is reaped", every=0.3)
        assert seen_tombstone or sum(
            requests.get(c.url(n, "/admin/stats"), timeout=5).json()["aae_keys_repaired"]
            for n in pref) >= 1
        reaps = sum(requests.get(c.url(n, "/admin/stats"), timeout=5).json()["tombstones_reaped"]
                    for n in pref)
        # every primary reaped it; an exchange that raced the reap may copy the tombstone back
        # to a primary that had already reaped it, which is then reaped again
        assert reaps >= 3
        time.sleep(2)  # more anti-entropy rounds: nothing comes back
        assert get(c, "n3", key, r=3).status_code == 404
        assert all(r["versions"] == [] for r in view(c, "n1", key)["replicas"].values())


def test_an_undelivered_hint_holds_the_reap_back(tmp_path: Path) -> None:
    """A stale value waiting as a hint on a fallback would come back if the tombstone were reaped
    before the hint was delivered; the reaper waits for it."""
    with cluster5(tmp_path, "hintreap", 120, read_repair=False, anti_entropy=False,
                  handoff_interval_ms=600_000, tombstone_grace_ms=2000) as c:
        rg = ring(c)
        key = next(f"u{i}" for i in range(1000) if rg.preference_list(f"u{i}")[0] == "n1")
        victim = rg.preference_list(key)[2]
        c.kill9(victim)
        ctx = put(c, "n1", key, "stale", w=3).json()["context"]  # a fallback holds it as a hint
        c.start(victim)
        eventually(lambda: sees(c, ["n1"], victim, True), 10, f"n1 sees {victim} up")
        assert any(view(c, "n1", key)["hints"].values()), "the write waits on a fallback"
        d = requests.delete(c.url("n1", f"/kv/{key}"), json={"context": ctx},
                            params={"w": 3}, timeout=10)
        assert d.status_code == 200, d.text
        time.sleep(3.5)  # several reap rounds past the grace time (2 x request timeout)
        v = view(c, "n1", key)
        assert all(r["ok"] and r["versions"] and all(x["tombstone"] for x in r["versions"])
                   for r in v["replicas"].values()), v
        assert sum(requests.get(c.url(n, "/admin/stats"), timeout=5).json()["tombstones_reaped"]
                   for n in c.ids) == 0


def test_wiped_node_gets_new_incarnation_and_loses_no_acknowledged_write(tmp_path: Path) -> None:
    with cluster5(tmp_path, "kv679", 110, read_repair=False) as c:
        rg = ring(c)
        keys = [f"w{i}" for i in range(300)]
        acked = {}
        for i, key in enumerate(keys):
            r = put(c, rg.preference_list(key)[0], key, {"v": i}, w=2)
            assert r.status_code == 200
            acked[key] = {"v": i}
        old = status(c, "n2")["incarnation"]
        c.stop("n2")
        shutil.rmtree(c.workdir / "data" / "n2")
        c.start("n2")
        assert status(c, "n2")["incarnation"] != old
        # the wiped node coordinates new writes over what it no longer holds
        mine = [k for k in keys if rg.preference_list(k)[0] == "n2"][:20]
        for key in mine:
            g = get(c, "n1", key, r=2).json()
            r = put(c, "n2", key, {"v": "new", "k": key}, g["context"], w=2)
            assert r.status_code == 200
            acked[key] = {"v": "new", "k": key}

        def all_there() -> bool:
            aae = requests.get(c.url("n2", "/admin/aae"), timeout=10).json()["partitions"]
            want = sum(1 for k in keys if "n2" in rg.preference_list(k))
            return sum(p["keys"] for p in aae.values()) >= want

        eventually(all_there, 30, "anti-entropy refills the wiped node", every=0.5)
        eventually(lambda: roots_agree(c), 15, "every replica's Merkle root matches")
        for key, value in acked.items():
            v = view(c, "n1", key)
            for node in rg.preference_list(key):
                assert values_on(v, node) == [value], (key, node, v)
