"""A real 3-node cluster (processes on 127.0.0.x): quorums, siblings, crashes, durability."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from nodeproc import LocalCluster

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path / "c", size=3) as c:
        c.start_all()
        yield c


def put(c: LocalCluster, nid: str, key: str, value: object, context: str | None = None,
        **params: object) -> requests.Response:
    return requests.put(c.url(nid, f"/kv/{key}"), params=params,
                        json={"value": value, "context": context}, timeout=10)


def get(c: LocalCluster, nid: str, key: str, **params: object) -> requests.Response:
    return requests.get(c.url(nid, f"/kv/{key}"), params=params, timeout=10)


def test_put_then_get_on_every_node(cluster: LocalCluster) -> None:
    r = put(cluster, "n1", "k", {"items": ["a"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["context"], str) and body["clock"]
    assert len(body["replicas"]) >= 2
    for nid in cluster.ids:
        g = get(cluster, nid, "k")
        assert g.status_code == 200, g.text
        assert g.json()["values"] == [{"items": ["a"]}]
        assert g.json()["key"] == "k"
    missing = get(cluster, "n2", "never-written")
    assert missing.status_code == 404 and missing.json()["values"] == []


def test_blind_writes_are_siblings_and_merged_context_replaces_them(cluster: LocalCluster) -> None:
    assert put(cluster, "n1", "s", "one").status_code == 200
    assert put(cluster, "n2", "s", "two").status_code == 200
    g = get(cluster, "n3", "s").json()
    assert sorted(g["values"]) == ["one", "two"]
    r = put(cluster, "n3", "s", "merged", g["context"])
    assert r.status_code == 200
    assert get(cluster, "n1", "s", r=3).json()["values"] == ["merged"]


def test_same_stale_context_through_same_coordinator_gives_siblings(cluster: LocalCluster) -> None:
    base = put(cluster, "n1", "st", "base").json()["context"]
    assert put(cluster, "n1", "st", "left", base).status_code == 200
    assert put(cluster, "n1", "st", "right", base).status_code == 200
    g = get(cluster, "n2", "st", r=3).json()
    assert sorted(g["values"]) == ["left", "right"]
    done = put(cluster, "n1", "st", "both", g["context"])
    assert get(cluster, "n3", "st", r=3).json()["values"] == ["both"]
    assert done.json()["clock"] == get(cluster, "n3", "st").json()["clock"]


def test_delete_writes_a_tombstone(cluster: LocalCluster) -> None:
    ctx = put(cluster, "n1", "d", 1).json()["context"]
    r = requests.delete(cluster.url("n2", "/kv/d"), json={"context": ctx}, timeout=10)
    assert r.status_code == 200, r.text
    g = get(cluster, "n3", "d", r=3)
    assert g.status_code == 404 and g.json()["values"] == []
    view = requests.get(cluster.url("n1", "/admin/replicas/d"), timeout=10).json()
    for rep in view["replicas"].values():
        assert rep["ok"] and [v["tombstone"] for v in rep["versions"]] == [True]
    # a write with the tombstone's context brings the key back
    assert put(cluster, "n1", "d", 2, g.json()["context"]).status_code == 200
    assert get(cluster, "n2", "d").json()["values"] == [2]


def test_one_node_down_quorums_of_two_work_and_three_fail(cluster: LocalCluster) -> None:
    assert put(cluster, "n1", "q", "before").status_code == 200
    cluster.kill9("n3")
    r = put(cluster, "n1", "q", "after", get(cluster, "n1", "q").json()["context"])
    assert r.status_code == 200, r.text
    assert get(cluster, "n2", "q").json()["values"] == ["after"]

    g = get(cluster, "n1", "q", r=3)
    assert g.status_code == 503
    body = g.json()
    assert body["error"] == "quorum_failed" and body["quorum"] == "r"
    assert body["needed"] == 3 and body["acks"] == 2
    assert sorted(body["answered"]) == ["n1", "n2"] and "n3" in body["failed"]
    assert "message" in body

    w = put(cluster, "n2", "q", "w3", w=3)
    assert w.status_code == 503
    wb = w.json()
    assert (wb["quorum"], wb["needed"], wb["acks"], wb["written"]) == ("w", 3, 2, 2)
    assert wb["failed"] == {"n3": "unreachable"}


def test_acknowledged_writes_survive_kill_9(cluster: LocalCluster) -> None:
    def write(i: int) -> requests.Response:
        return put(cluster, cluster.ids[i % 3], f"dur{i}", {"i": i}, w=3)

    with ThreadPoolExecutor(8) as pool:
        acked = [i for i, r in enumerate(pool.map(write, range(200))) if r.status_code == 200]
    assert len(acked) == 200
    for nid in cluster.ids:  # every replica acknowledged: kill them all at once
        cluster.kill9(nid)
    cluster.start_all()
    for i in acked:
        view = requests.get(cluster.url("n1", f"/admin/replicas/dur{i}"), timeout=10).json()
        for nid, rep in view["replicas"].items():
            assert rep["ok"], (nid, rep)
            assert [v["value"] for v in rep["versions"]] == [{"i": i}], (i, nid)


def test_restart_keeps_incarnation_and_wiped_node_gets_a_new_one(cluster: LocalCluster) -> None:
    def status(nid: str) -> dict:
        return requests.get(cluster.url(nid, "/admin/status"), timeout=10).json()

    first = status("n2")
    assert first["actor"] == f"n2.{first['incarnation']}"
    put(cluster, "n2", "inc", "x")
    cluster.kill9("n2")
    cluster.start("n2")
    assert status("n2")["incarnation"] == first["incarnation"]
    cluster.stop("n2")
    shutil.rmtree(cluster.workdir / "data" / "n2")
    cluster.start("n2")
    fresh = status("n2")
    assert fresh["incarnation"] != first["incarnation"]
    # the wiped node coordinates with its new actor id, never reusing the old counters
    g = get(cluster, "n1", "inc").json()
    r = put(cluster, "n2", "inc", "y", g["context"]).json()
    assert fresh["actor"] in r["clock"] and first["actor"] in r["clock"]


def test_partition_endpoint_drops_frames_and_heals(cluster: LocalCluster) -> None:
    url = cluster.url("n1", "/admin/faults/partition")
    denied = requests.put(url, json={"drop_from": ["n2", "n3"]}, timeout=5)
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    hdr = {"X-Admin-Token": "test-token"}
    ok = requests.put(url, json={"drop_from": ["n2", "n3"]}, headers=hdr, timeout=5)
    assert ok.status_code == 200
    status = requests.get(cluster.url("n1", "/admin/status"), timeout=5).json()
    assert status["faults"]["drop_from"] == ["n2", "n3"]
    r = put(cluster, "n1", "p", 1, timeout_ms=300)
    assert r.status_code == 503
    body = r.json()
    assert body["failed"] == {"n2": "timeout", "n3": "timeout"} and body["written"] >= 1
    bad = requests.put(url, json={"drop_from": ["zz"]}, headers=hdr, timeout=5)
    assert bad.status_code == 400
    healed = requests.delete(url, headers=hdr, timeout=5)
    assert healed.status_code == 200
    assert put(cluster, "n1", "p", 2, w=3).status_code == 200


def test_admin_clock_and_status(cluster: LocalCluster) -> None:
    before = time.time() * 1000
    wall = requests.get(cluster.url("n3", "/admin/clock"), timeout=5).json()["wall_ms"]
    assert before - 1000 <= wall <= time.time() * 1000 + 1000
    st = requests.get(cluster.url("n3", "/admin/status"), timeout=5).json()
    assert st["id"] == "n3" and st["ring"]["q"] == 64 and st["ring"]["n"] == 3
    assert st["ring"]["partitions_owned"] in (21, 22)
    assert set(st["peers"]) == {"n1", "n2"}


def test_garbage_on_the_peer_port_does_not_stop_the_node(cluster: LocalCluster) -> None:
    for junk in (b"\x00\x00\x00\x05hello", b"\xff" * 64, b"GET / HTTP/1.0\r\n\r\n"):
        with socket.create_connection((cluster.hosts["n1"], cluster.peer_ports["n1"]), 5) as s:
            s.sendall(junk)
            s.settimeout(5)
            assert s.recv(100) == b""  # the node hung up on us
    assert put(cluster, "n2", "alive", 1, w=3).status_code == 200
    assert "bad frame" in cluster.log_text("n1")


def test_sigterm_stops_the_node_quickly(cluster: LocalCluster) -> None:
    t0 = time.monotonic()
    assert cluster.stop("n1") == 0
    assert time.monotonic() - t0 < 5


def test_non_replica_forwards_writes(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "c4", size=4, first_host=20) as c:
        c.start_all()
        from node.ring import Ring

        ring = Ring.build(c.ids, 64, 3)
        key = next(f"f{i}" for i in range(1000) if "n4" not in ring.preference_list(f"f{i}"))
        r = put(c, "n4", key, "via-n4", w=3)
        assert r.status_code == 200, r.text
        assert {x["node"] for x in r.json()["replicas"]} == set(ring.preference_list(key))
        assert get(c, "n4", key, r=3).json()["values"] == ["via-n4"]
        g = get(c, "n1", key).json()
        assert put(c, "n4", key, "again", g["context"]).status_code == 200
        assert get(c, "n2", key, r=3).json()["values"] == ["again"]
