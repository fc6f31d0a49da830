"""The wire framing, sans I/O: frames in, messages out, and nothing else.

A frame is a 4-byte big-endian length followed by that many bytes of one msgpack map. The client
speaks first with ``{"op": "hello", "version": PROTOCOL_VERSION}``; afterwards every request is a
map with an ``op`` and a client-chosen request id ``rid``, and every reply carries the same
``rid`` with either ``"ok": True`` and the op's fields, or ``"ok": False`` and an ``error`` map
(``errors.AsynctaskError.to_wire``). Requests may be pipelined: replies come in completion order,
matched by ``rid``.

``FrameDecoder`` is the only parser of untrusted bytes in the daemon. It is fed whatever arrived,
whole frames or single bytes, and returns the complete messages. The only exception it raises is
``ProtocolError`` - for an oversized length prefix, bytes that are not msgpack, or a message that
is not a map - after which the connection must be closed, since framing cannot be trusted again.
The same decoder serves the daemon<->worker pipes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any, Final

import msgpack

from asynctask.errors import ProtocolError

PROTOCOL_VERSION: Final = 1
#: Largest frame either side accepts by default (the daemon's is configurable).
DEFAULT_MAX_FRAME: Final = 16 * 1024 * 1024

_HEADER: Final = struct.Struct(">I")
_HEADER_SIZE: Final = _HEADER.size


def pack(message: Any) -> bytes:
    """msgpack bytes of one message (no frame header)."""
    data: bytes = msgpack.packb(message, use_bin_type=True)
    return data


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def encode_frame(message: dict[str, Any]) -> bytes:
    """One message as a frame: header and body."""
    body: bytes = msgpack.packb(message, use_bin_type=True)
    return _HEADER.pack(len(body)) + body


def encode_frames(messages: Iterable[dict[str, Any]]) -> bytes:
    """Several messages in one buffer, to be written with one syscall."""
    packer = msgpack.Packer(use_bin_type=True)
    parts: list[bytes] = []
    for message in messages:
        body = packer.pack(message)
        parts.append(_HEADER.pack(len(body)))
        parts.append(body)
    return b"".join(parts)


class FrameDecoder:
    """Incremental decoder of length-prefixed msgpack maps.

    >>> decoder = FrameDecoder()
    >>> decoder.feed(encode_frame({"op": "ping"}))
    [{'op': 'ping'}]
    """

    __slots__ = ("_buffer", "_max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    def __repr__(self) -> str:
        return f"<FrameDecoder buffered={len(self._buffer)} max_frame={self._max_frame}>"

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def max_frame(self) -> int:
        return self._max_frame

    @max_frame.setter
    def max_frame(self, value: int) -> None:
        """Change the cap for frames not yet decoded (the daemon raises it after ``hello``)."""
        self._max_frame = value

    def feed(self, data: bytes, limit: int | None = None) -> list[dict[str, Any]]:
        """Buffer ``data`` and return the complete messages, at most ``limit`` of them: the
        rest stay buffered, undecoded, for the next call (``feed(b"")`` to go on without new
        bytes), so the caller can act on one message - or stop reading - before the next one
        is even checked against ``max_frame``."""
        self._buffer += data
        return [_decode_body(body) for body in take_frames(self._buffer, self._max_frame, limit)]


def take_frames(buffer: bytearray, max_frame: int, limit: int | None = None) -> list[bytes]:
    """Cut the bodies of the complete frames at the front of ``buffer`` off it, at most
    ``limit`` of them; a partial frame stays. ``ProtocolError`` for a length prefix over
    ``max_frame``, before its body is waited for. The one framing rule of the daemon's
    ``FrameDecoder`` and the client's reply reader (``client/_connection.py``), which decode
    the bodies each in its own way."""
    bodies: list[bytes] = []
    offset = 0
    end = len(buffer)
    while end - offset >= _HEADER_SIZE and (limit is None or len(bodies) < limit):
        (length,) = _HEADER.unpack_from(buffer, offset)
        if length > max_frame:
            raise ProtocolError(f"frame of {length} bytes exceeds the maximum of {max_frame} bytes")
        start = offset + _HEADER_SIZE
        if end - start < length:
            break
        bodies.append(bytes(buffer[start : start + length]))
        offset = start + length
    if offset:
        del buffer[:offset]
    return bodies


def _decode_body(body: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(f"frame is not valid msgpack: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"a frame must hold a msgpack map, not {type(message).__name__}")
    return message


def ok_reply(rid: Any, **fields: Any) -> dict[str, Any]:
    return {"rid": rid, "ok": True, **fields}


def error_reply(rid: Any, error: dict[str, Any]) -> dict[str, Any]:
    return {"rid": rid, "ok": False, "error": error}
