"""Committed transactions SQLite dropped when it replayed a damaged WAL.

A WAL file is a 32-byte header (magic, version, page size, checkpoint count, two salts, a
checksum) and then frames: a 24-byte header (page number; the database size in pages if the
frame ends a transaction, else 0; the two salts; a cumulative checksum) and one page. When the
first connection opens the database after a crash, SQLite replays frames while each one's salts
match the header and its checksum continues the chain; at the first frame that fails it stops
and ignores everything after it, committed or not, without an error. That is the right thing
after a torn, uncommitted tail, and a silent loss when a frame in the middle is damaged.

So: after SQLite has replayed (``valid_frames`` is what it kept, read with a passive
checkpoint), read the headers of the frames it ignored. One that carries this WAL's salts and
ends a transaction was written by a commit of this WAL generation that is now lost. (Frames of
an earlier generation, left behind when the WAL restarted, carry other salts.) Only frame
headers are read, 24 bytes per ignored frame; no page checksum is computed.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Final

_HEADER: Final = struct.Struct(">IIIIII")  # magic, version, page size, checkpoint, salt-1, -2
_FRAME: Final = struct.Struct(">IIII")  # page number, size after commit, salt-1, salt-2
_HEADER_SIZE: Final = 32
_FRAME_HEADER_SIZE: Final = 24
_MAGIC: Final = (0x377F0682, 0x377F0683)


@dataclass(frozen=True, slots=True)
class WalLoss:
    """Frames of this WAL generation that SQLite ignored: ``commits`` of them ended a
    transaction that had committed."""

    valid_frames: int
    ignored_frames: int
    commits: int

    def __str__(self) -> str:
        return (
            f"the WAL is damaged after frame {self.valid_frames}: SQLite ignored "
            f"{self.ignored_frames} later frames holding {self.commits} committed transactions, "
            "whose changes are lost"
        )


def ignored_commits(wal_path: str, valid_frames: int) -> WalLoss | None:
    """What SQLite left out of ``wal_path`` beyond its first ``valid_frames`` frames, if that
    includes committed transactions; ``None`` when nothing committed was left out (or there is
    no WAL, or it is not one)."""
    try:
        with open(wal_path, "rb") as wal:
            header = wal.read(_HEADER_SIZE)
            if len(header) < _HEADER_SIZE:
                return None
            magic, _version, page_size, _checkpoint, salt1, salt2 = _HEADER.unpack_from(header)
            if magic not in _MAGIC or page_size < 512 or page_size & (page_size - 1):
                return None
            frame_size = _FRAME_HEADER_SIZE + page_size
            size = os.fstat(wal.fileno()).st_size
            ignored = commits = 0
            offset = _HEADER_SIZE + max(valid_frames, 0) * frame_size
            while offset + frame_size <= size:
                wal.seek(offset)
                _page, commit_size, frame_salt1, frame_salt2 = _FRAME.unpack(wal.read(16))
                if (frame_salt1, frame_salt2) == (salt1, salt2):
                    ignored += 1
                    commits += commit_size != 0
                offset += frame_size
    except OSError:
        return None
    return WalLoss(valid_frames, ignored, commits) if commits else None
