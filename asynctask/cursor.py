"""The ``list`` page cursor: an opaque string that names where the next page starts.

A page is ordered newest first by (``created_at``, ``seq``), so the next page starts after the
last task of this one, and the cursor carries that key: a version byte, ``created_at`` as a
big-endian double and ``seq`` as a signed 64-bit integer, in URL-safe base64 without padding
(23 characters, fine in a shell and a URL). A key rather than an offset keeps pages exact while
tasks are submitted or purged: a new task sorts before the first page, a purged one is simply
not there, and no task is shown twice or skipped. The version byte lets a later format be told
apart; a cursor this code cannot read is a ``UsageError`` (exit 2), never a guess.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import Final

from asynctask.errors import UsageError

_VERSION: Final = 1
_FORMAT: Final = struct.Struct(">Bdq")
_LENGTH: Final = 23  # base64 of the 17 packed bytes, without its "=" padding


def encode_cursor(created_at: float, seq: int) -> str:
    """The cursor of the page after the task with this (created_at, seq)."""
    raw = _FORMAT.pack(_VERSION, created_at, seq)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(text: object) -> tuple[float, int]:
    """(created_at, seq) of a cursor from ``encode_cursor``; ``UsageError`` for anything else."""
    refusal = UsageError(f"not a list cursor: {text!r} (pass the one a list page printed)")
    if not isinstance(text, str) or len(text) != _LENGTH or not text.isascii():
        raise refusal
    try:
        version, created_at, seq = _FORMAT.unpack(base64.urlsafe_b64decode(text + "="))
    except (binascii.Error, ValueError, struct.error):
        raise refusal from None
    if version != _VERSION or not math.isfinite(created_at) or seq < 1:
        raise refusal
    return created_at, seq
