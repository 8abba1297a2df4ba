"""Cluster-file parsing: good files parse, bad ones fail with a message that says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import ConfigError, parse_cluster

GOOD = """
[cluster]
n = 3
r = 2
w = 2
q = 64
fsync = "os"
data_dir = "d"
bugs = []
cluster_secret = "0123456789abcdef"

[[nodes]]
id = "n1"
host = "127.0.0.2"
client_port = 8001
peer_port = 9001

[[nodes]]
id = "n2"
host = "127.0.0.3"
client_port = 8001
peer_port = 9001

[[nodes]]
id = "n3"
host = "127.0.0.4"
client_port = 8001
peer_port = 9001
data_dir = "/tmp/elsewhere"
"""


def test_good_file_parses() -> None:
    cfg = parse_cluster(GOOD, Path("/base"))
    assert [e.id for e in cfg.nodes] == ["n1", "n2", "n3"]
    assert (cfg.n, cfg.r, cfg.w, cfg.q, cfg.fsync) == (3, 2, 2, 64, "os")
    assert cfg.node_data_dir("n1") == Path("/base/d/n1")
    assert cfg.node_data_dir("n3") == Path("/tmp/elsewhere")
    assert cfg.clock_prune_max == 0 and cfg.bugs == ()


@pytest.mark.parametrize("change, message", [
    (("q = 64", "q = 48"), "power of two"),
    (("r = 2", "r = 4"), "r must be between 1 and 3"),
    (("w = 2", "w = 0"), "w must be between 1 and 3"),
    (("n = 3", "n = 5"), "n must be between 1 and 3"),
    (('fsync = "os"', 'fsync = "sometimes"'), "fsync must be one of"),
    (("bugs = []", 'bugs = ["no-such-bug"]'), "unknown bug name"),
    (("q = 64", "q = 64\nqourum = 2"), "unknown setting"),
    (('id = "n2"', 'id = "n1"'), "duplicate node id"),
    (("client_port = 8001\npeer_port = 9001\n\n[[nodes]]\nid = \"n2\"",
      "client_port = 8001\npeer_port = 8001\n\n[[nodes]]\nid = \"n2\""), "used twice"),
    (("[cluster]", "[cluster"), "not valid TOML"),
    (('host = "127.0.0.2"', "host = 5"), "host must be a string"),
])
def test_bad_files_say_what_is_wrong(change: tuple[str, str], message: str) -> None:
    text = GOOD.replace(*change, 1)
    assert text != GOOD
    with pytest.raises(ConfigError, match=message):
        parse_cluster(text, Path("/base"))


def test_unknown_node_id_lists_the_known_ones() -> None:
    cfg = parse_cluster(GOOD, Path("/"))
    with pytest.raises(ConfigError, match="known: n1, n2, n3"):
        cfg.node("n9")


def test_bug_flags_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="unknown bug"):
        parse_cluster(GOOD, Path("/"), extra_bugs=("made-up",))


def test_settings_of_later_issues_are_accepted_and_reported() -> None:
    cfg = parse_cluster(GOOD.replace("q = 64", "q = 64\nresolution = \"lww\""), Path("/"))
    assert cfg.ignored_keys == ("resolution",)


def test_background_settings_are_read_and_checked() -> None:
    text = GOOD.replace("q = 64", "q = 64\nread_repair = false\naae_interval_ms = 200\n"
                                  "gossip_interval_ms = 50\ntombstone_grace_ms = 2000")
    cfg = parse_cluster(text, Path("/"))
    assert (cfg.read_repair, cfg.anti_entropy, cfg.aae_interval_ms) == (False, True, 200)
    assert (cfg.gossip_interval_ms, cfg.tombstone_grace_ms, cfg.ignored_keys) == (50, 2000, ())
    assert parse_cluster(GOOD, Path("/")).handoff_interval_ms == 1000
    with pytest.raises(ConfigError, match="anti_entropy must be true or false"):
        parse_cluster(GOOD.replace("q = 64", "q = 64\nanti_entropy = 1"), Path("/"))
    with pytest.raises(ConfigError, match="gossip_interval_ms must be between"):
        parse_cluster(GOOD.replace("q = 64", "q = 64\ngossip_interval_ms = 0"), Path("/"))


def test_a_grace_shorter_than_two_request_timeouts_is_refused() -> None:
    """A repair message may be in flight for a request timeout; a tombstone reaped sooner than
    that could see the value it deleted come back."""
    with pytest.raises(ConfigError, match=r"tombstone_grace_ms \(1999\) must be at least twice "
                                          r"request_timeout_ms \(1000\)"):
        parse_cluster(GOOD.replace("q = 64", "q = 64\ntombstone_grace_ms = 1999"), Path("/"))
    with pytest.raises(ConfigError, match=r"tombstone_grace_ms \(60000\).*\(40000\)"):
        parse_cluster(GOOD.replace("q = 64", "q = 64\nrequest_timeout_ms = 40000"), Path("/"))
    cfg = parse_cluster(GOOD.replace("q = 64", "q = 64\nrequest_timeout_ms = 100\n"
                                              "tombstone_grace_ms = 200"), Path("/"))
    assert (cfg.request_timeout_ms, cfg.tombstone_grace_ms) == (100, 200)
