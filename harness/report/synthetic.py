"""Synthetic run directories with the real file formats, for the report's tests, its benchmark and
for previewing the report without a cluster (`python -m harness.report.synthetic DIR`).

The history is generated (concurrent processes, partitions that raise latency and failures,
processes retired after `info`); `invalid=True` plants a lost write, a stale read that breaks
linearizability and a read-your-writes violation, and writes results.json evidence that points
at those very operations, in the checkers' evidence shapes.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path
from typing import Any

from checkers.history import op_from_dict, pair

MS = 1_000_000
S = 1_000_000_000
NODES = ("n1", "n2", "n3", "n4", "n5")


def _events(n_ops: int, concurrency: int, rng: random.Random, keys: int) -> tuple[list, list]:
    """(client records, fault windows) with times in ns; records are (time, order, dict)."""
    rate_per_proc = 25.0  # ops/s per process
    duration = max(2 * S, int(n_ops / (concurrency * rate_per_proc) * S))
    windows = []
    t = 3 * S
    kinds = [("partition", {"kind": "isolate", "grudge": {"n1": ["n2", "n3", "n4", "n5"]}}),
             ("clock", {"kind": "bump", "delta_ms": {"n2": 250}}),
             ("partition", {"kind": "halves", "grudge": {"n1": ["n4", "n5"], "n2": ["n4", "n5"]}})]
    i = 0
    while t < duration - 2 * S:
        fault, value = kinds[i % len(kinds)]
        windows.append((t, min(duration, t + 4 * S), fault, value))
        t += 10 * S
        i += 1
    recs: list[tuple[int, int, dict[str, Any]]] = []
    next_value = 1
    order = 0
    per_proc = n_ops // concurrency + 1
    made = 0
    for worker in range(concurrency):
        proc = worker
        t = rng.randrange(0, 20 * MS)
        for _ in range(per_proc):
            if made >= n_ops:
                break
            faulty = any(a <= t < b for a, b, _, _ in windows)
            key = f"k{rng.randrange(keys)}"
            r = rng.random()
            if r < 0.15:
                f, key, inv_value = "add", "set", next_value
                next_value += 1
            elif r < 0.55:
                f, inv_value = "write", next_value
                next_value += 1
            else:
                f, inv_value = "read", None
            lat = int(rng.lognormvariate(math.log(4 if not faulty else 30), 0.6) * MS)
            roll = rng.random()
            typ = ("info" if roll < (0.03 if faulty else 0.001)
                   else "fail" if roll < (0.12 if faulty else 0.005) else "ok")
            if typ == "info":
                lat = int(2.5 * S)
            node = NODES[rng.randrange(len(NODES))]
            inv = {"time": t, "process": proc, "type": "invoke", "f": f, "key": key,
                   "value": inv_value, "node": node}
            done: dict[str, Any] = {"time": t + lat, "process": proc, "type": typ, "f": f,
                                    "key": key, "node": node, "value": inv_value}
            if typ == "ok" and f == "read":
                sib = 2 if rng.random() < 0.08 else 1
                done["value"] = sorted(rng.sample(range(1, next_value), min(sib, next_value - 1)))
                done["siblings"] = sib
                done["clock"] = {"n1": rng.randrange(1, 50)}
            elif typ != "ok":
                done["error"] = "timeout" if typ == "info" else "quorum_failed: w 1 of 2"
            recs.append((t, order, inv))
            recs.append((t + lat, order + 1, done))
            order += 2
            made += 1
            t += lat + rng.randrange(1 * MS, 60 * MS)
            if typ == "info":
                proc += concurrency  # retired: the worker continues as a new process
    return recs, windows


def make_run(
    run_dir: Path, n_ops: int = 2000, *, invalid: bool = False, seed: int = 1,
    concurrency: int = 10, keys: int = 5, node_stats: bool = True,
) -> Path:
    """Write a run directory (every file of docs/history.md but report.html); return it.
    `node_stats=False` leaves out stats.jsonl, as in runs recorded before it existed."""
    rng = random.Random(seed)
    run_dir = Path(run_dir)
    (run_dir / "nodes").mkdir(parents=True, exist_ok=True)
    recs, windows = _events(n_ops, concurrency, rng, keys)
    end = max((r[0] for r in recs), default=0)
    for a, b, fault, value in windows:
        recs.append((a, -2, {"time": a, "process": "nemesis", "type": "info", "f": "start",
                             "fault": fault, "value": value}))
        recs.append((a + 2 * MS, -1, {"time": a + 2 * MS, "process": "nemesis", "type": "info",
                                      "f": "start", "fault": fault, "value": value}))
        recs.append((b, -2, {"time": b, "process": "nemesis", "type": "info", "f": "stop",
                             "fault": fault, "value": None}))
        recs.append((b + MS, -1, {"time": b + MS, "process": "nemesis", "type": "info",
                                  "f": "stop", "fault": fault, "value": None}))
    recs.sort(key=lambda r: (r[0], r[1]))
    rows = [r[2] for r in recs]
    for i, row in enumerate(rows):
        row["index"] = i
    planted = _plant(rows, windows) if invalid else {}
    with (run_dir / "history.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")

    test = {
        "name": "register-partition+clock", "status": "complete", "seed": seed,
        "command": ["harness", "run", "--workload", "register", "--nemesis", "partition,clock",
                    "--seed", str(seed)],
        "started_at": "2025-01-02T03:04:05+0000",
        "versions": {"python": "3.11.7", "harness": "0.1.0"},
        "platform": "local",
        "mechanisms": {"partition": "simulated: frames dropped in the node transport",
                       "clock": "libfaketime (FAKETIME_TIMESTAMP_FILE)"},
        "nodes": {n: f"http://127.0.0.{i + 2}:8000" for i, n in enumerate(NODES)},
        "settings": {"workload": "register", "nemesis": ["partition", "clock"],
                     "platform": "local", "time_limit": round(end / S, 1),
                     "concurrency": concurrency, "rate": 250.0, "keys": keys, "seed": seed,
                     "cluster": {"n": 3, "r": 2, "w": 2, "sloppy_quorum": True, "nodes": 5}},
    }
    (run_dir / "test.json").write_text(json.dumps(test, indent=1), encoding="utf-8")
    results = _results(rows, planted, test)
    (run_dir / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (run_dir / "replicas.json").write_text(json.dumps({"k0": {"preference_list": list(NODES[:3])}}),
                                           encoding="utf-8")
    with (run_dir / "resources.jsonl").open("w", encoding="utf-8") as f:
        for sec in range(int(end / S) + 1):
            for i, node in enumerate(NODES):
                f.write(json.dumps({"time": sec * S, "node": node,
                                    "cpu_percent": round(10 + 5 * i + rng.random() * 20, 1),
                                    "rss_bytes": (40 + i + sec // 5) * 2**20}) + "\n")
    if node_stats:
        write_stats(run_dir / "stats.jsonl", end, windows, rng)
    for node in NODES:
        d = run_dir / "nodes" / node
        d.mkdir(parents=True, exist_ok=True)
        lines = [f"2025-01-02 03:04:{s:02d} INFO {node} serving" for s in range(5)]
        lines += [f"2025-01-02 03:05:0{s} INFO stored hint for n1 key k{s}" for s in range(3)]
        lines += ["2025-01-02 03:05:10 INFO handoff of 3 hints to n1 done",
                  "2025-01-02 03:05:11 INFO anti-entropy exchange with n2: 1 merkle leaf differs",
                  "2025-01-02 03:05:12 INFO read repair of k1 sent to n3"]
        (d / "node.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return run_dir


def write_stats(path: Path, end: int, windows: list, rng: random.Random) -> None:
    """stats.jsonl as the sampler writes it: during a fault the nodes outside it store hints,
    which drain (handed off) after it ends; n5 restarts halfway, so its counters start over."""
    counters = {n: dict.fromkeys(("hints_stored", "hints_handed_off", "read_repairs_sent",
                                  "aae_exchanges", "aae_keys_repaired", "tombstones_reaped"), 0)
                for n in NODES}
    pending = dict.fromkeys(NODES, 0)
    restart_at = end // 2
    with path.open("w", encoding="utf-8") as f:
        for sec in range(int(end / S) + 1):
            t = sec * S
            faulty = any(a < t <= b for a, b, _, _ in windows)  # in the past second
            for i, node in enumerate(NODES):
                c = counters[node]
                if node == "n5" and restart_at <= t < restart_at + 2 * S:
                    continue  # down: the sampler gets no answer
                if node == "n5" and restart_at + 2 * S <= t < restart_at + 3 * S:
                    c.update(dict.fromkeys(c, 0))  # a new process: counters since its start
                    pending[node] = 0
                if faulty and i > 0:
                    stored = rng.randint(5, 20)
                    c["hints_stored"] += stored
                    pending[node] += stored
                elif pending[node]:
                    sent = min(pending[node], rng.randint(10, 40))
                    pending[node] -= sent
                    c["hints_handed_off"] += sent
                c["read_repairs_sent"] += rng.randint(0, 3) if faulty else 0
                if sec % 10 == i:
                    c["aae_exchanges"] += 4
                    c["aae_keys_repaired"] += rng.randint(0, 6)
                f.write(json.dumps({"time": t + i * 3 * MS, "node": node, **c,
                                    "hints_pending": pending[node],
                                    "tombstones_held": 0}) + "\n")


def _call(rows: list[dict], inv_i: int, done_i: int) -> dict[str, Any]:
    inv, done = rows[inv_i], rows[done_i]
    value = done["value"] if done["type"] == "ok" else inv["value"]
    out = {"process": inv["process"], "f": inv["f"], "value": value, "type": done["type"],
           "time": inv["time"], "end": done["time"], "index": inv["index"], "key": inv["key"]}
    return out


def _pairs(rows: list[dict]) -> list[tuple[int, int]]:
    """(invocation row, completion row) of each completed call, in completion order."""
    calls, _ = pair([op_from_dict(r, "synthetic", i + 1, i) for i, r in enumerate(rows)])
    return sorted(((c.pos, c.end_pos) for c in calls if c.end_pos is not None),
                  key=lambda p: p[1])


def _plant(rows: list[dict], windows: list) -> dict[str, Any]:
    """Make the history wrong in three known places and return where."""
    pairs = _pairs(rows)

    def in_fault(t: int) -> list[str]:
        return sorted({f"{fault} ({v['kind']})" for a, b, fault, v in windows if a <= t <= b})

    adds = [(i, j) for i, j in pairs if rows[j]["f"] == "add" and rows[j]["type"] == "ok"]
    faulted = [p for p in adds if in_fault(rows[p[1]]["time"])] or adds
    lost_i, lost_j = faulted[len(faulted) // 2]
    # a stale read on k1: the last ok read returns a value written before a later ok write
    k1 = [(i, j) for i, j in pairs if rows[i]["key"] == "k1" and rows[j]["type"] == "ok"]
    writes = [(i, j) for i, j in k1 if rows[i]["f"] == "write"]
    reads = [(i, j) for i, j in k1 if rows[i]["f"] == "read"
             and rows[i]["time"] > rows[writes[1][1]]["time"]]
    read_i, read_j = reads[-1]
    earlier = [(i, j) for i, j in writes if rows[j]["time"] < rows[read_i]["time"]]
    stale = rows[earlier[-2][0]]["value"]
    rows[read_j]["value"] = [stale]
    rows[read_j]["siblings"] = 1
    prefix = [(i, j) for i, j in k1 if rows[j]["time"] < rows[read_i]["time"]]
    # read-your-writes: a process's read of k2 right after its own ok write misses it
    ryw = None
    by_proc: dict[Any, list[tuple[int, int]]] = {}
    for i, j in pairs:
        if rows[i]["key"] == "k2" and rows[j]["type"] == "ok":
            by_proc.setdefault(rows[i]["process"], []).append((i, j))
    for seq in by_proc.values():
        for (wi, wj), (ri, rj) in zip(seq, seq[1:], strict=False):
            if rows[wi]["f"] == "write" and rows[ri]["f"] == "read":
                rows[rj]["value"] = []
                ryw = ((wi, wj), (ri, rj))
                break
        if ryw:
            break
    return {"lost": (lost_i, lost_j, in_fault(rows[lost_j]["time"])), "read": (read_i, read_j),
            "prefix": prefix, "stale": stale, "ryw": ryw}


def _results(rows: list[dict], planted: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    adds = sum(1 for r in rows if r.get("f") == "add" and r["type"] == "ok")
    checkers: dict[str, Any] = {}
    if planted:
        li, lj, faults = planted["lost"]
        element = rows[li]["value"]
        checkers["set"] = {
            "verdict": "invalid",
            "summary": f"1 of {adds} acknowledged adds was lost: element {element}, "
                       f"acknowledged at {rows[lj]['time'] / S:.2f} s during "
                       f"{', '.join(faults) or 'no fault'}, is in no final read.",
            "evidence": {"lost": [{"element": element, "add": rows[lj], "faults": faults}],
                         "lost_count": 1, "stable_count": adds - 1, "stale_count": 0,
                         "never_read": [element], "sibling_histogram": {"1": 900, "2": 75}},
        }
        ri, rj = planted["read"]
        read = _call(rows, ri, rj)
        prefix = [_call(rows, i, j) for i, j in planted["prefix"]]
        last_write = next((c["value"] for c in reversed(prefix) if c["f"] == "write"), None)
        expl = (f"Key k1: after {len(prefix)} operations the register holds {last_write}, but the "
                f"read by process {read['process']} returned [{planted['stale']}], an "
                "overwritten value.")
        checkers["linearizability"] = {
            "verdict": "invalid", "summary": expl,
            "evidence": {"keys": {"k1": {"verdict": "invalid", "prefix": prefix[-100:],
                                         "prefix_length": len(prefix),
                                         "unplaceable": [dict(read, why=f"the register holds "
                                                              f"{last_write}")],
                                         "final_state": last_write, "explanation": expl},
                                  "k0": {"verdict": "valid", "prefix": [], "unplaceable": [],
                                         "explanation": ""}},
                         "checked_keys": 2, "total_keys": 2, "invalid_keys": ["k1"],
                         "model": "register"},
        }
        if planted["ryw"]:
            (wi, wj), (ri2, rj2) = planted["ryw"]
            w, r = _call(rows, wi, wj), _call(rows, ri2, rj2)
            checkers["read-your-writes"] = {
                "verdict": "invalid",
                "summary": f"Process {w['process']} wrote {w['value']} to k2 and then read [] "
                           "from it: 1 read-your-writes violation.",
                "evidence": {"violations": [{"write": w, "read": r, "explanation":
                                             f"the read began after the write of {w['value']} "
                                             "was acknowledged, yet returned nothing"}],
                             "count": 1, "strict": True},
            }
        checkers["convergence"] = {
            "verdict": "invalid",
            "summary": "1 of 5 keys still differs between replicas 30 s after the heal.",
            "evidence": {"divergent": {"k3": {"n1": ["n1:4"], "n2": ["n1:4", "n2:7"],
                                              "n3": ["n1:4"]}},
                         "converged_after_ms": None, "keys_checked": 5},
        }
    else:
        checkers["set"] = {
            "verdict": "valid",
            "summary": f"All {adds} acknowledged adds are in the final reads.",
            "evidence": {"lost": [], "lost_count": 0, "stable_count": adds, "stale_count": 3,
                         "never_read": [], "sibling_histogram": {"1": 950, "2": 40, "3": 2}},
        }
        checkers["linearizability"] = {
            "verdict": "valid", "summary": "All 5 keys are linearizable under the register model.",
            "evidence": {"keys": {f"k{i}": {"verdict": "valid", "prefix": [], "unplaceable": [],
                                            "explanation": ""} for i in range(5)},
                         "checked_keys": 5, "total_keys": 5, "invalid_keys": [],
                         "model": "register"},
        }
        checkers["convergence"] = {
            "verdict": "valid",
            "summary": "Every replica of all 5 keys agreed 840 ms after the heal.",
            "evidence": {"divergent": {}, "converged_after_ms": 840, "keys_checked": 5},
        }
    checkers["perf"] = {
        "verdict": "valid", "summary": "Throughput and latency recorded.",
        "evidence": {"availability": {"healthy": 0.995, "partition": 0.91, "clock": 0.99}},
    }
    verdicts = [c["verdict"] for c in checkers.values()]
    verdict = ("invalid" if "invalid" in verdicts else "unknown" if "unknown" in verdicts
               else "valid")
    return {"verdict": verdict, "checkers": checkers, "test": test}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m harness.report.synthetic DIR [OPS] [--invalid]")
    target = make_run(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2
                      and sys.argv[2].isdigit() else 2000, invalid="--invalid" in sys.argv)
    print(target)
