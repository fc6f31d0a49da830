"""Setting unusable rows aside (``Store.quarantine``) and reading them back (``health.examine``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from asynctask.store import InsertTask, PutCron, Quarantine, Store, StoreError
from asynctask.store.health import examine
from tests.store.helpers import make_row


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "tasks.db")


def _rows(path: str, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def test_rows_move_whole_into_the_quarantine_table(db_path: str) -> None:
    store = await Store.open(db_path)
    try:
        await store.put(InsertTask(make_row(1)))
        await store.put(InsertTask(make_row(2)))
        await store.put(PutCron("default", "junk", b"\xc1garbage"))
        with sqlite3.connect(db_path) as conn:  # text that is not UTF-8 must survive the move
            conn.execute("UPDATE tasks SET labels = CAST(x'ff7b' AS TEXT) WHERE seq = 2")
        moved = await store.quarantine(
            [
                Quarantine("tasks", (2,), "seq=2 default/task-000002", "labels: not JSON"),
                Quarantine("crons", ("default", "junk"), "default/junk", "FormatError"),
                Quarantine("tasks", (99,), "seq=99 default/gone", "already deleted"),
            ],
            1_700_000_000.5,
        )
        assert moved == 2  # the row no longer stored is passed over
        assert [row.seq for row in await store.load_live()] == [1]
        assert await store.load_crons() == []
    finally:
        await store.close()
    stored = _rows(db_path, "SELECT source, key, error, at, row FROM quarantine ORDER BY id")
    assert [row[:4] for row in stored] == [
        ("tasks", "seq=2 default/task-000002", "labels: not JSON", 1_700_000_000.5),
        ("crons", "default/junk", "FormatError", 1_700_000_000.5),
    ]
    task = json.loads(str(stored[0][4]))
    assert task["seq"] == 2
    assert task["payload"] == {"hex": make_row(2).payload.hex()}
    assert task["labels"].encode("utf-8", "surrogateescape") == b"\xff{"
    assert json.loads(str(stored[1][4])) == {
        "tenant": "default",
        "name": "junk",
        "definition": {"hex": b"\xc1garbage".hex()},
    }


async def test_a_store_that_cannot_write_moves_nothing(db_path: str) -> None:
    store = await Store.open(db_path)
    try:
        await store.put(InsertTask(make_row(1)))
        await store._write_conn.run(lambda conn: conn.execute("PRAGMA query_only = ON"))
        with pytest.raises(StoreError, match="setting rows aside"):
            await store.quarantine([Quarantine("tasks", (1,), "seq=1", "bad")], 0.0)
        assert [row.seq for row in await store.load_live()] == [1]
    finally:
        await store._write_conn.run(lambda conn: conn.execute("PRAGMA query_only = OFF"))
        await store.close()
    assert _rows(db_path, "SELECT count(*) FROM quarantine") == [(0,)]


async def test_examine_reports_what_was_set_aside(db_path: str) -> None:
    assert examine(db_path).healthy  # no database yet: nothing wrong
    store = await Store.open(db_path)
    try:
        await store.put(InsertTask(make_row(1)))
        healthy = examine(db_path)  # beside the open store, read-only
        assert healthy.healthy, healthy
        assert healthy.integrity == "ok"
        await store.quarantine([Quarantine("tasks", (1,), "seq=1 default/x", "bad\x1b[2J")], 5.0)
    finally:
        await store.close()
    health = examine(db_path, quick=True)
    assert not health.healthy
    assert health.problems == []
    ((row),) = health.quarantined
    assert (row.source, row.key, row.error, row.at) == (
        "tasks",
        "seq=1 default/x",
        "bad\x1b[2J",
        5.0,
    )
    assert row.row["id"] == "task-000001"


def test_examine_of_a_database_without_the_table_finds_nothing(db_path: str) -> None:
    with sqlite3.connect(db_path) as conn:  # an older schema: nothing was ever set aside
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', 8)")
    health = examine(db_path)
    assert health.healthy, health
    assert health.schema_version == 8


def test_examine_reports_a_file_that_is_not_a_database(db_path: str) -> None:
    Path(db_path).write_bytes(b"not a database at all" * 300)
    health = examine(db_path)
    assert not health.healthy
    assert any("not a database" in problem for problem in health.problems), health.problems
