"""Reading histories (JSON Lines and Jepsen EDN) and pairing invocations with completions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkers.history import HistoryError, from_events, pair, read_edn, read_history, read_jsonl


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_jsonl_reads_every_field(tmp_path: Path) -> None:
    lines = [
        {"index": 0, "time": 5, "process": 0, "type": "invoke", "f": "read", "key": "k",
         "value": None, "node": "n1"},
        {"index": 1, "time": 9, "process": 0, "type": "ok", "f": "read", "key": "k",
         "value": [1, 2], "clock": {"a": 2}, "siblings": 2, "final": True},
    ]
    p = write(tmp_path, "history.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    ops = read_jsonl(p)
    assert [o.type for o in ops] == ["invoke", "ok"]
    assert ops[1].clock == {"a": 2} and ops[1].siblings == 2 and ops[1].final
    calls, nemesis = pair(ops)
    assert len(calls) == 1 and not nemesis
    assert calls[0].result == [1, 2] and calls[0].end == 9 and calls[0].type == "ok"


def test_jsonl_bad_line_is_named(tmp_path: Path) -> None:
    good = json.dumps({"process": 0, "type": "invoke", "f": "read", "value": None})
    p = write(tmp_path, "h.jsonl", f"{good}\n{{oops\n{good}\n")
    with pytest.raises(HistoryError, match=r"line 2: not valid JSON"):
        read_jsonl(p)


def test_jsonl_missing_field_and_bad_type_are_named(tmp_path: Path) -> None:
    p = write(tmp_path, "h.jsonl", json.dumps({"process": 0, "f": "read"}) + "\n")
    with pytest.raises(HistoryError, match=r"line 1: missing field 'type'"):
        read_jsonl(p)
    p = write(tmp_path, "h2.jsonl",
              json.dumps({"process": 0, "type": "done", "f": "read"}) + "\n")
    with pytest.raises(HistoryError, match=r"line 1: 'type' must be one of"):
        read_jsonl(p)


def test_torn_last_line_of_a_killed_harness_is_dropped(tmp_path: Path) -> None:
    good = json.dumps({"process": 0, "type": "invoke", "f": "read", "value": None})
    p = write(tmp_path, "h.jsonl", f"{good}\n{{\"process\": 0, \"ty")
    with pytest.warns(UserWarning, match="line 2: the last line is incomplete"):
        assert len(read_jsonl(p)) == 1


def test_edn_vector_and_one_map_per_line(tmp_path: Path) -> None:
    body = ("{:process 0, :type :invoke, :f :cas, :value [1 2], :time 10}\n"
            "{:process 0, :type :ok, :f :cas, :value [1 2], :time 20}\n"
            "{:process :nemesis, :type :info, :f :start-partition, :value nil}\n")
    for text in (body, "[" + body + "]\n", "[" + body.replace("\n", " ") + "]"):
        ops = read_edn(write(tmp_path, "history.edn", text))
        assert [o.type for o in ops] == ["invoke", "ok", "info"]
        assert ops[0].f == "cas" and ops[0].value == [1, 2] and ops[0].time == 10
        assert ops[2].process == "nemesis"
        calls, nemesis = pair(ops)
        assert len(calls) == 1 and len(nemesis) == 1


def test_edn_bad_line_is_named(tmp_path: Path) -> None:
    text = ("{:process 0, :type :invoke, :f :read, :value nil}\n"
            "{:process 0, :type :ok, :f :read, :value 3}\n"
            "{:process 1, :type :invoke :f\n")
    with pytest.raises(HistoryError, match=r"line 3: not valid EDN"):
        read_history(write(tmp_path, "h.edn", text))


def test_pairing_rejects_completion_without_invocation() -> None:
    ops = from_events([(0, "ok", "read", 1)])
    with pytest.raises(HistoryError, match="line 1: process 0 completed 'read'"):
        pair(ops)


def test_pairing_rejects_double_invocation() -> None:
    ops = from_events([(0, "invoke", "read", None), (0, "invoke", "write", 1)])
    with pytest.raises(HistoryError, match="line 2: process 0 invoked 'write' while"):
        pair(ops)


def test_pending_invocation_counts_as_info() -> None:
    calls, _ = pair(from_events([(0, "invoke", "write", 1)]))
    assert calls[0].type == "info" and calls[0].end is None


def test_edn_jepsen_records(tmp_path: Path) -> None:
    text = ("#jepsen.history.Op{:index 0, :time 1, :type :invoke, :process 0, :f :write, "
            ":value 3}\n"
            "#jepsen.history.Op{:index 1, :time 2, :type :ok, :process 0, :f :write, :value 3}\n")
    ops = read_edn(write(tmp_path, "history.edn", text))
    assert [(o.type, o.f, o.value) for o in ops] == [("invoke", "write", 3), ("ok", "write", 3)]
