"""The wire protocol: framing (``framing``) and the typed request schema (``requests``).

``from asynctask.protocol import encode_frame`` and friends keep working: this package
re-exports the framing, which is all the worker child needs (``executor/child.py``). The
request schema (``asynctask.protocol.requests``, msgspec ``Struct``s) is imported by name where
it is used - the daemon's request checks, the clients and the command line - so the child, which
only frames, never loads msgspec.
"""

from __future__ import annotations

from asynctask.protocol.framing import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    FrameDecoder,
    encode_frame,
    encode_frames,
    error_reply,
    ok_reply,
    pack,
    unpack,
)

__all__ = [
    "DEFAULT_MAX_FRAME",
    "PROTOCOL_VERSION",
    "FrameDecoder",
    "encode_frame",
    "encode_frames",
    "error_reply",
    "ok_reply",
    "pack",
    "unpack",
]
