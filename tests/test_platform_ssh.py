"""The ssh platform against real OpenSSH servers: five namespaces on a bridge, each with its sshd.

One set of hosts for the module (tests/sshhosts.py). The platform is given only the hosts file
(addresses, ports, keys, known_hosts); these tests, which made the hosts, look inside them (their
iptables, their processes, their folders) to check that each fault is real and that nothing of a
run is left behind. Partition, crash and clock runs exit 0 on the correct store and 1 with a
seeded bug, under the same settings; a host that refuses the key, one that is down and one whose
host key is wrong each stop the run before anything is done on any host, naming the host.

Needs root, iproute2, iptables and openssh-server; skipped otherwise, except under CI=true.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sshhosts
from test_platform_support import CLI, PROBE, session_records, skip_or_fail, wait_for

from harness.platforms.ssh_conn import Trust
from harness.platforms.ssh_hosts import load_hosts, parse_hosts
from harness.settings import ClusterSettings
from harness.state import Session

pytestmark = pytest.mark.cluster
RUN_TIMEOUT_S = 150


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    why = sshhosts.missing()
    if why:
        skip_or_fail(f"ssh test hosts: {why}")
    directory = tmp_path_factory.mktemp("sshhosts")
    state = sshhosts.up(directory, count=5)
    state["hosts_file"] = directory / "hosts.toml"
    try:
        yield state
    finally:
        removed = sshhosts.down(directory)
        assert any(line.startswith("namespace") for line in removed)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, HARNESS_STATE_DIR=str(tmp_path / "state"),
                PYTHONPATH=str(Path(__file__).resolve().parent.parent))


def leftovers(state: dict[str, Any]) -> list[str]:
    """Anything of a run on the hosts: a file in a host's dir, a process besides sshd, a rule
    in a chain of ours."""
    found = []
    for h in state["hosts"]:
        data = Path(state["dir"]) / h["name"] / "data"
        found += [f"{h['name']}: file {p}" for p in data.iterdir()] if data.exists() else []
        rules = sshhosts._run(["ip", "netns", "exec", h["namespace"], "iptables", "-S"])
        found += [f"{h['name']}: {r}" for r in rules.splitlines() if "DJH-" in r]
    for pid in sshhosts.host_pids(state):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if not cmd.startswith((sshhosts.SSHD, "sshd:")):  # the listener (its title)
            found.append(f"process {pid}: {cmd[:120]}")
    return found


def harness(args: list[str], env: dict[str, str], timeout: float = RUN_TIMEOUT_S
            ) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=timeout)


def run_args(state: dict[str, Any], out: Path, *extra: str, hosts_file: Path | None = None
             ) -> list[str]:
    return ["run", "--platform", "ssh", "--hosts", str(hosts_file or state["hosts_file"]),
            "--workload", "cart", "--time-limit", "10", "--nemesis-interval", "3",
            "--nemesis-jitter", "0", "--keys", "4", "--ops-per-key", "0", "--display", "quiet",
            "--out", str(out), *extra]


# The three runs, each as on the correct store and with the bug its nemesis catches (the
# settings are the smoke suite's for that bug). The crash run has those of suites/ssh.toml's
# bug-ack-before-write, whose comment says why: N = 1, so that every crash hits the only copy of
# some keys (as suites/smoke.toml's bug-ack-before-write does), 100 keys, 200 ops/s and jittered
# periods.
RUNS = {
    "partition": (["--nemesis", "partition", "--partitions", "halves,majorities-ring,bridge"],
                  "lww"),
    "crash": (["--nemesis", "crash", "--n", "1", "--r", "1", "--w", "1", "--keys", "100",
               "--nemesis-interval", "2", "--nemesis-jitter", "0.5", "--rate", "200"],
              "ack-before-write"),
    "clock": (["--nemesis", "clock"], "lww"),
}


@pytest.mark.parametrize("bug", [False, True], ids=["correct", "bug"])
@pytest.mark.parametrize("fault", list(RUNS))
def test_run_verdicts(hosts: dict[str, Any], env: dict[str, str], tmp_path: Path, fault: str,
                      bug: bool) -> None:
    args, bug_name = RUNS[fault]
    extra = [*args, *(["--bug", bug_name] if bug else [])]
    proc = harness(run_args(hosts, tmp_path / "reports", *extra), env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == (1 if bug else 0), out[-3000:]
    run_dir = next((tmp_path / "reports").glob("*/2*"))
    test = json.loads((run_dir / "test.json").read_text())
    # the report names each node's host, and how its key was checked
    assert test["hosts"]["n3"].startswith(f"h3 (root@{hosts['hosts'][2]['address']}:22)")
    assert "SHA256:" in test["hosts"]["n3"]
    assert test["host_keys"] == f"checked against {Path(hosts['dir']) / 'known_hosts'}"
    assert "iptables" in test["mechanisms"].get("partition", "iptables")
    # every fault was carried out without an error, and really happened
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    done = [op for op in history if op["process"] == "nemesis" and op["f"] == "start"
            and op.get("value", {}).get("errors") is None]
    assert done, "no fault was started"
    assert not [op for op in history if op["process"] == "nemesis" and "error" in op]
    if fault == "clock":
        check_clocks_followed(history)
    # each node's log (and data) came back; the hosts keep nothing of the run
    for node in ("n1", "n5"):
        log = (run_dir / "nodes" / node / "node.log").read_text()
        assert "--- harness: starting" in log
    if fault == "crash":
        restarts = sum((run_dir / "nodes" / n / "node.log").read_text().count("--- harness: start")
                       for n in ("n1", "n2", "n3", "n4", "n5"))
        assert restarts > 5, "no node was killed and started again"
    assert leftovers(hosts) == []
    assert session_records(Path(env["HARNESS_STATE_DIR"])) == []


def check_clocks_followed(history: list[dict[str, Any]]) -> None:
    """Each node's clock, read back over HTTP after every clock step, is where the step put it:
    a bump's offset, a strobe's delta or the true time, the true time after each stop (within
    0.25 s and 5 %, for the round trip on a loaded machine; measured here: a few ms)."""
    steps = [op for op in history if op["process"] == "nemesis" and op.get("fault") == "clock"
             and "measured" in op.get("value", {})]
    assert steps, "no clock step was measured"
    for op in steps:
        v = op["value"]
        for node, got in v["measured"].items():
            if got is None:
                continue
            if op["f"] == "stop":
                wanted = [0.0]
            elif v["kind"] == "bump":
                wanted = [float(v["offsets"].get(node, 0.0))]
            else:  # a strobe flips its nodes between +delta and the true time
                wanted = [0.0, float(v["delta"])] if node in v["nodes"] else [0.0]
            assert any(abs(got - w) <= 0.25 + 0.05 * abs(w) for w in wanted), (node, got, v)


def test_partition_is_real_one_way_and_heal_removes_only_ours(
        hosts: dict[str, Any], tmp_path: Path, env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: a one-way grudge drops n2's packets at n1 (and nothing at n2); pause and
    kill reach the process; heal leaves a rule of someone else's alone."""
    from harness.platforms.ssh import SshPlatform

    monkeypatch.setenv("HARNESS_STATE_DIR", env["HARNESS_STATE_DIR"])
    parsed = load_hosts(hosts["hosts_file"])
    session = Session.create("run", tmp_path)
    h = hosts["hosts"]
    foreign = ["INPUT", "-s", "198.18.0.250", "-j", "DROP"]  # a rule that is not ours
    sshhosts._run(["ip", "netns", "exec", h[0]["namespace"], "iptables", "-A", *foreign])
    platform = SshPlatform(tmp_path / "nodes", ClusterSettings(nodes=3, q=16), session, parsed,
                           Trust(known_hosts=parsed.known_hosts))
    try:
        platform.start()
        assert probe(h[1], h[0]["address"]) == "ok"
        assert platform.partition({"n1": {"n2"}}) == {}
        assert any("DROP" in r and h[1]["address"] in r for r in platform.partition_rules("n1"))
        assert platform.partition_rules("n2") == [] or all(
            "DROP" not in r for r in platform.partition_rules("n2"))
        assert probe(h[1], h[0]["address"]) == "timeout"  # n2 -> n1: dropped at n1
        assert probe(h[2], h[0]["address"]) == "ok"  # n3 -> n1: not in the grudge
        platform.pause("n3")
        assert proc_state(platform, "n3") == "T"
        platform.resume("n3")
        platform.kill("n2")
        assert not platform.is_running("n2")
        assert platform.heal_all() == {}
        assert platform.is_running("n2")
        assert probe(h[1], h[0]["address"]) == "ok"
        rules = sshhosts._run(["ip", "netns", "exec", h[0]["namespace"], "iptables", "-S"])
        assert "-A INPUT -s 198.18.0.250/32 -j DROP" in rules and "DJH-" not in rules
    finally:
        platform.stop()
        session.remove()
        sshhosts._run(["ip", "netns", "exec", h[0]["namespace"], "iptables", "-D", *foreign],
                      check=False)
    assert (tmp_path / "nodes" / "n2" / "node.log").read_text().count("--- harness: start") == 2
    assert leftovers(hosts) == []


