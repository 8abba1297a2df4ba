"""Run the checkers over a run directory (or a bare history) and write `results.json`.

The runner calls `check_run` after every test; `harness check` calls the same code, so a stored
run re-checked later gets the same verdicts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from sys import intern
from typing import Any

from checkers.history import (
    HistoryError,
    Op,
    iter_jsonl_rows,
    looks_independent,
    op_from_dict,
    pair,
    read_history,
    split_independent,
)
from checkers.linearizability import Budget, Semantics
from checkers.models import get_model
from checkers.registry import ALIASES, CHECKERS, CheckInput, default_model, resolve, run_checkers
from checkers.verdict import EXIT_CODES, combine

HISTORY_NAMES = ("history.jsonl", "history.edn")
__all__ = ["CHECKERS", "CheckError", "check_path", "check_run", "exit_code", "load_input",
           "requested_checkers"]
EXIT_HARNESS = 3


class CheckError(Exception):
    """The input cannot be checked (missing or unreadable); the message says where and why."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise CheckError(f"{path}: cannot read: {e}") from e


def find_history(run_dir: Path) -> Path:
    for name in HISTORY_NAMES:
        if (run_dir / name).is_file():
            return run_dir / name
    raise CheckError(f"{run_dir}: no {' or '.join(HISTORY_NAMES)} in this run directory")


_INTERNED = ("type", "f", "key", "node", "error", "fault")


def stream_history(path: Path, warn: Callable[[str], None]) -> list[Op]:
    """A history's operations, read a line at a time: the same records, errors and torn-line
    rule as `checkers.history.read_history`, which holds the whole file, its lines and every
    decoded record at once (a 200 MB history took 1.4 GiB); here only the operations stay."""
    if is_edn(path):
        return read_history(path, warn)
    source = str(path)
    ops: list[Op] = []
    for n, obj in iter_jsonl_rows(path, warn):
        for name in _INTERNED:  # a few distinct strings, repeated on every line
            v = obj.get(name)
            if type(v) is str:
                obj[name] = intern(v)
        ops.append(op_from_dict(obj, source, n, len(ops)))
    return ops


# models whose own values are lists, so a [k v] value is naturally theirs: never auto-split
PAIR_VALUED_MODELS = ("kv", "set")


def is_edn(history: Path) -> bool:
    return Path(history).suffix == ".edn"


def _independent_fits(ops: list[Op], model: str) -> bool:
    """Splitting is unambiguous for this model: not one whose values are lists, and for
    cas-register every cas carries [k [old new]] (a bare [old new] is a plain cas)."""
    if model in PAIR_VALUED_MODELS:
        return False
    if model == "cas-register":
        return all(isinstance(o.value[1], list) and len(o.value[1]) == 2
                   for o in ops if not o.is_nemesis and o.type == "invoke" and o.f == "cas")
    return True


def _independent(ops: list[Op], history: Path, test: dict[str, Any], model: str | None,
                 independent: bool | None) -> tuple[list[Op], dict[str, Any]]:
    """Split a `jepsen.independent` history into keys when asked (`independent` True), or, when
    not told (None), if it is EDN and unambiguously shaped so (docs/history.md). Returns the ops
    and what was done, for the output."""
    if independent is False:
        return ops, {"split": False, "how": "--no-independent"}
    if independent:
        return split_independent(ops, str(history)), {"split": True, "how": "--independent"}
    if not is_edn(history) or not looks_independent(ops):
        return ops, {"split": False, "how": "not detected"}
    calls, _ = pair(ops, str(history))
    chosen = model or default_model(CheckInput(calls, test=test).workload, calls)
    if not _independent_fits(ops, chosen):
        return ops, {"split": False, "how": f"not detected: the {chosen} model's values are "
                     "pairs of their own"}
    return split_independent(ops, str(history)), {
        "split": True, "how": "auto-detected: every client operation's value is a [key value] "
        "pair (jepsen.independent); --no-independent turns this off"}


def load_input(path: Path, model: str | None = None, budget: Budget | None = None, *,
               initial: Any = None, nil_reads: str | None = None, failed_cas: str = "ignore",
               independent: bool | None = None) -> tuple[CheckInput, Path | None, Path]:
    """(input, run directory or None for a bare history, history file).

    `nil_reads` None: "unknown" (Knossos) for EDN input, "absent" for our JSONL; `independent`
    None: auto-detect (EDN only). What was chosen is in the input's `notes`."""
    path = Path(path)
    if not path.exists():
        raise CheckError(f"{path}: no such file or directory")
    run_dir = path if path.is_dir() else None
    history = find_history(path) if run_dir else path
    test: dict[str, Any] = {}
    replicas = None
    if run_dir is not None:
        if (run_dir / "test.json").is_file():
            t = _read_json(run_dir / "test.json")
            if not isinstance(t, dict):
                raise CheckError(f"{run_dir / 'test.json'}: expected a JSON object")
            test = t
        if (run_dir / "replicas.json").is_file():
            replicas = _read_json(run_dir / "replicas.json")
            if not isinstance(replicas, dict):
                raise CheckError(f"{run_dir / 'replicas.json'}: expected a JSON object")
    warned: list[str] = []  # a torn last line (docs/history.md), said in the results
    try:
        ops = stream_history(history, warned.append)
        ops, split = _independent(ops, history, test, model, independent)
        calls, nemesis = pair(ops, str(history))
    except HistoryError as e:
        raise CheckError(str(e)) from e
    except RecursionError as e:
        raise CheckError(f"{history}: a value is nested too deeply to read ({e})") from e
    if split["split"]:
        split["keys"] = len({c.key for c in calls})
    fmt = "EDN" if is_edn(history) else "JSONL"
    nil_from = "--nil-reads" if nil_reads else f"the default for {fmt} input"
    semantics = Semantics(initial, nil_reads or ("unknown" if is_edn(history) else "absent"),
                          failed_cas)
    inp = CheckInput(calls, nemesis, test, replicas, model, budget or Budget(), semantics)
    inp.notes.update(semantics={**semantics.to_dict(), "nil_reads_from": nil_from},
                     independent=split, history_warnings=warned)
    return inp, run_dir, history


