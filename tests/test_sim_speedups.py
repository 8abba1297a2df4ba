"""The node code's speed-ups made for the simulator keep their results exactly."""

from __future__ import annotations

import base64
import hmac
import os

import pytest

from node import clocks


@pytest.mark.parametrize("key_len", [1, 32, 64, 65, 100])
def test_context_tags_are_hmac_sha256(key_len: int) -> None:
    """`_context_tag` computes HMAC-SHA256 from cached pad states: the same tag as `hmac`."""
    key = os.urandom(key_len)
    for text in ("c1.", "c1." + "A" * 300, clocks.encode_context({"n1.ab": (3, 17)})):
        tag = hmac.digest(key, text.encode("ascii"), "sha256")[:16]
        want = base64.urlsafe_b64encode(tag).rstrip(b"=").decode("ascii")
        assert clocks._context_tag(text, key) == want
    sealed = clocks.seal_context({"n1.ab": (3, 17)}, key)
    assert clocks.open_context(sealed, key) == {"n1.ab": (3, 17)}


VALUES = [[], ["item-1"], ["item-1", "item-22"], ["a\"b"], ["a\\b"], ["\x7f"], ["\x01", "x"],
          ["é"], ["\ud800"], [1, "a"], "item", 3, None, {"a": [1.5, 1e-7]}, [["nested"]]]


@pytest.mark.parametrize("value", VALUES)
def test_sim_client_value_text_is_the_http_apis(value: object) -> None:
    """The sim client's shortcut for lists of plain strings writes the text `node/http_api.py`
    stores (`json.dumps`, compact, not ASCII-escaped)."""
    import json

    from harness.platforms.sim import _value_json

    assert _value_json(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_loads_json_parses_what_orjson_refuses() -> None:
    import json

    from checkers.history import loads_json

    for text in (b'{"a":[1,"x"],"b":{"c":null}}', b'{"big":123456789012345678901234567890}',
                 b'[-9223372036854775809,18446744073709551615,0.1,1e-7,2.5e300]',
                 b'{"n":NaN}', b'{"s":"\\ud800"}'):
        got, want = loads_json(text), json.loads(text)
        assert repr(got) == repr(want)
    # nesting json cannot read is refused as json refuses it (the readers say "nested too deeply")
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(RecursionError):
        loads_json(deep)
    wide = b"[" + b",".join([b"[1,{}]"] * 1000) + b"]"  # many brackets, shallow: read all the same
    assert loads_json(wide) == json.loads(wide)
    # what neither reads fails with json's own error, which the history reader reports
    for bad in (b'{"a":', b'{"a":"\xff"}', b'\xef\xbb\xbf{}', b'{"a":1}x'):
        with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)) as got_err:
            loads_json(bad)
        with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)) as want_err:
            json.loads(bad.decode("utf-8"))
        assert str(got_err.value) == str(want_err.value)


def test_history_lines_parse_back_and_fall_back_to_json() -> None:
    """`harness.history.encode_line`: orjson where it can, json where it cannot; every line is
    one JSON object ending in a newline, the same bytes each time."""
    import dataclasses
    import json

    from harness.history import encode_line

    @dataclasses.dataclass
    class Thing:
        a: int

    records = [
        {"index": 0, "time": 5, "process": 1, "type": "invoke", "f": "add", "value": "item-1"},
        {"index": 1, "value": ["é", 1.5, None, (1, 2)], "extra": {3: "int key"}},
        {"index": 2, "value": Thing(1), "when": set()},  # not JSON: str(), as json's default
        {"index": 3, "value": 1 << 70},  # over 64 bits: json
        {"index": 4, "value": "\udc00"},  # a lone surrogate: json
    ]
    for record in records:
        line = encode_line(record)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert line == encode_line(record)
        parsed = json.loads(line)
        assert list(parsed) == [str(k) for k in record]
    assert json.loads(encode_line(records[2]))["value"] == str(Thing(1))
    assert json.loads(encode_line(records[3]))["value"] == 1 << 70
