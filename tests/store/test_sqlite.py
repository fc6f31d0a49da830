"""What the SQLite store adds to the contract: its file, settings, schema, plans and limits."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from asynctask.model import TaskState
from asynctask.store import (
    SCHEMA_VERSION,
    Durability,
    InsertTask,
    SkippedRow,
    Store,
    StoreError,
    UpdateTask,
)
from asynctask.store import schema as schema_module
from asynctask.store.query import prefix_successor
from tests.store.helpers import make_row

S = TaskState


def _files_beside(path: str) -> set[str]:
    return set(os.listdir(os.path.dirname(path)))


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "nested" / "dir" / "tasks.db")


async def test_open_creates_directory_file_and_wal(db_path: str) -> None:
    store = await Store.open(db_path)
    try:
        await store.put(InsertTask(make_row(1)))
        assert store.path == db_path
        assert {"tasks.db", "tasks.db-wal"} <= _files_beside(db_path)
    finally:
        await store.close()


@pytest.mark.parametrize(("durability", "synchronous"), [("full", 2), ("normal", 1)])
async def test_settings_follow_durability(
    db_path: str, durability: Durability, synchronous: int
) -> None:
    store = await Store.open(db_path, durability)
    try:
        assert await store.settings() == {
            "journal_mode": "wal",
            "synchronous": synchronous,
            "busy_timeout": schema_module.BUSY_TIMEOUT_MS,
            "foreign_keys": 0,
            "wal_autocheckpoint": 1000,
        }
    finally:
        await store.close()


async def test_schema_version_is_recorded(db_path: str) -> None:
    store = await Store.open(db_path)
    try:
        assert await store.schema_version() == SCHEMA_VERSION == len(schema_module.MIGRATIONS)
    finally:
        await store.close()
    with sqlite3.connect(db_path) as conn:
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        indexes = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
    conn.close()
    assert version == SCHEMA_VERSION
    assert {"tasks_tenant_id", "tasks_state_created", "tasks_tenant_state_created"} <= indexes
    assert "tasks_live" in indexes
    assert "tasks_state_seq" not in indexes  # replaced by migration 6
    # reopening (a Path works too) applies nothing twice
    store = await Store.open(Path(db_path))
    try:
        assert store.path == db_path
        assert await store.schema_version() == SCHEMA_VERSION
    finally:
        await store.close()


async def test_a_version_3_database_gains_the_new_columns_and_keeps_its_rows(
    db_path: str,
) -> None:
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db_path) as conn:  # what the code of schema version 3 left behind
        conn.execute(schema_module.CREATE_META)
        for step in schema_module.MIGRATIONS[:3]:
            for statement in step:
                conn.execute(statement)
        conn.execute(schema_module.WRITE_VERSION, (3,))
        columns = (  # the columns of version 3, spelled as that version had them
            "seq", "tenant", "id", "function", "queue", "priority", "state", "payload", "options",
            "labels", "attempts", "result", "error", "created_at", "due_at", "started_at",
            "finished_at",
        )  # fmt: skip
        conn.execute(
            f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            (7, "default", "old", "m:f", "default", 5, "queued", b"\x90", b"\x80", "{}", 0,
             None, None, 1.0, None, None, None),
        )  # fmt: skip
    conn.close()
    store = await Store.open(db_path)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        row = await store.get("default", "old")
        assert row is not None
        assert (row.seq, row.errors, row.held) == (7, None, False)
    finally:
        await store.close()


async def test_a_newer_schema_is_refused(db_path: str) -> None:
    store = await Store.open(db_path)
    await store.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        await Store.open(db_path)


async def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        await Store.open(str(tmp_path))  # a directory
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError):
        await Store.open(str(tmp_path / "file" / "tasks.db"))  # parent is a file
    (tmp_path / "garbage.db").write_bytes(b"not a database" * 1000)
    with pytest.raises(StoreError):
        await Store.open(str(tmp_path / "garbage.db"))


async def test_bad_arguments(db_path: str) -> None:
    with pytest.raises(ValueError, match="durability"):
        await Store.open(db_path, "fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="file"):
        await Store.open(":memory:")


async def test_sqlite_errors_in_a_batch_become_store_errors(db_path: str) -> None:
    store = await Store.open(db_path)
    try:
        too_big = store.put(InsertTask(make_row(2**64)))  # sqlite3 raises OverflowError
        with pytest.raises(StoreError) as caught:
            await too_big
        assert not isinstance(caught.value, sqlite3.Error | OverflowError)
        assert store.ops_failed == 1
        await store.put(InsertTask(make_row(1)))
        assert await store.max_seq() == 1
    finally:
        await store.close()


async def test_a_row_this_code_did_not_write_is_a_store_error(db_path: str) -> None:
    store = await Store.open(db_path)
    try:
        await store.put(InsertTask(make_row(1)))
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE tasks SET state = 'exploded' WHERE seq = 1")
        conn.close()
        with pytest.raises(StoreError, match="KeyError"):
            await store.get_by_seq(1)
    finally:
        await store.close()


async def test_an_error_with_no_message_is_named_by_its_type(db_path: str) -> None:
    store = await Store.open(db_path)
    try:
        await store.put(InsertTask(make_row(1)))
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE tasks SET options = x'c1' WHERE seq = 1")  # FormatError('')
        conn.close()
        with pytest.raises(StoreError, match=r"FormatError$"):
            await store.get_by_seq(1)
    finally:
        await store.close()


async def test_recovery_skips_rows_it_cannot_decode_and_leaves_them_stored(db_path: str) -> None:
    store = await Store.open(db_path)
    try:
        for seq in range(1, 10):
            await store.put(InsertTask(make_row(seq, id=f"t{seq}")))
        bad = {
            2: ("options", b"\xc1"),
            3: ("labels", "{not json"),
            4: ("options", b"\x92\x01"),  # a list cut short
            5: ("errors", "[oops"),
            6: ("priority", "high"),  # SQLite keeps text it cannot make an INTEGER as text
            7: ("due_at", "soon"),
        }
        with sqlite3.connect(db_path) as conn:
            for seq, (column, value) in bad.items():
                conn.execute(f"UPDATE tasks SET {column} = ? WHERE seq = ?", (value, seq))
        conn.close()
        with pytest.raises(StoreError, match="FormatError"):  # without ``skipped``: raises
            [batch async for batch in store.load_live_batches(2)]
        skipped: list[SkippedRow] = []
        batches = [batch async for batch in store.load_live_batches(2, skipped=skipped)]
        assert [row.seq for batch in batches for row in batch] == [1, 8, 9]
        assert [(s.seq, s.tenant, s.id) for s in skipped] == [
            (seq, "default", f"t{seq}") for seq in bad
        ]
        assert all(s.reason for s in skipped)
        assert str(skipped[0]) == "task seq=2 default/t2: FormatError"
        assert skipped[4].reason == "TypeError: not a number: priority is 'high'"
        assert skipped[5].reason == "TypeError: not a number: due_at is 'soon'"
        with sqlite3.connect(db_path) as conn:  # nothing was written
            for seq, (column, value) in bad.items():
                ((stored,),) = conn.execute(f"SELECT {column} FROM tasks WHERE seq = ?", (seq,))
                assert stored == value
        conn.close()
    finally:
        await store.close()


async def test_max_batch_bounds_a_transaction(db_path: str) -> None:
    store = await Store.open(db_path, max_batch=10)
    try:
        for seq in range(1, 96):
            store.put(InsertTask(make_row(seq)))
        await store.flush()
        assert store.transactions == 10
        assert store.ops_committed == 95
    finally:
        await store.close()


@pytest.mark.parametrize("count", [1, 3, 511, 512, 1000])
async def test_multi_row_statements_store_every_row_and_the_last_update_wins(
    db_path: str, count: int
) -> None:
    """Runs of inserts and updates become multi-row statements (512, 256, ... rows): every row
    arrives, and of several updates of one task in a run, the last one is what is stored."""
    store = await Store.open(db_path)
    try:
        for seq in range(1, count + 1):
            store.put(InsertTask(make_row(seq, state=S.QUEUED)))
        for state, attempts in ((S.RUNNING, 1), (S.QUEUED, 1), (S.RUNNING, 2)):
            for seq in range(1, count + 1):
                store.put(
                    UpdateTask(
                        seq=seq, state=state, attempts=attempts, result=None, error=None,
                        started_at=float(attempts), finished_at=None, due_at=None,
                    )
                )  # fmt: skip
        await store.flush()
        assert store.transactions == 1
        rows = await store.load_live()
        assert len(rows) == count
        assert {(r.state, r.attempts, r.started_at) for r in rows} == {(S.RUNNING, 2, 2.0)}
    finally:
        await store.close()


async def test_one_transaction_is_not_cut_by_max_batch(db_path: str) -> None:
    store = await Store.open(db_path, max_batch=10)
    try:
        store.put(InsertTask(make_row(1)))
        with store.one_transaction():
            for seq in range(2, 97):
                store.put(InsertTask(make_row(seq)))
        store.put(InsertTask(make_row(97)))
        await store.flush()
        # The lone op before, the 95 together, and the one after in a batch of its own.
        assert store.transactions == 3
        assert store.ops_committed == 97
    finally:
        await store.close()


async def test_repr_shows_counters(db_path: str) -> None:
    store = await Store.open(db_path)
    try:
        assert repr(store) == (
            f"<Store {db_path!r} durability=full open | "
            "0 transactions, 0 ops committed, 0 failed, 0 pending>"
        )
        futures = [store.put(InsertTask(make_row(seq))) for seq in (1, 2, 3)]
        assert repr(store).endswith("0 transactions, 0 ops committed, 0 failed, 3 pending>")
        await asyncio.gather(*futures)
        assert repr(store).endswith("1 transactions, 3 ops committed, 0 failed, 0 pending>")
    finally:
        await store.close()
    assert " closed | " in repr(store)


async def test_reads_run_beside_a_transaction(db_path: str) -> None:
    """WAL: the reader answers from the last commit while a big batch is being written."""
    store = await Store.open(db_path)
    try:
        await store.put(InsertTask(make_row(1)))
        futures = [store.put(InsertTask(make_row(seq))) for seq in range(2, 5002)]
        await asyncio.sleep(0)  # the writer has begun the big transaction
        assert await store.get_by_seq(1) is not None
        await asyncio.gather(*futures)
        assert await store.max_seq() == 5001
    finally:
        await store.close()


def _plan(db_path: str, sql: str, params: Sequence[Any] = ()) -> str:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    conn.close()
    return " / ".join(row[3] for row in rows)


async def test_query_plans_use_the_indexes(db_path: str) -> None:
    store = await Store.open(db_path)
    await store.close()
    live = _plan(db_path, schema_module.SELECT_LIVE)
    assert "tasks_live" in live
    assert "TEMP B-TREE" not in live
    assert "tasks_tenant_id" in _plan(db_path, schema_module.SELECT_BY_KEY, ("t", "i"))
    # the history queries' plans: tests/store/test_plan.py


@pytest.mark.parametrize(
    ("prefix", "successor"),
    [
        ("a", "b"),
        ("a%", "a&"),
        ("ab\x7e", "ab\x7f"),
        ("x\ud7ff", "x\ue000"),
        ("x\U0010ffff", "y"),
        ("\U0010ffff\U0010ffff", None),
        ("", None),
    ],
)
def test_prefix_successor(prefix: str, successor: str | None) -> None:
    assert prefix_successor(prefix) == successor


@pytest.mark.slow
async def test_load_live_of_100k_rows_is_fast(db_path: str) -> None:
    store = await Store.open(db_path, "normal")
    try:
        for first in range(1, 100_001, 5_000):
            for seq in range(first, first + 5_000):
                state = S.QUEUED if seq % 4 else S.SUCCEEDED
                store.put(InsertTask(make_row(seq, state=state, labels={"k": str(seq % 3)})))
            await store.flush()
        began = time.perf_counter()
        live = await store.load_live()
        elapsed = time.perf_counter() - began
        assert len(live) == 75_000
        print(f"load_live: {len(live)} rows in {elapsed:.2f} s")
        assert elapsed < 5.0  # generous: about 0.3 s on a 2-vCPU VM
    finally:
        await store.close()


async def test_old_finished_returns_the_oldest_finished_tasks_only(db_path: str) -> None:
    store = await Store.open(db_path)
    try:
        states = [S.SUCCEEDED, S.QUEUED, S.FAILED, S.RUNNING, S.CANCELLED, S.EXPIRED, S.SUCCEEDED]
        for seq, state in enumerate(states, start=1):
            store.put(InsertTask(make_row(seq, state=state, created_at=float(seq))))
        await store.flush()
        old = await store.old_finished(before=7.0, limit=10)
        assert [seq for seq, _, _, _ in old] == [1, 3, 5, 6]  # oldest first; live ones skipped
        assert [row[0] for row in await store.old_finished(before=7.0, limit=2)] == [1, 3]
    finally:
        await store.close()


async def test_label_rows_follow_their_tasks_in_and_out(tmp_path: Path) -> None:
    """The triggers of schema 7: inserting a labelled task adds its label rows, replacing and
    deleting it removes them, and an unlabelled task adds none."""
    from asynctask.store import DeleteTask, InsertTask, ReplaceTask
    from tests.store.helpers import make_row

    path = tmp_path / "t.db"
    store = await Store.open(str(path))
    try:
        await store.put(InsertTask(make_row(1, labels={"env": "prod", "team": "x"})))
        await store.put(InsertTask(make_row(2)))
        await store.put(InsertTask(make_row(3, labels={"env": "dev"})))
        await store.put(ReplaceTask(3, make_row(4, id="task-000003", labels={"env": "qa"})))
        await store.put(DeleteTask(1))
        await store.flush()
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT key, value, seq FROM task_labels ORDER BY seq").fetchall()
    finally:
        conn.close()
    assert rows == [("env", "qa", 4)]
