"""Keys are checked smallest first; the check stops at the first invalid key unless all keys are
asked for; and keys spread over processes give the same verdict and evidence as one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import checkers.linearizability as lin
from checkers.generate import corrupt_one_read, generate
from checkers.history import Op, pair
from checkers.linearizability import Budget, check_linearizable


def _history(seed: int, bad_keys: int) -> list[Op]:
    """A 6-key register history with `bad_keys` keys each given one read of a value nobody
    wrote."""
    ops = generate("register", n_ops=1200, processes=8, keys=6, info_rate=0.05, seed=seed)
    for k in range(bad_keys):
        mine = [o for o in ops if o.key == f"k{k}"]
        bad = corrupt_one_read(mine, seed + k)
        assert bad is not None
        swap = {id(a): b for a, b in zip(mine, bad, strict=True) if a is not b}
        ops = [swap.get(id(o), o) for o in ops]
    return ops


def _without_timings(evidence: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(evidence, default=repr))
    for k in out["keys"].values():
        k.pop("seconds")
    return out


def test_the_check_stops_at_the_first_invalid_key_unless_all_keys() -> None:
    calls, _ = pair(_history(3, bad_keys=2))
    first = check_linearizable(calls, "register")
    assert first.verdict == "invalid"
    assert len(first.evidence["invalid_keys"]) == 1
    assert first.evidence["stopped_at_first_invalid_key"]
    assert first.evidence["unchecked_keys"] > 0
    assert "--all-keys" in first.summary
    every = check_linearizable(calls, "register", Budget(all_keys=True))
    assert sorted(every.evidence["invalid_keys"]) == ["k0", "k1"]
    assert every.evidence["unchecked_keys"] == 0
    assert first.evidence["invalid_keys"][0] in every.evidence["invalid_keys"]
    # smallest first: no key checked before the invalid one is larger than it
    sizes = [k["ops"] + k["info_ops"] for k in first.evidence["keys"].values()]
    assert sizes == sorted(sizes)


@pytest.mark.parametrize(("bad_keys", "all_keys"), [(0, False), (1, False), (2, False),
                                                    (2, True)])
def test_processes_give_the_answer_of_one_process(monkeypatch: pytest.MonkeyPatch,
                                                  bad_keys: int, all_keys: bool) -> None:
    calls, _ = pair(_history(5, bad_keys))
    one = check_linearizable(calls, "register", Budget(jobs=1, all_keys=all_keys))
    monkeypatch.setattr(lin, "SERIAL_SECONDS", 0.0)  # hand every key to the pool at once
    many = check_linearizable(calls, "register", Budget(jobs=3, all_keys=all_keys))
    assert many.verdict == one.verdict == ("valid" if bad_keys == 0 else "invalid")
    assert many.summary == one.summary
    assert _without_timings(many.evidence) == _without_timings(one.evidence)


def test_harness_check_takes_all_keys_and_jobs(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(o.to_dict()) + "\n" for o in _history(7, bad_keys=2)))

    def check(*flags: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "harness", "check", str(path), "--model",
                              "register", "--json", *flags], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 1, out.stderr
        return json.loads(out.stdout)["checkers"]["linearizable"]["evidence"]

    assert len(check("--jobs", "2")["invalid_keys"]) == 1
    assert sorted(check("--all-keys", "--jobs", "2")["invalid_keys"]) == ["k0", "k1"]
    bad = subprocess.run([sys.executable, "-m", "harness", "check", str(path), "--jobs", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 3 and "--jobs" in bad.stderr  # a usage error
