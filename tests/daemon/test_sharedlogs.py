"""``SharedLogs``: two daemons' ``AttemptLogs`` (real files in two homes) sharing one
PostgreSQL schema of the private cluster (``tests/pgcluster.py``) through ``PgAttemptLogs``.

What must hold: an ended attempt's log, truncation marker included, reads the same on every
daemon, byte for byte and from any offset; a running attempt's only where it runs; each
daemon's own files first; deletion removes both; a database that fails never raises into the
caller and is logged once in a while; without PostgreSQL everything is local."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from asynctask.daemon import sharedlogs
from asynctask.daemon.attemptlogs import AttemptLog, AttemptLogs
from asynctask.daemon.sharedlogs import SharedLogs
from asynctask.store.pglogs import PgAttemptLogs
from asynctask.store.postgres import PostgresStore
from tests import pgcluster

CAP = 64


def _local(home: Path, cap: int = CAP) -> AttemptLogs:
    root = home / "logs" / "attempts"
    root.mkdir(parents=True)
    logs = AttemptLogs(root, cap, home)
    logs.open()
    return logs


@pytest.fixture
async def url(tmp_path: Path) -> str:
    url = await pgcluster.url_for(tmp_path)
    store = await PostgresStore.open(url)  # it migrates: the table is there
    await store.close()
    return url


@pytest.fixture
async def admin(url: str) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(url)
    yield conn
    await conn.close()


@pytest.fixture
async def pair(tmp_path: Path, url: str) -> AsyncIterator[tuple[SharedLogs, SharedLogs]]:
    """Daemons A and B: a home each, one database."""
    a = await SharedLogs.open(_local(tmp_path / "a"), url)
    b = await SharedLogs.open(_local(tmp_path / "b"), url)
    yield a, b
    await a.close()
    await b.close()


async def _tasks(admin: Any, *seqs: int) -> None:
    for seq in seqs:
        await admin.execute(
            "INSERT INTO tasks (seq, tenant, id, function, queue, priority, state, payload, "
            "options, labels, created_at, attempts) VALUES ($1, 't', $2, 'f', 'q', 0, "
            "'running', '\\x'::bytea, '\\x'::bytea, '{}'::jsonb, 0, 1)",
            seq,
            f"task-{seq}",
        )


def _file(logs: SharedLogs, seq: int, attempt: int) -> bytes:
    return (logs.local.root / logs.local.name(seq, attempt)).read_bytes()


async def test_an_ended_attempt_reads_the_same_on_every_daemon(
    pair: tuple[SharedLogs, SharedLogs], admin: Any
) -> None:
    a, b = pair
    await _tasks(admin, 1)
    a.local.append(1, 1, "hello\n")
    a.local.append(1, 1, "y" * 100)  # past the cap: a marker is written at the end
    assert await b.read(1, 1, {}) == []  # running on A: only A sees it
    assert [e.data for e in await a.read(1, 1, {})] == [b"hello\n" + b"y" * (CAP - 6)]
    a.finish(1)
    await a.flush()
    whole = _file(a, 1, 1)
    assert whole.endswith(b"[asynctask: output truncated: 42 more bytes after the first 64]\n")
    assert await b.read(1, 1, {}) == [AttemptLog(1, len(whole), whole)]
    assert await b.read(1, 1, {1: CAP}) == [AttemptLog(1, len(whole), whole[CAP:])]
    assert await b.read(1, 1, {1: len(whole) + 5}) == [AttemptLog(1, len(whole), b"")]
    assert (a.copied, a.lost) == (1, 0)
    assert "copied=1" in repr(a)


async def test_attempts_on_two_daemons_merge_in_order(
    pair: tuple[SharedLogs, SharedLogs], admin: Any
) -> None:
    a, b = pair
    await _tasks(admin, 2)
    a.local.append(2, 1, "first on A\n")
    a.finish(2)
    b.local.append(2, 3, "third on B\n")  # attempt 2 wrote nothing: no log anywhere
    b.finish(2)
    await a.flush()
    await b.flush()
    expected = [AttemptLog(1, 11, b"first on A\n"), AttemptLog(3, 11, b"third on B\n")]
    assert await a.read(2, 3, {}) == expected
    assert await b.read(2, 3, {}) == expected
    assert await b.read(2, 3, {1: 6, 3: 6}) == [
        AttemptLog(1, 11, b"on A\n"),
        AttemptLog(3, 11, b"on B\n"),
    ]


async def test_the_local_file_comes_first(pair: tuple[SharedLogs, SharedLogs], admin: Any) -> None:
    a, _ = pair
    await _tasks(admin, 3)
    a.local.append(3, 1, "local\n")
    a.finish(3)
    await a.flush()
    await admin.execute("UPDATE attempt_logs SET data = 'other' WHERE seq = 3")
    assert [e.data for e in await a.read(3, 1, {})] == [b"local\n"]


async def test_hostile_bytes_are_copied_exactly(
    pair: tuple[SharedLogs, SharedLogs], admin: Any
) -> None:
    a, b = pair
    await _tasks(admin, 4)
    a.local.append(4, 1, "nul \x00 lone surrogate \udcff \n")
    fd = os.open(a.local.root / a.local.name(4, 1), os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"\xff\xfe\xc3\x28\x00")  # task code writes there too
    os.close(fd)
    a.finish(4)
    await a.flush()
    whole = _file(a, 4, 1)
    assert b"\x00" in whole
    assert b"\xff\xfe\xc3\x28\x00" in whole
    assert [e.data for e in await b.read(4, 1, {})] == [whole]


async def test_forget_removes_files_and_rows(
    pair: tuple[SharedLogs, SharedLogs], admin: Any
) -> None:
    a, b = pair
    await _tasks(admin, 5, 6)
    for seq in (5, 6):
        a.local.append(seq, 1, "x")
        a.finish(seq)
    await a.flush()
    await admin.execute("DELETE FROM tasks WHERE seq = 5")
    await a.forget([(5, 1)])
    assert not (a.local.root / a.local.name(5, 1)).exists()
    assert await b.read(5, 1, {}) == []
    assert [e.data for e in await b.read(6, 1, {})] == [b"x"]
    # A row whose task went without its logs (a daemon died in between): the sweep.
    await admin.execute("DELETE FROM tasks WHERE seq = 6")
    assert await b.sweep() == 1


async def test_a_deleted_task_gets_no_row(pair: tuple[SharedLogs, SharedLogs], admin: Any) -> None:
    a, _ = pair
    a.local.append(7, 1, "orphan")  # task 7 is not (or no longer) stored
    a.finish(7)
    await a.flush()
    assert await admin.fetchval("SELECT count(*) FROM attempt_logs") == 0


async def test_close_copies_attempts_still_open(tmp_path: Path, url: str, admin: Any) -> None:
    """At a stop, the attempts the drain gave up on are finished, and copied, by close."""
    await _tasks(admin, 8)
    a = await SharedLogs.open(_local(tmp_path / "a"), url)
    a.local.append(8, 2, "interrupted\n")
    await a.close()
    await a.close()  # idempotent
    b = await SharedLogs.open(_local(tmp_path / "b"), url)
    try:
        assert [e.data for e in await b.read(8, 2, {})] == [b"interrupted\n"]
    finally:
        await b.close()


async def test_a_failing_database_never_raises_and_is_logged_rarely(
    tmp_path: Path, url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sharedlogs, "RETRY_DELAY", 0.0)
    gone = tmp_path / "no-server"
    gone.mkdir()
    remote = PgAttemptLogs(f"postgresql://nobody@/db?host={gone}", None)  # never connects
    logs = SharedLogs(_local(tmp_path / "a"), remote)
    caplog.set_level(logging.WARNING, "asynctask.daemon")
    for seq in range(1, 6):
        logs.local.append(seq, 1, "x")
        logs.finish(seq)  # returns at once, never raises
        await logs.flush()
    assert (logs.copied, logs.lost) == (0, 5)
    lines = [r for r in caplog.records if "not copied" in r.getMessage()]
    assert len(lines) == 1  # then held back for 10 s
    assert [e.data for e in await logs.read(1, 1, {})] == [b"x"]  # still readable here
    await logs.close()


async def test_the_queue_is_bounded(
    pair: tuple[SharedLogs, SharedLogs], admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    monkeypatch.setattr(sharedlogs, "MAX_PENDING", 2)
    await _tasks(admin, 1, 2, 3)
    for seq in (1, 2, 3):
        a.local.append(seq, 1, "x")
        a.finish(seq)  # the copier has not run yet: the third does not fit
    await a.flush()
    assert (a.copied, a.lost) == (2, 1)
    assert await b.read(3, 1, {}) == []


async def test_batches_follow_the_cap(tmp_path: Path) -> None:
    assert SharedLogs(_local(tmp_path / "a", 1024 * 1024), None).batch_logs == 8
    assert SharedLogs(_local(tmp_path / "b", 1), None).batch_logs == sharedlogs.BATCH_LOGS
    assert SharedLogs(_local(tmp_path / "c", 1 << 30), None).batch_logs == 1


async def test_without_postgresql_everything_is_local(tmp_path: Path) -> None:
    logs = await SharedLogs.open(_local(tmp_path), None)
    logs.local.append(1, 1, "local only")
    logs.finish(1)
    await logs.flush()
    assert await logs.read(1, 2, {}) == [AttemptLog(1, 10, b"local only")]
    assert await logs.sweep() == 0
    await logs.forget([(1, 1)])
    assert await logs.read(1, 1, {}) == []
    assert "remote=False pending=0" in repr(logs)
    await logs.close()


def test_contents_is_the_whole_capped_file_and_never_more(tmp_path: Path) -> None:
    logs = _local(tmp_path)
    assert logs.contents(1, 1) is None
    logs.append(1, 1, "z" * 200)
    assert logs.finish(1) == 1
    assert logs.finish(1) is None
    whole = (logs.root / logs.name(1, 1)).read_bytes()
    assert logs.contents(1, 1) == whole
    assert len(whole) > CAP
    with open(logs.root / logs.name(1, 1), "ab") as grown:  # task code grew it afterwards
        grown.write(b"g" * 10_000)
    got = logs.contents(1, 1)
    assert got is not None
    assert len(got) == CAP + 256
    os.symlink(logs.root / logs.name(1, 1), logs.root / logs.name(2, 1))
    with pytest.raises(OSError, match=r"Too many levels|not a regular file"):
        logs.contents(2, 1)  # never through a link task code planted