def probe(src: dict[str, Any], address: str) -> str:
    """A TCP connection from inside `src`'s namespace to the node's peer port 9000."""
    out = sshhosts._run(["ip", "netns", "exec", src["namespace"], sys.executable, "-c", PROBE,
                         address, "9000", "1.5"], check=False)
    return out.split()[0] if out.split() else "?"


def proc_state(platform: Any, node: str) -> str:
    """The node process's state letter (the test knows the hosts share this pid namespace)."""
    code, out = platform._sh(node, f"cat {platform._pidfile(node)}")
    assert code == 0, out
    return Path(f"/proc/{out.split()[0]}/stat").read_text().rsplit(")", 1)[1].split()[0]


def bad_hosts_file(state: dict[str, Any], tmp_path: Path, **change: Any) -> Path:
    """The module's hosts file with one host's entry changed (h3's, unless `host` says)."""
    text = Path(state["hosts_file"]).read_text()
    target = change.pop("host", "h3")
    blocks = text.split("[[hosts]]")
    for i, block in enumerate(blocks):
        if f'name = "{target}"' in block:
            kept = [line for line in block.splitlines()
                    if line.split(" = ")[0] not in change]
            blocks[i] = "\n".join(kept).rstrip("\n") + "\n" + "".join(
                f"{k} = {json.dumps(v)}\n" for k, v in change.items()) + "\n"
    path = tmp_path / "bad-hosts.toml"
    path.write_text("[[hosts]]".join(blocks))
    parse_hosts(path.read_text())  # still a valid file: the problem is the host
    return path