def requested_checkers(checkers: list[str] | None, model: str | None) -> list[str] | None:
    """The checkers to run: a model asks for linearizability with it, so `model` alone means
    linearizable only (the workload's defaults would not judge what was asked), and with
    `checkers` named it adds linearizable to them. None: the workload's defaults."""
    if model is None:
        return checkers or None
    names = list(checkers or [])
    if not any(ALIASES.get(n, n) == "linearizable" for n in names):
        names.append("linearizable")
    return names


def check_path(path: Path, checkers: list[str] | None = None, model: str | None = None,
               budget: Budget | None = None, *, initial: Any = None,
               nil_reads: str | None = None, failed_cas: str = "ignore",
               independent: bool | None = None) -> dict[str, Any]:
    """Check a run directory (writing its results.json) or a bare history file (writing nothing).
    Returns the results of the checkers run: those named, plus linearizable when `model` is
    given (see `requested_checkers`), else the workload's defaults. When checkers were requested,
    a run directory's existing results.json keeps its other checkers' entries and its overall
    verdict is recomputed.
    The keyword options are the linearizability semantics and independent splitting
    (`load_input`); `semantics` (when linearizable ran) and `independent` (when split or asked)
    in the results say what was used.
    Raises CheckError for unreadable input and ValueError for unknown checker or model names."""
    checkers = requested_checkers(checkers, model)
    inp, run_dir, history = load_input(path, model, budget, initial=initial,
                                       nil_reads=nil_reads, failed_cas=failed_cas,
                                       independent=independent)
    if initial is not None and "linearizable" in resolve(checkers, inp.workload):
        # an initial value the model cannot start from is a usage error, not a verdict
        get_model(model or default_model(inp.workload, inp.calls), initial)
    results = run_checkers(inp, checkers)
    test = dict(inp.test) if inp.test else {"workload": inp.workload}
    results["test"] = test
    results["history"] = {"path": str(history), "operations": len(inp.calls),
                          "nemesis_records": len(inp.nemesis)}
    if inp.notes["history_warnings"]:
        results["history"]["warnings"] = inp.notes["history_warnings"]
    if "linearizable" in results["checkers"]:
        results["model"] = inp.model or default_model(inp.workload, inp.calls)
        results["semantics"] = inp.notes["semantics"]
    split = inp.notes["independent"]
    if split["split"] or split["how"] != "not detected":
        results["independent"] = split
    if run_dir is not None:
        write_results(run_dir, _merged(run_dir, results) if checkers else results)
    return results


def _merged(run_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Checkers named by hand replace their own entries in an existing results.json and keep
    the others, so asking for one more checker does not throw the defaults' verdicts away."""
    try:
        old = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return results
    if not isinstance(old, dict) or not isinstance(old.get("checkers"), dict):
        return results
    merged = dict(old)
    merged["checkers"] = {**old["checkers"], **results["checkers"]}
    # n/a entries are left out by combine, as in run_checkers
    merged["verdict"] = combine(c.get("verdict", "unknown") for c in merged["checkers"].values()
                                if isinstance(c, dict))
    for k in ("test", "history", "model", "semantics", "independent"):
        if k in results:
            merged[k] = results[k]
    return merged


def check_run(run_dir: Path, checkers: list[str] | None = None,
              model: str | None = None) -> dict[str, Any]:
    """Read test.json, history.jsonl and replicas.json from `run_dir`, run the checkers (the
    workload's defaults unless named), write `results.json` there and return it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckError(f"{run_dir}: not a run directory")
    return check_path(run_dir, checkers, model)


def write_results(run_dir: Path, results: dict[str, Any]) -> Path:
    """Write results.json atomically (a reader never sees half a file)."""
    out = run_dir / "results.json"
    tmp = run_dir / f".results.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(results, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, set | frozenset):
        return sorted(x, key=repr)
    return repr(x)


def exit_code(results: dict[str, Any]) -> int:
    """0 valid, 1 invalid, 2 unknown (3 is for a harness failure, not a verdict)."""
    return EXIT_CODES.get(results.get("verdict", "unknown"), EXIT_CODES["unknown"])
