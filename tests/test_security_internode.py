"""Internode authentication on real node processes (issue 17): forged, altered, replayed and
misattributed frames and frames before the handshake are refused, the peer is disconnected and
logged with its address, the node keeps serving and the data is unchanged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from nodeproc import LocalCluster
from rogue_peer import RoguePeer, frame_bytes

from node import clocks
from node.clocks import Version

pytestmark = pytest.mark.cluster

SECRET = "test-cluster-secret-0123456789"  # nodeproc's default
KEY = "precious"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("sec"), size=3, first_host=60,
                      name="seccluster") as c:
        c.start_all()
        r = requests.put(c.url("n1", f"/kv/{KEY}?w=3"),
                         json={"value": "original", "context": None}, timeout=10)
        assert r.status_code == 200, r.text
        yield c


def peer_addr(c: LocalCluster, nid: str = "n1") -> tuple[str, int]:
    return c.hosts[nid], c.peer_ports[nid]


def evil_blob() -> bytes:
    """A sibling set that, if merged, would replace every version of the key: its past claims
    to have seen 2**62 of every actor of the cluster."""
    past = tuple((f"n{i}.{'0' * 8}", 1 << 62, 0) for i in (1, 2, 3))
    return clocks.encode_versions([Version("n2.ffffffff", 1, 0, past, '"evil"')])


def values(c: LocalCluster) -> list:
    got = requests.get(c.url("n1", f"/kv/{KEY}?r=3"), timeout=10).json()
    return got["values"]


def assert_unchanged_and_serving(c: LocalCluster) -> None:
    assert values(c) == ["original"]
    for nid in c.ids:
        assert requests.get(c.url(nid, f"/kv/{KEY}"), timeout=10).json()["values"] == \
            ["original"]
    r = requests.put(c.url("n1", "/kv/after?w=3"), json={"value": 1, "context": None},
                     timeout=10)
    assert r.status_code == 200, r.text  # n1 still talks to its real peers


def test_a_valid_handshake_is_accepted(cluster: LocalCluster) -> None:
    # the control: the helper speaks the protocol, so the refusals below are the node's doing
    p = RoguePeer(peer_addr(cluster))
    try:
        assert p.handshake(SECRET, "seccluster", "n2", "n1")
        reply = p.request("read", [KEY])
        assert reply[3] is True and clocks.decode_versions(reply[4])[0].value == '"original"'
    finally:
        p.close()


def test_wrong_secret_is_refused_both_ways(cluster: LocalCluster) -> None:
    p = RoguePeer(peer_addr(cluster))
    try:
        assert not p.handshake("not-the-secret-at-all", "seccluster", "n2", "n1")
        assert p.channel is None  # and the node's own proof did not verify for us
    finally:
        p.close()
    assert "failed handshake" in cluster.log_text("n1")
    assert "does not hold the cluster secret" in cluster.log_text("n1")
    assert_unchanged_and_serving(cluster)


@pytest.mark.parametrize("claim,name,target,why", [
    ("n9", "seccluster", "n1", "not a member"),
    ("n2", "othercluster", "n1", "this node is in"),
    ("n2", "seccluster", "n3", "meant for"),
])
def test_bad_hello_is_refused(cluster: LocalCluster, claim: str, name: str, target: str,
                              why: str) -> None:
    p = RoguePeer(peer_addr(cluster))
    try:
        assert not p.handshake(SECRET, name, claim, target)
    finally:
        p.close()
    assert why in cluster.log_text("n1")


def test_frames_before_the_handshake_are_refused(cluster: LocalCluster) -> None:
    import msgpack

    p = RoguePeer(peer_addr(cluster))
    try:
        p.send_raw(msgpack.packb([0, 1, "n2", "replicate", [KEY, evil_blob()]],
                                 use_bin_type=True))
        assert p.closed()
    finally:
        p.close()
    assert "expected a hello" in cluster.log_text("n1")
    assert_unchanged_and_serving(cluster)


def test_an_altered_byte_is_refused(cluster: LocalCluster) -> None:
    p = RoguePeer(peer_addr(cluster))
    try:
        assert p.handshake(SECRET, "seccluster", "n2", "n1")
        data = bytearray(p.sealed("replicate", [KEY, evil_blob()]))
        data[20] ^= 0x01
        p.sock.sendall(bytes(data))
        assert p.closed()
    finally:
        p.close()
    assert "fails its MAC" in cluster.log_text("n1")
    assert_unchanged_and_serving(cluster)


def test_a_replayed_frame_is_refused_on_the_same_and_on_another_connection(
        cluster: LocalCluster) -> None:
    p = RoguePeer(peer_addr(cluster))
    q = RoguePeer(peer_addr(cluster))
    try:
        assert p.handshake(SECRET, "seccluster", "n2", "n1")
        frame = p.sealed("ping", None)
        p.sock.sendall(frame)
        assert p.reply()[3] is True  # once: accepted
        p.sock.sendall(frame)  # again: refused
        assert p.closed()
        assert q.handshake(SECRET, "seccluster", "n2", "n1")
        q.sock.sendall(frame)  # on a fresh connection: refused too
        assert q.closed()
    finally:
        p.close()
        q.close()
    assert_unchanged_and_serving(cluster)


def test_a_frame_under_another_members_id_is_refused(cluster: LocalCluster) -> None:
    p = RoguePeer(peer_addr(cluster))
    try:
        assert p.handshake(SECRET, "seccluster", "n2", "n1")
        assert p.request("replicate", [KEY, evil_blob()], sender="n3") is None
    finally:
        p.close()
    assert "claims sender 'n3'" in cluster.log_text("n1")
    assert_unchanged_and_serving(cluster)


def test_an_oversized_frame_before_the_handshake_is_not_buffered(cluster: LocalCluster) -> None:
    p = RoguePeer(peer_addr(cluster))
    try:
        p.sock.sendall(frame_bytes(b"x" * 8000)[:4] + b"x" * 100)  # announces 8000 bytes
        assert p.closed()
    finally:
        p.close()
    assert "over the limit of 4096" in cluster.log_text("n1")


def test_nodes_with_different_secrets_do_not_talk(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, size=2, first_host=70, n=2, r=1, w=1) as c:
        c.start_all()
        c.settings["cluster_secret"] = "another-secret-0123456789"
        c.cluster_file.write_text(c.toml())  # n2 restarts with another secret
        c.stop("n2")
        c.start("n2")
        r = requests.put(c.url("n1", "/kv/k?w=2&timeout_ms=1500"),
                         json={"value": 1, "context": None}, timeout=10)
        assert r.status_code == 503 and r.json()["failed"]["n2"] in ("unreachable", "down")
        assert "failed the handshake" in c.log_text("n1")
        assert "failed handshake" in c.log_text("n2")
        assert "127.0.0." in c.log_text("n1")  # the peer's address is named


def test_insecure_must_be_explicit(tmp_path: Path) -> None:
    import subprocess
    import sys

    c = LocalCluster(tmp_path, size=1, first_host=72, n=1, r=1, w=1)
    c.settings.pop("cluster_secret")
    c.cluster_file.write_text(c.toml())
    proc = subprocess.run([sys.executable, "-m", "node", "--cluster", str(c.cluster_file),
                           "--id", "n1"], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert proc.returncode == 2 and "cluster_secret is required" in proc.stderr
    logging.getLogger(__name__).debug("refused as expected: %s", proc.stderr)