def wrong_key_hosts(state: dict[str, Any], tmp_path: Path) -> Path:
    known = Path(state["dir"]) / "known_hosts"
    impostors = (Path(state["dir"]) / "known_hosts.impostors").read_text().splitlines()
    lines = known.read_text().splitlines()
    lines[1] = impostors[1]  # h2 presents a key that known_hosts does not have for it
    bad_known = tmp_path / "known_hosts"
    bad_known.write_text("\n".join(lines) + "\n")
    text = Path(state["hosts_file"]).read_text().replace(str(known), str(bad_known))
    path = tmp_path / "wrong-key.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", ["refused-key", "host-down", "wrong-host-key", "no-httptools"])
def test_a_bad_host_stops_the_run_before_anything_is_done(hosts: dict[str, Any],
                                                          env: dict[str, str], tmp_path: Path,
                                                          case: str) -> None:
    if case == "refused-key":
        path = bad_hosts_file(hosts, tmp_path, key=str(Path(hosts["dir"]) / "id_other"))
        host, words = "h3", ["refused the key", "id_other"]
    elif case == "host-down":
        path = bad_hosts_file(hosts, tmp_path, address=hosts["down_address"])
        host, words = "h3", ["cannot be reached"]
    elif case == "wrong-host-key":
        path = wrong_key_hosts(hosts, tmp_path)
        host, words = "h2", ["host key does not match"]
    else:  # reached, but its Python cannot run the node: found before anything is made
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")],
                       check=True, timeout=60)
        path = bad_hosts_file(hosts, tmp_path, host="h4",
                              python=str(tmp_path / "venv" / "bin" / "python3"))
        host, words = "h4", ["cannot run the reference store: no httptools"]
    t0 = time.monotonic()
    proc = harness(run_args(hosts, tmp_path / "reports", "--nemesis", "partition",
                            hosts_file=path), env, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-2000:]
    assert f"host {host} (root@" in out, out[-2000:]
    for word in words:
        assert word in out, out[-2000:]
    assert "Traceback" not in out
    assert time.monotonic() - t0 < 40
    assert leftovers(hosts) == []
    assert session_records(Path(env["HARNESS_STATE_DIR"])) == []


