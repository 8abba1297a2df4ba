"""The sim platform: the real node code in one process on virtual time, deterministic per seed."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from harness.sim.disk import CHECKPOINT_S, SimDisk
from harness.sim.loop import DEAD, PAUSED, NodeGate, VirtualLoop
from harness.sim.net import SimNetwork, SimTransport
from node.transport import PeerError

ROOT = Path(__file__).resolve().parents[1]


def harness(*args: str, cwd: Path, hashseed: str = "0",
            timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hashseed}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_in(loop: VirtualLoop, coro) -> object:
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# ---- the loop ----

def test_virtual_time_jumps_and_a_paused_node_runs_nothing() -> None:
    loop = VirtualLoop()
    ticks: list[tuple[str, float]] = []

    async def tick(name: str) -> None:
        for _ in range(3):
            await asyncio.sleep(1)
            ticks.append((name, loop.time()))

    async def main() -> None:
        a, b = NodeGate("a"), NodeGate("b")
        loop.create_task(tick("a"), context=a.new_context())
        loop.create_task(tick("b"), context=b.new_context())
        await asyncio.sleep(1.5)
        a.state, b.state = PAUSED, DEAD
        await asyncio.sleep(3600)  # an hour of virtual time
        loop.resume(a)
        await asyncio.sleep(5)

    run_in(loop, main())
    # a's second tick was due at 2.0 while paused: it runs at resume, and its clock moved on
    assert ticks == [("a", 1.0), ("b", 1.0), ("a", 3601.5), ("a", 3602.5)]


def test_to_thread_runs_inline_on_the_loop() -> None:
    loop = VirtualLoop()

    async def main() -> int:
        return await asyncio.to_thread(lambda: 41 + 1)

    assert run_in(loop, main()) == 42


# ---- the network ----

def test_one_way_partition_and_dead_nodes() -> None:
    import random

    loop = VirtualLoop()
    net = SimNetwork(random.Random(1))
    a, b = SimTransport(net, "a"), SimTransport(net, "b")

    async def echo(sender: str, kind: str, body: object) -> object:
        return [sender, kind, body]

    a.set_handler(echo)
    b.set_handler(echo)
    net.gates.update(a=NodeGate("a"), b=NodeGate("b"))

    async def main() -> None:
        assert await a.request("b", "ping", {"x": 1}, 1.0) == ["a", "ping", {"x": 1}]
        net.set_grudge({"b": {"a"}})  # b drops what a sends; a still hears b
        t0 = loop.time()
        with pytest.raises(PeerError) as e:
            await a.request("b", "ping", None, 0.5)
        assert e.value.reason == "timeout" and loop.time() - t0 == pytest.approx(0.5)
        # b -> a: the request arrives, but b drops a's reply
        with pytest.raises(PeerError):
            await b.request("a", "ping", None, 0.5)
        net.set_grudge({})
        net.gates["b"].state = DEAD
        with pytest.raises(PeerError) as e:
            await a.request("b", "ping", None, 0.5)
        assert e.value.reason == "unreachable"

    run_in(loop, main())


def test_a_paused_receiver_answers_at_resume_and_a_dead_one_never() -> None:
    """A delivered message's handler runs in the receiver's context (no Task): held while the
    receiver is paused (the sender times out meanwhile), dropped once it is dead."""
    import random

    loop = VirtualLoop()
    net = SimNetwork(random.Random(2))
    a, b = SimTransport(net, "a"), SimTransport(net, "b")
    seen: list[tuple[str, float]] = []

    async def slow(sender: str, kind: str, body: object) -> object:
        seen.append((kind, loop.time()))
        await asyncio.sleep(0.1)
        return kind

    b.set_handler(slow)
    net.gates.update(a=NodeGate("a"), b=NodeGate("b"))

    async def main() -> None:
        assert await a.request("b", "first", None, 1.0) == "first"
        net.gates["b"].state = PAUSED
        with pytest.raises(PeerError) as e:
            await a.request("b", "held", None, 0.5)
        assert e.value.reason == "timeout" and seen[-1][0] == "first"
        loop.resume(net.gates["b"])
        await asyncio.sleep(0)
        assert seen[-1] == ("held", pytest.approx(loop.time()))  # it ran at resume
        later = a.request("b", "never", None, 0.5)
        await asyncio.sleep(0.05)  # delivered, waiting in its sleep
        net.gates["b"].kill()  # the gate alone: its handler never ends, the sender times out
        with pytest.raises(PeerError) as e:
            await later
        assert e.value.reason == "timeout"

    run_in(loop, main())


def test_a_crash_resets_the_requests_pending_at_the_dead_node() -> None:
    """kill -9 of a node fails its peers' requests to it one hop later (as the TCP transport
    fails the requests pending on a connection that closes), not at their timeouts; an answer
    it sent before dying still arrives; a sender that drops the dead node's packets (a
    partition) hears nothing and times out."""
    import random

    from harness.sim.net import BASE_LATENCY_S

    loop = VirtualLoop()
    net = SimNetwork(random.Random(3))
    a, b, c = SimTransport(net, "a"), SimTransport(net, "b"), SimTransport(net, "c")

    async def handler(sender: str, kind: str, body: object) -> object:
        if kind == "slow":
            await asyncio.sleep(10)
        return kind

    b.set_handler(handler)
    net.gates.update(a=NodeGate("a"), b=NodeGate("b"), c=NodeGate("c"))

    async def main() -> None:
        slow = a.request("b", "slow", None, 5.0)
        cut = c.request("b", "slow", None, 5.0)
        fast = a.send("b", "fast", None, 5.0)
        await asyncio.sleep(0.1)  # all delivered; `fast` answered, the slow ones wait
        assert fast.done() and fast.result() == "fast"
        net.set_grudge({"c": {"b"}})  # c drops what b sends: b's reset never reaches c
        t0 = loop.time()
        net.gates["b"].kill()
        assert net.crashed("b") == 1
        with pytest.raises(PeerError) as e:
            await slow
        assert e.value.reason == "lost" and e.value.maybe_delivered
        assert loop.time() - t0 == pytest.approx(BASE_LATENCY_S)
        with pytest.raises(PeerError) as e:
            await cut
        assert e.value.reason == "timeout" and loop.time() == pytest.approx(5.0, abs=0.01)
        # a send to the dead node fails at once (connection refused), as a future
        refused = a.send("b", "fast", None, 1.0)
        assert refused.done() and refused.exception().reason == "unreachable"

    run_in(loop, main())


# ---- the disk ----

@pytest.mark.parametrize("fsync, after_crash, after_power", [
    ("always", b"v", b"v"),  # acknowledged = on the disk
    ("os", b"v", None),  # acknowledged = committed to the OS: a power cut loses it
])
def test_a_crash_keeps_what_the_fsync_policy_made_durable(fsync: str, after_crash: bytes | None,
                                                           after_power: bytes | None) -> None:
    loop = VirtualLoop()

    async def main() -> None:
        disk = SimDisk(fsync)
        await disk.put("k", b"v")  # acknowledged
        disk.crash()
        assert disk.get("k") == after_crash
        disk.power_cut()
        assert disk.get("k") == after_power
        if fsync == "os":  # after a checkpoint it is on the disk
            await disk.put("k", b"w")
            await asyncio.sleep(CHECKPOINT_S * 2)
            disk.power_cut()
            assert disk.get("k") == b"w"

    run_in(loop, main())


def test_fsync_none_acknowledges_before_the_commit_and_a_crash_loses_it() -> None:
    loop = VirtualLoop()

    async def main() -> None:
        disk = SimDisk("none")
        await disk.put("k", b"v")
        assert disk.get("k") == b"v"
        disk.crash()
        assert disk.get("k") is None

    run_in(loop, main())


# ---- whole runs ----

def test_same_seed_same_history_across_processes_and_the_replay_command(tmp_path: Path) -> None:
    """Two processes with different hash seeds (set and dict orders of strings differ), then the
    replay command the first run wrote: one history, byte for byte."""
    args = ["run", "--platform", "sim", "--nemesis", "all", "--workload", "cart",
            "--time-limit", "15", "--seed", "11", "--display", "quiet"]
    first = harness(*args, "--out", str(tmp_path / "a"), cwd=tmp_path, hashseed="1")
    second = harness(*args, "--out", str(tmp_path / "b"), cwd=tmp_path, hashseed="2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    ha = (tmp_path / "a" / "latest" / "history.jsonl").read_bytes()
    hb = (tmp_path / "b" / "latest" / "history.jsonl").read_bytes()
    assert ha.count(b"\n") > 1000 and b'"process":"nemesis"' in ha
    assert ha == hb

    test = json.loads((tmp_path / "a" / "latest" / "test.json").read_text())
    assert test["platform"] == "sim" and test["simulated"]["seed"] == 11
    replay = shlex.split(test["simulated"]["replay"])
    assert replay[:4] == ["harness", "run", "--platform", "sim"]
    out_at = replay.index("--out")
    replay[out_at + 1] = str(tmp_path / "c")
    third = harness(*replay[1:], "--display", "quiet", cwd=tmp_path, hashseed="3")
    assert third.returncode == 0, third.stdout + third.stderr
    assert (tmp_path / "c" / "latest" / "history.jsonl").read_bytes() == ha
    assert (tmp_path / "a" / "latest" / "report.html").exists()

    other = harness(*args[:-4], "--seed", "12", "--display", "quiet",
                    "--out", str(tmp_path / "d"), cwd=tmp_path)
    assert (tmp_path / "d" / "latest" / "history.jsonl").read_bytes() != ha, other.stderr


def other_python_build() -> str | None:
    """Another CPython of this one's version (e.g. Debian's beside pyenv's): a different
    build, compiler and patch level, as another machine would have; None if there is none."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    mine = os.path.realpath(sys.executable)
    candidates = [f"/usr/bin/{name}", f"/usr/local/bin/{name}",
                  *sorted(str(p) for p in Path.home().glob(f".pyenv/versions/*/bin/{name}"))]
    for path in candidates:
        if not os.access(path, os.X_OK) or os.path.realpath(path) == mine:
            continue
        version = subprocess.run([path, "-c", "import sys; print(sys.version)"],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
        if version and version != sys.version:  # another build, not this one under two names
            return path
    return None


def test_same_seed_same_history_on_another_python_build(tmp_path: Path) -> None:
    """The seed decides the history, not the interpreter: the same run under another build of
    this Python (its own patch level and compiler flags), with this one's packages and random
    hash seeds, writes the same bytes."""
    other = other_python_build()
    if other is None:
        pytest.skip(f"this machine has one python{sys.version_info.major}."
                    f"{sys.version_info.minor} only")
    paths = sysconfig.get_paths()
    args = ["-m", "harness", "run", "--platform", "sim", "--nemesis", "all", "--workload", "cart",
            "--time-limit", "10", "--seed", "11", "--display", "quiet"]
    env = {**os.environ, "PYTHONHASHSEED": "random",
           "PYTHONPATH": os.pathsep.join([str(ROOT), paths["purelib"], paths["platlib"]])}
    histories = []
    for python, out in ((sys.executable, "a"), (other, "b")):
        done = subprocess.run([python, *args, "--out", str(tmp_path / out)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, (python, done.stdout[-2000:], done.stderr[-2000:])
        histories.append((tmp_path / out / "latest" / "history.jsonl").read_bytes())
    assert histories[0].count(b"\n") > 500 and histories[0] == histories[1]


def test_other_stores_are_refused_on_sim(tmp_path: Path) -> None:
    done = harness("run", "--platform", "sim", "--store", "etcd", "--workload", "cas-register",
                   "--nemesis", "none", "--out", str(tmp_path), cwd=tmp_path, timeout=60)
    assert done.returncode == 3
    assert "sim platform runs the reference dynamo store" in done.stderr + done.stdout
