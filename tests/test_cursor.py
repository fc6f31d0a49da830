"""The ``list`` page cursor: a round trip for every key, a clear refusal for anything else."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynctask.cursor import decode_cursor, encode_cursor
from asynctask.errors import UsageError


@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(1, 2**63 - 1))
def test_a_cursor_gives_back_its_key(created_at: float, seq: int) -> None:
    text = encode_cursor(created_at, seq)
    assert text.isascii()
    assert text.replace("-", "").replace("_", "").isalnum()  # safe in a shell and a URL
    assert decode_cursor(text) == (created_at, seq)


@given(st.text(max_size=40) | st.binary(max_size=30) | st.integers() | st.none())
def test_anything_else_is_a_usage_error_or_a_valid_key(raw: object) -> None:
    try:
        created_at, seq = decode_cursor(raw)
    except UsageError as exc:
        message = exc.message
    else:  # a string that happens to be a well-formed cursor
        assert isinstance(raw, str)
        assert seq >= 1
        assert math.isfinite(created_at)
        return
    assert "not a list cursor" in message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        encode_cursor(1.0, 5) + "A",  # too long
        "AgAAAAAAAAAAAAAAAAAAAAE",  # version 2
        encode_cursor(1.0, 5).replace("A", "*"),  # not base64
        "AX_wAAAAAAAAAAAAAAAAAAE",  # created_at infinite
        encode_cursor(1.0, 1)[:-2] + "AA",  # seq 0
    ],
)
def test_bad_cursors_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="not a list cursor"):
        decode_cursor(text)