def start_background_run(hosts: dict[str, Any], env: dict[str, str], out: Path
                         ) -> subprocess.Popen:
    proc = subprocess.Popen(CLI + run_args(hosts, out, "--nemesis", "partition", "--time-limit",
                                           "60"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    wait_for(lambda: any(len(p.read_text().splitlines()) > 50
                         for p in out.glob("*/2*/history.jsonl")) or proc.poll() is not None,
             60, "the run's first operations")
    assert proc.poll() is None, proc.communicate()[0][-2000:]
    return proc


def test_ctrl_c_collects_logs_and_leaves_nothing(hosts: dict[str, Any], env: dict[str, str],
                                                 tmp_path: Path) -> None:
    proc = start_background_run(hosts, env, tmp_path / "reports")
    assert leftovers(hosts) != []  # the run is on the hosts now
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=90)[0]
    assert proc.returncode == 3, output[-2000:]
    run_dir = next((tmp_path / "reports").glob("*/2*"))
    for node in ("n1", "n2", "n3", "n4", "n5"):
        assert (run_dir / "nodes" / node / "node.log").stat().st_size > 0
        assert (run_dir / "nodes" / node / "data").is_dir()
    assert leftovers(hosts) == []


def test_cleanup_after_kill_9_of_the_harness(hosts: dict[str, Any], env: dict[str, str],
                                             tmp_path: Path) -> None:
    """The nodes outlive a killed harness (they are on the hosts); `harness cleanup` reaches
    the hosts its session record names, with their keys pinned, and removes the run."""
    proc = start_background_run(hosts, env, tmp_path / "reports")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert any("process" in x for x in leftovers(hosts))
    dry = harness(["cleanup", "--hosts", str(hosts["hosts_file"]), "--dry-run"], env)
    assert dry.stdout.count(": would remove /") == 5, dry.stdout + dry.stderr
    assert any("process" in x for x in leftovers(hosts))
    done = harness(["cleanup"], env)
    assert done.returncode == 0 and "not reached" not in done.stdout, done.stdout
    assert leftovers(hosts) == [], done.stdout
    assert session_records(Path(env["HARNESS_STATE_DIR"])) == []
    again = harness(["cleanup", "--hosts", str(hosts["hosts_file"])], env)
    assert "nothing of ours left on 5" in again.stdout, again.stdout


def test_cleanup_hosts_finds_a_run_without_its_session_record(hosts: dict[str, Any],
                                                              env: dict[str, str],
                                                              tmp_path: Path) -> None:
    proc = start_background_run(hosts, env, tmp_path / "reports")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    for path in (Path(env["HARNESS_STATE_DIR"]) / "sessions").glob("*.json"):
        path.unlink()  # the control node lost its records: the hosts' run.json still say
    done = harness(["cleanup", "--hosts", str(hosts["hosts_file"])], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": done") == 5, done.stdout
    assert leftovers(hosts) == []


# -- the pure parts (no hosts needed) -------------------------------------------------------------


def test_hosts_file_defaults_and_errors() -> None:
    from harness.platforms.ssh_hosts import HostsFileError

    parsed = parse_hosts('[defaults]\nkey = "~/k"\nsudo = true\n[[hosts]]\naddress = "198.18.9.9"\n'
                         '[[hosts]]\nname = "b"\naddress = "db2.example"\nport = 2222\n'
                         'agent = true\n')
    a, b = parsed.hosts
    assert (a.name, a.user, a.port, a.sudo, a.key) == ("198.18.9.9", "root", 22, True,
                                                       str(Path("~/k").expanduser()))
    assert (b.port, b.agent, b.key) == (2222, True, None)
    assert b.where == "b (root@db2.example:2222)"
    for text, words in [
        ("[[hosts]]\naddress = \"1.2.3.4\"\n", "no key"),
        ("[defaults]\nkey = \"k\"\n[[hosts]]\naddress = \"1.2.3.4\"\nport = 0\n", "1..65535"),
        ("[defaults]\nkey = \"k\"\n[[hosts]]\naddress = \"1.2.3.4\"\n[[hosts]]\n"
         "address = \"1.2.3.4\"\nname = \"x\"\n", "same address"),
        ("[defaults]\nkey = \"k\"\ndir = \"rel\"\n[[hosts]]\naddress = \"1.2.3.4\"\n",
         "absolute"),
        ("[defaults]\nkey = \"k\"\npasword = 1\n[[hosts]]\naddress = \"1.2.3.4\"\n",
         "unknown key"),
    ]:
        with pytest.raises(HostsFileError, match=words):
            parse_hosts(text)


def test_partition_rules_match_only_the_runs_ports() -> None:
    from harness.platforms.ssh import heal_script, partition_script, remote_argv

    script = partition_script("DJH-0123abcd", ["198.18.0.3"], [9000, 8000], sudo=True)
    assert ("sudo -n iptables -w 5 -A DJH-0123abcd -s 198.18.0.3 -p tcp -m multiport --ports "
            "8000,9000 -j DROP") in script
    assert "-I INPUT 1 -j DJH-0123abcd" in script
    assert partition_script("DJH-0123abcd", [], [8000], False) == heal_script("DJH-0123abcd",
                                                                              False)
    with pytest.raises(ValueError):
        partition_script("INPUT", ["1.2.3.4"], [1], False)  # never another chain
    host = parse_hosts('[[hosts]]\naddress = "1.2.3.4"\nkey = "k"\npython = "/opt/py"\n'
                       ).hosts[0]
    assert remote_argv([sys.executable, "-m", "node"], host) == ["/opt/py", "-m", "node"]
    assert remote_argv(["/usr/bin/etcd", "--name", "n1"], host) == ["etcd", "--name", "n1"]


def test_accepted_keys_are_recorded_and_a_changed_pinned_key_is_refused(
        hosts: dict[str, Any]) -> None:
    from harness.platforms.base import PlatformError
    from harness.platforms.ssh_conn import Fleet

    parsed = load_hosts(hosts["hosts_file"])
    h1 = parsed.hosts[0]
    fleet = Fleet([h1], Trust(accept=True), 5)
    try:
        fleet.connect_all()
        assert fleet.run("h1", "echo $((6 * 7))").out == "42"
    finally:
        fleet.close()
    expected = subprocess.run(["ssh-keygen", "-lf", str(Path(hosts["dir"]) / "h1" /
                                                      "host_key.pub")],
                              capture_output=True, text=True, check=True).stdout.split()[1]
    assert fleet.fingerprints["h1"] == expected
    # cleanup of an accepting run trusts only the key it recorded
    impostor = (Path(hosts["dir"]) / "h1" / "impostor_key.pub").read_text()
    fleet = Fleet([h1], Trust(pinned={"h1": impostor}), 5)
    with pytest.raises(PlatformError, match="host h1 .*not the one recorded"):
        fleet.connect_all()
