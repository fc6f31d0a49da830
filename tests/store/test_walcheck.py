"""A damaged WAL: SQLite drops the committed transactions after the bad frame; we say so."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from asynctask.store import InsertTask, Store
from asynctask.store.walcheck import ignored_commits
from tests.store.helpers import make_row


async def _crashed_copy(tmp_path: Path, transactions: int) -> tuple[Path, int, int]:
    """A database whose WAL still holds ``transactions`` commits, as a kill -9 leaves it: the
    files are copied while the store is open. Returns the copy, the WAL's page size and its
    number of frames."""
    source = tmp_path / "live" / "tasks.db"
    store = await Store.open(source)
    try:
        for seq in range(1, transactions + 1):
            await store.put(InsertTask(make_row(seq)))  # one commit each
        copy = tmp_path / "copy" / "tasks.db"
        copy.parent.mkdir()
        for suffix in ("", "-wal"):
            shutil.copyfile(f"{source}{suffix}", f"{copy}{suffix}")
    finally:
        await store.close()
    return (copy, *_wal_shape(Path(f"{copy}-wal")))


def _wal_shape(wal: Path) -> tuple[int, int]:
    data = wal.read_bytes()
    (page_size,) = struct.unpack_from(">I", data, 8)
    return page_size, (len(data) - 32) // (24 + page_size)


def _cut_last_frame(wal: Path, page_size: int, frames: int) -> None:
    data = wal.read_bytes()
    wal.write_bytes(data[: 32 + (frames - 1) * (24 + page_size) + 100])


def _damage_frame(wal: Path, index: int, page_size: int) -> None:
    data = bytearray(wal.read_bytes())
    data[32 + index * (24 + page_size) + 24 + 100] ^= 0xFF  # a byte of the frame's page
    wal.write_bytes(bytes(data))


async def test_an_intact_wal_reports_nothing(tmp_path: Path) -> None:
    copy, _, _ = await _crashed_copy(tmp_path, 8)
    store = await Store.open(copy)
    try:
        assert store.wal_loss is None
        assert len(await store.load_live()) == 8
    finally:
        await store.close()


async def test_a_damaged_frame_is_reported_with_the_commits_sqlite_dropped(
    tmp_path: Path,
) -> None:
    copy, page_size, frames = await _crashed_copy(tmp_path, 8)
    _damage_frame(Path(f"{copy}-wal"), frames // 2, page_size)
    store = await Store.open(copy)
    try:
        loss = store.wal_loss
        assert loss is not None
        kept = len(await store.load_live())
        assert kept < 8  # SQLite silently dropped the rest
        assert loss.commits == 8 - kept
        assert loss.ignored_frames == frames - loss.valid_frames
        assert "committed transactions" in str(loss)
    finally:
        await store.close()


async def test_a_torn_tail_is_not_a_loss(tmp_path: Path) -> None:
    copy, page_size, frames = await _crashed_copy(tmp_path, 3)
    # The last transaction's frame cut short, as a crash mid-write leaves it: the commit
    # frame is gone, so nothing acknowledged was lost.
    _cut_last_frame(Path(f"{copy}-wal"), page_size, frames)
    assert ignored_commits(f"{copy}-wal", 0) is not None  # read from frame 0, commits are there
    store = await Store.open(copy)
    try:
        assert store.wal_loss is None
        assert len(await store.load_live()) == 2
    finally:
        await store.close()


def test_no_wal_or_not_a_wal(tmp_path: Path) -> None:
    assert ignored_commits(str(tmp_path / "missing-wal"), 0) is None
    junk = tmp_path / "junk-wal"
    junk.write_bytes(b"\x00" * 5000)
    assert ignored_commits(str(junk), 0) is None
