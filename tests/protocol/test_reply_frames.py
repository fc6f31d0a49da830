"""The client's reply reader (``client/_connection.py``): the framing and the
``ProtocolError``s of ``FrameDecoder``, and the typed ``submit`` reply's round trip."""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynctask.client._calls import SUBMIT_REPLY, SubmitReply, Submitted, _Calls
from asynctask.client._connection import (
    _MAP,
    Decoder,
    ReplyFrames,
    _closed_by_daemon,
    _poll_of,
    decode_reply,
)
from asynctask.errors import ProtocolError, UsageError
from asynctask.protocol import DEFAULT_MAX_FRAME, FrameDecoder, encode_frame, encode_frames
from tests.protocol.test_frames import messages  # the same maps the daemon's decoder is fed

STATUS = {
    "id": "01M9916JRX573BSRFK6Z4PSY37", "state": "scheduled", "tenant": "acme",
    "queue": "default", "function": "m:f", "priority": 5, "attempts": 0, "retries": 3,
    "result": None, "error": None, "errors": [], "paused": False, "labels": {"a": "b"},
    "created_at": 1.5, "due_at": 2.5, "started_at": None, "finished_at": None,
    "trace_id": None, "trace": [{"attempt": 1}],
}  # fmt: skip


def _read(frames: ReplyFrames, data: bytes, decoder: Decoder = _MAP) -> list[Any]:
    return [decode_reply(body, decoder) for body in frames.feed(data)]


@given(st.lists(messages, max_size=10))
def test_whole_and_byte_by_byte_read_as_the_frame_decoder_does(batch):
    data = encode_frames(batch)
    assert _read(ReplyFrames(), data) == batch == FrameDecoder().feed(data)
    frames = ReplyFrames()
    out = []
    for byte in data:
        out += _read(frames, bytes([byte]))
    assert out == batch


@given(st.binary(max_size=200))
def test_garbage_raises_only_protocol_error(data):
    with contextlib.suppress(ProtocolError):
        _read(ReplyFrames(), data)
    with contextlib.suppress(ProtocolError):
        _read(ReplyFrames(), data, SUBMIT_REPLY)


def test_oversized_length_prefix_is_refused_before_buffering():
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        ReplyFrames().feed(struct.pack(">I", DEFAULT_MAX_FRAME + 1))


@pytest.mark.parametrize("decoder", [_MAP, SUBMIT_REPLY])
def test_non_map_replies_are_refused(decoder):
    body = msgpack.packb([1, 2, 3])
    with pytest.raises(ProtocolError, match=r"map|`object`"):
        _read(ReplyFrames(), struct.pack(">I", len(body)) + body, decoder)


def test_a_frame_split_across_reads_and_one_after_it_in_the_same_read():
    first, second = encode_frame({"rid": 1, "ok": True}), encode_frame({"rid": 2, "ok": True})
    frames = ReplyFrames()
    assert _read(frames, first[:3]) == []
    assert _read(frames, first[3:] + second[:5]) == [{"rid": 1, "ok": True}]
    assert _read(frames, second[5:]) == [{"rid": 2, "ok": True}]


def test_a_submit_reply_gives_each_task_its_handle_and_nothing_else():
    other = {**STATUS, "id": "second", "tenant": "default"}
    (reply,) = _read(ReplyFrames(), encode_frame({"rid": 7, "ok": True, "tasks": [STATUS, other]}),
                     SUBMIT_REPLY)  # fmt: skip
    assert isinstance(reply, SubmitReply)
    assert reply.rid == 7
    assert _Calls("default").submitted(reply) == [
        Submitted(STATUS["id"], "acme"),
        Submitted("second", "default"),
    ]


def test_a_refused_submit_raises_the_daemons_error_with_its_words():
    error = {"code": "usage", "message": "task 1: unknown task option(s): colour"}
    (reply,) = _read(ReplyFrames(), encode_frame({"rid": 3, "ok": False, "error": error}),
                     SUBMIT_REPLY)  # fmt: skip
    with pytest.raises(UsageError, match=r"^task 1: unknown task option\(s\): colour$"):
        _Calls("default").submitted(reply)


def test_a_submit_reply_without_a_task_id_is_a_protocol_error():
    task = {key: value for key, value in STATUS.items() if key != "id"}
    with pytest.raises(ProtocolError, match="shape"):
        _read(ReplyFrames(), encode_frame({"rid": 3, "ok": True, "tasks": [task]}), SUBMIT_REPLY)


def test_the_idle_check_sees_only_a_close_and_reads_nothing() -> None:
    """The blocking client's check before each request: closed only at EOF (or an error),
    not while the socket is empty or has bytes waiting, which it leaves to be read."""
    ours, daemons = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, daemons:
        readable = _poll_of(ours)
        assert not _closed_by_daemon(ours, readable)
        daemons.sendall(b"x")
        assert not _closed_by_daemon(ours, readable)
        assert ours.recv(16) == b"x"
        assert not _closed_by_daemon(ours, readable)
        daemons.close()
        assert _closed_by_daemon(ours, readable)
