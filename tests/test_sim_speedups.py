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
