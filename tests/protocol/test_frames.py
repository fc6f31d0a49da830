"""The frame decoder: whole frames, byte-by-byte feeding, and garbage (only ProtocolError)."""

from __future__ import annotations

import contextlib
import struct

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynctask.errors import ProtocolError
from asynctask.protocol import FrameDecoder, encode_frame, encode_frames

messages = st.dictionaries(
    st.text(max_size=8),
    st.one_of(
        st.integers(-(2**63), 2**64 - 1),
        st.text(max_size=20),
        st.binary(max_size=50),
        st.none(),
        st.booleans(),
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5),
    ),
    max_size=6,
)


@given(st.lists(messages, max_size=10))
def test_whole_and_byte_by_byte_decode_the_same(batch):
    data = encode_frames(batch)
    assert FrameDecoder().feed(data) == batch
    decoder = FrameDecoder()
    out = []
    for byte in data:
        out += decoder.feed(bytes([byte]))
    assert out == batch
    assert decoder.buffered == 0


@given(st.binary(max_size=200))
def test_garbage_raises_only_protocol_error(data):
    decoder = FrameDecoder(max_frame=1024)
    with contextlib.suppress(ProtocolError):
        decoder.feed(data)


def test_oversized_length_prefix_is_refused_before_buffering():
    decoder = FrameDecoder(max_frame=1024)
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        decoder.feed(struct.pack(">I", 1025))


def test_non_map_messages_are_refused():
    body = msgpack.packb([1, 2, 3])
    with pytest.raises(ProtocolError, match="map"):
        FrameDecoder().feed(struct.pack(">I", len(body)) + body)


def test_partial_frame_waits_for_the_rest():
    frame = encode_frame({"op": "ping", "rid": 1})
    decoder = FrameDecoder()
    assert decoder.feed(frame[:-1]) == []
    assert decoder.feed(frame[-1:]) == [{"op": "ping", "rid": 1}]


def test_limit_leaves_the_rest_undecoded_for_a_new_max_frame():
    """The daemon reads ``hello`` under a 64 KiB cap, then raises it for what follows, even
    when both came in one read; and it decodes nothing while it may not take requests."""
    big = {"op": "submit", "pad": "x" * 100_000}
    data = encode_frames([{"op": "hello"}, big])
    decoder = FrameDecoder(max_frame=64 * 1024)
    assert decoder.feed(data, limit=0) == []
    assert decoder.feed(b"", limit=1) == [{"op": "hello"}]
    with pytest.raises(ProtocolError, match="exceeds"):
        FrameDecoder(max_frame=64 * 1024).feed(data)
    decoder.max_frame = 1024 * 1024
    assert decoder.feed(b"", limit=1) == [big]
    assert decoder.buffered == 0
