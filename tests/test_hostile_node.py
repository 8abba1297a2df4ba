"""The hostile-input findings of issue 17 against real node processes, each with the request
that used to hurt: a key's sibling set is bounded, a big key does not knock out other keys'
writes, forged contexts and lone surrogates are refused with a 400 saying why, malformed HTTP is
one WARNING line, and the optional client token guards /kv."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
import pytest
import requests
from nodeproc import LocalCluster

pytestmark = pytest.mark.cluster

BIG = "x" * 900_000  # under the 1 MiB body limit; five of them are over 4 MiB of siblings


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("hostile"), size=3, first_host=80,
                      max_siblings=5, client_token="client-secret") as c:
        c.start_all()
        yield c


AUTH = {"Authorization": "Bearer client-secret"}


def put(c: LocalCluster, nid: str, key: str, value: object, context: str | None = None,
        **params: object) -> requests.Response:
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return requests.put(c.url(nid, f"/kv/{key}?{q}"), json={"value": value, "context": context},
                        headers=AUTH, timeout=30)


def get(c: LocalCluster, nid: str, key: str, **params: object) -> requests.Response:
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return requests.get(c.url(nid, f"/kv/{key}?{q}"), headers=AUTH, timeout=30)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_sibling_count_is_bounded_and_a_write_with_the_context_still_works(
        cluster: LocalCluster) -> None:
    for i in range(5):
        assert put(cluster, "n1", "many", i).status_code == 200
    r = put(cluster, "n1", "many", 5)
    assert r.status_code == 413 and r.json()["error"] == "too_many_siblings"
    assert "max_siblings" in r.json()["message"]
    got = get(cluster, "n1", "many").json()
    assert sorted(got["values"]) == [0, 1, 2, 3, 4]  # the refused write left no trace
    assert put(cluster, "n1", "many", "merged", got["context"]).status_code == 200
    assert get(cluster, "n1", "many").json()["values"] == ["merged"]


def test_a_big_key_is_bounded_and_does_not_knock_out_other_keys(cluster: LocalCluster) -> None:
    statuses = [put(cluster, "n1", "huge", BIG, w=3).status_code for _ in range(6)]
    assert statuses[:4] == [200] * 4 and set(statuses[4:]) == {413}, statuses
    r = put(cluster, "n1", "huge", BIG)
    assert "max_sibling_bytes" in r.json()["message"]
    # every replica holds the same four versions: the sets travelled in one frame each
    view = requests.get(cluster.url("n2", "/admin/replicas/huge"), timeout=30).json()
    assert [len(view["replicas"][n]["versions"]) for n in cluster.ids] == [4, 4, 4]

    def read_big(_: int) -> str:
        r = get(cluster, "n1", "huge", timeout_ms=10_000)
        return "ok" if r.status_code == 200 else r.text[:300]

    def write_other(i: int) -> str:
        r = put(cluster, "n1", f"other-{i}", i, w=3, timeout_ms=10_000)
        return "ok" if r.status_code == 200 else r.text

    with ThreadPoolExecutor(8) as pool:
        reads = [pool.submit(read_big, i) for i in range(12)]
        writes = list(pool.map(write_other, range(40)))
    # before: 53 of 62 such writes failed with "lost", the shared connections torn down
    assert writes == ["ok"] * 40, [w for w in writes if w != "ok"][:3]
    assert [f.result() for f in reads] == ["ok"] * 12
    assert rss_mib(cluster.procs["n1"].pid) < 400


def forged(entries: list) -> str:
    packed = msgpack.packb(entries, use_bin_type=True)
    return "c1." + base64.urlsafe_b64encode(packed).rstrip(b"=").decode()


def test_a_forged_context_is_refused_and_the_key_stays_writable(cluster: LocalCluster) -> None:
    assert put(cluster, "n1", "lockme", "a").status_code == 200
    actor = requests.get(cluster.url("n1", "/admin/status"), timeout=10).json()["actor"]
    for ctx in (forged([[actor, 2**63 - 1, 1]]), forged([["", 1, 1]])):
        r = put(cluster, "n1", "lockme", "b", ctx)
        assert r.status_code == 400 and r.json()["error"] == "bad_context", r.text
        assert "not issued by this cluster" in r.json()["message"]
    got = get(cluster, "n1", "lockme").json()
    assert put(cluster, "n1", "lockme", "c", got["context"]).status_code == 200
    got = get(cluster, "n2", "lockme").json()
    assert got["values"] == ["c"]
    r = requests.delete(cluster.url("n3", "/kv/lockme"), json={"context": got["context"]},
                        headers=AUTH, timeout=10)
    assert r.status_code == 200


def test_a_lone_surrogate_is_a_400_that_says_why(cluster: LocalCluster) -> None:
    body = b'{"value": "\\ud800", "context": null}'
    r = requests.put(cluster.url("n1", "/kv/surrogate"), data=body, headers=AUTH, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "bad_value"
    assert "surrogate" in r.json()["message"]
    body = b'{"value": {"\\udfff": 1}, "context": null}'
    r = requests.put(cluster.url("n1", "/kv/surrogate"), data=body, headers=AUTH, timeout=10)
    assert r.status_code == 400


def test_malformed_http_is_one_warning_line(cluster: LocalCluster) -> None:
    with socket.create_connection((cluster.hosts["n2"], cluster.client_ports["n2"]), 10) as s:
        s.sendall(b"GET /kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")
        s.settimeout(10)
        assert b" 400 " in s.recv(100)
    # a compressed body (benchmarks/fuzz.py found a traceback at ERROR for each, under aiohttp)
    r = requests.put(cluster.url("n2", "/kv/gz"), data=b"not gzip at all",
                     headers={**AUTH, "Content-Encoding": "gzip"}, timeout=10)
    assert r.status_code == 400 and "Content-Encoding 'gzip' is not supported" in r.text
    text = cluster.log_text("n2")
    assert "WARNING n2: malformed HTTP request from 127.0.0." in text
    assert "Content-Length" in text.split("malformed HTTP request from")[1].splitlines()[0]
    assert "Traceback" not in text and "ERROR" not in text
    assert get(cluster, "n2", "many").status_code in (200, 404)  # still serving


def test_the_client_token_guards_kv_only(cluster: LocalCluster) -> None:
    r = requests.get(cluster.url("n1", "/kv/many"), timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = requests.get(cluster.url("n1", "/kv/many"),
                     headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert r.status_code == 401
    assert get(cluster, "n1", "many").status_code == 200
    assert requests.get(cluster.url("n1", "/admin/status"), timeout=10).status_code == 200


def test_insecure_clusters_still_refuse_forged_counters(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, size=1, first_host=86, n=1, r=1, w=1, insecure=True) as c:
        c.start_all()
        assert put(c, "n1", "k", 1).status_code == 200
        ctx = get(c, "n1", "k").json()["context"]
        assert ctx.count(".") == 1  # unsigned: "c1.<payload>"
        actor = requests.get(c.url("n1", "/admin/status"), timeout=10).json()["actor"]
        r = put(c, "n1", "k", 2, forged([[actor, 2**63 - 1, 1]]))
        assert r.status_code == 400 and "was never issued" in r.json()["message"]
        assert put(c, "n1", "k", 3, ctx).status_code == 200
    assert os.path.exists(tmp_path / "cluster.toml")
