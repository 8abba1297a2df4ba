"""The wipe nemesis: kill -9 of one node, its data deleted, restarted empty with a new incarnation
(a replaced disk). On real processes (local, netns) the correct store stays valid (anti-entropy
rebuilds the node: convergence and replication valid) and `aae-noop` is caught; the schedule
wipes one node only; the tests it cannot run are refused before anything starts.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from test_harness_run import env, finished_run, history, processes_using, run_cli  # noqa: F401
from test_platform_support import need_netns

from harness.platforms.base import erase
from harness.platforms.local import LocalPlatform
from harness.settings import ClusterSettings
from harness.stores import STORES
from harness.stores.base import NodeSpec
from nemesis.schedule import MIX, parse_faults, plan

# short, but long enough for two wipes of the same node before the time limit (seed 7); keys
# retire after 5 operations, so some live and die between two wipes: nothing but anti-entropy
# gives them back to the wiped node (a key written while it was down comes back with its hint)
WIPE = ["--workload", "cart", "--nemesis", "wipe", "--time-limit", "7", "--nemesis-interval", "2",
        "--rate", "60", "--ops-per-key", "5"]
STARTED = re.compile(r"node (\w+) \(incarnation (\w+)(, new data directory)?\)")


def test_the_schedule_wipes_one_node_only_and_mix_leaves_it_out() -> None:
    nodes = ["n1", "n2", "n3", "n4", "n5"]
    for seed in range(20):
        actions = plan(nodes, ["wipe", "crash", "crash-many", "pause", "power"], 2.0, 60.0,
                       random.Random(seed), jitter=0.5)
        wiped = {n for a in actions if a.fault == "wipe" for n in a.value["nodes"]}
        assert len(wiped) <= 1, (seed, wiped)
        for start in (a for a in actions if a.f == "start" and a.fault == "wipe"):
            # the faults of its period take other nodes
            others = [a for a in actions if a.f == "start" and a.at == start.at
                      and a.fault not in ("wipe", "partition", "clock")]
            assert all(wiped.isdisjoint(a.value["nodes"]) for a in others), seed
    assert "wipe" not in MIX and "wipe" not in parse_faults("mix")
    # a schedule without wipe draws what it drew before the wipe nemesis existed
    again = plan(nodes, ["crash"], 2.0, 30.0, random.Random(3))
    assert [a.value for a in again] == [a.value for a in
                                        plan(nodes, ["crash"], 2.0, 30.0, random.Random(3))]


def test_every_store_that_offers_wipe_says_where_its_data_is(tmp_path: Path) -> None:
    spec = NodeSpec("n1", "127.0.0.1", 1, 2)
    for name, cls in STORES.items():
        store = cls(ClusterSettings())
        paths = store.data_paths(spec, tmp_path)
        if "wipe" in cls.faults:
            assert paths, name
            assert all(p.is_relative_to(tmp_path / "n1") for p in paths), name
        else:
            assert "wipe" in cls.unsupported_faults, name


def test_erase_empties_the_folder_and_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "n1" / "data"
    (data / "sub").mkdir(parents=True)
    (data / "store.sqlite3").write_bytes(b"x" * 10)
    (data / "sub" / "hint").write_bytes(b"y" * 5)
    assert erase([data, tmp_path / "missing"]) == {"files": 2, "bytes": 15}
    assert data.is_dir() and not any(data.iterdir())


@pytest.mark.parametrize(("args", "said"), [
    (["--store", "etcd", "--workload", "cas-register"], "wipe nemesis"),
    (["--store", "redis", "--workload", "set"], "wipe nemesis"),
    (["--workload", "cart", "--w", "1", "--r", "1"], "W >= 2"),
    (["--workload", "cart", "--node-setting", "anti_entropy=false"], "needs anti-entropy"),
    (["--workload", "set", "--node-setting", "handoff_interval_ms=60000"],
     "longer than --quiesce-timeout"),
])
def test_wipe_is_refused_where_it_cannot_be_judged(tmp_path: Path, env: dict[str, str],  # noqa: F811
                                                   args: list[str], said: str) -> None:
    proc = run_cli(["run", *args, "--nemesis", "wipe", "--out", str(tmp_path)], env)
    assert proc.returncode == 3 and said in proc.stdout + proc.stderr, proc.stderr


def test_ssh_platform_refuses_to_wipe() -> None:
    from harness.platforms.ssh import SshPlatform

    with pytest.raises(Exception, match="ssh platform does not wipe"):
        SshPlatform.wipe(None, ["n1"])  # type: ignore[arg-type]


def incarnations(run_dir: Path, node: str) -> list[tuple[str, bool]]:
    """(incarnation, started on an empty data directory) of each start of the node."""
    text = (run_dir / "nodes" / node / "node.log").read_text(errors="replace")
    return [(m.group(2), bool(m.group(3))) for m in STARTED.finditer(text)
            if m.group(1) == node]


@pytest.mark.cluster
@pytest.mark.parametrize(("platform", "bug"), [("local", None), ("local", "aae-noop"),
                                               ("netns", None), ("netns", "aae-noop")])
def test_wipe_on_real_processes(tmp_path: Path, env: dict[str, str],  # noqa: F811
                                platform: str, bug: str | None) -> None:
    if platform == "netns":
        need_netns()
    # the correct store's quiesce ends once anti-entropy rebuilt the node; the bug's never
    # does, so its wait is cut short
    args = [*WIPE, "--platform", platform, *(["--bug", bug, "--quiesce-timeout", "4"] if bug
                                              else [])]
    code, run_dir, output = finished_run(tmp_path / "reports", args, env)
    results = json.loads((run_dir / "results.json").read_text())
    checkers = {name: c["verdict"] for name, c in results["checkers"].items()}
    ops = [o for o in history(run_dir) if o["process"] == "nemesis" and o.get("fault") == "wipe"]
    wipes = [o["value"] for o in ops if o["f"] == "start" and "wiped" in o["value"]]
    assert len(wipes) >= 2, output
    victim = wipes[0]["nodes"][0]
    assert all(w["nodes"] == [victim] and w["wiped"][victim]["files"] > 0 for w in wipes)
    # every start after a wipe: an empty data directory and a new incarnation (a new actor)
    starts = incarnations(run_dir, victim)
    assert len(starts) == len(wipes) + 1 and all(fresh for _, fresh in starts), starts
    assert len({inc for inc, _ in starts}) == len(starts), starts
    recorded = [o["value"]["incarnations"][victim] for o in ops
                if o["f"] == "stop" and "incarnations" in o["value"]]
    assert recorded and set(recorded) <= {inc for inc, _ in starts[1:]}
    if bug is None:
        assert code == 0, output
        assert checkers["convergence"] == checkers["replication"] == "valid", checkers
    else:
        assert code == 1, output
        assert "invalid" in (checkers["convergence"], checkers["replication"]), checkers
    assert not processes_using(run_dir)


def test_a_store_that_does_not_say_where_its_data_is_is_not_wiped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.platforms.base import PlatformError
    from harness.state import Session

    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    cluster = ClusterSettings(nodes=3)
    platform = LocalPlatform(tmp_path / "nodes", cluster, Session.create("run", tmp_path),
                             store=STORES["etcd"](cluster))
    with pytest.raises(PlatformError, match="does not say where"):
        platform.wipe(["n1"])  # refused before anything is killed


@pytest.mark.parametrize("bug", [None, "aae-noop"])
def test_wipe_on_the_sim_platform(tmp_path: Path, env: dict[str, str],  # noqa: F811
                                  bug: str | None) -> None:
    out = tmp_path / "reports"
    proc = run_cli(["run", "--platform", "sim", "--out", str(out), "--display", "lines",
                    "--seed", "7", *WIPE, *(["--bug", bug] if bug else [])], env)
    run_dir = (out / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    checkers = {name: c["verdict"] for name, c in results["checkers"].items()}
    ops = [o["value"] for o in history(run_dir) if o.get("fault") == "wipe"]
    wiped = [v for v in ops if "wiped" in v]
    assert len(wiped) >= 2 and len({v["nodes"][0] for v in wiped}) == 1
    new = [inc for v in ops for inc in v.get("incarnations", {}).values()]
    assert len(new) == len(set(new)) >= 2, new  # a new incarnation at every restart
    if bug is None:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert checkers["convergence"] == checkers["replication"] == "valid", checkers
    else:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "invalid" in (checkers["convergence"], checkers["replication"]), checkers
