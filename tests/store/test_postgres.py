"""What is particular to the PostgreSQL store (the contract suite covers the rest): durable
commit settings, migrations (versioned, once under concurrent opens, a newer schema refused),
the table following ``taskfields``, text PostgreSQL cannot hold refused alone, a lost write
connection, quarantine, and ``open_store``. Against the session's private cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from asynctask.model import TaskState
from asynctask.store import (
    InsertTask,
    Quarantine,
    Store,
    StoreError,
    TaskFilter,
    UpdateTask,
    open_store,
    pgschema,
)
from asynctask.store.postgres import PostgresStore
from asynctask.taskfields import STORED
from tests import pgcluster
from tests.store.helpers import make_row


@pytest.fixture
async def url(tmp_path: Path) -> str:
    return await pgcluster.url_for(tmp_path)


async def _admin(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url)


async def test_commits_are_synchronous_and_reads_read_only(url: str) -> None:
    store = await PostgresStore.open(url)
    try:
        settings = await store.settings()
        assert settings == {
            "synchronous_commit": "on",
            "fsync": "on",
            "default_transaction_read_only": "on",
        }
        write = await store._write_conn.fetchval("SHOW synchronous_commit")
        assert write == "on"
    finally:
        await store.close()
    relaxed = await PostgresStore.open(url, "normal")
    try:
        assert (await relaxed.settings())["synchronous_commit"] == "off"
    finally:
        await relaxed.close()


async def test_the_table_has_exactly_the_stored_fields(url: str) -> None:
    store = await PostgresStore.open(url)
    await store.close()
    conn = await _admin(url)
    try:
        names = {r[0] for r in await conn.fetch(pgschema.TABLE_COLUMNS)}
    finally:
        await conn.close()
    assert names == {f.name for f in STORED}
    assert list(pgschema.COLUMNS) == [f.name for f in STORED]


async def test_daemons_opening_at_once_migrate_once(url: str) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(url) for _ in range(6)))
    try:
        versions = {await store.schema_version() for store in stores}
        assert versions == {pgschema.SCHEMA_VERSION}
        await stores[0].put(InsertTask(make_row(1)))
        assert await stores[5].get_by_seq(1) == make_row(1)
    finally:
        for store in stores:
            await store.close()


async def test_a_newer_schema_is_refused(url: str) -> None:
    await (await PostgresStore.open(url)).close()
    conn = await _admin(url)
    try:
        await conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    finally:
        await conn.close()
    with pytest.raises(StoreError, match="newer"):
        await PostgresStore.open(url)


async def test_a_missing_column_is_named(url: str) -> None:
    await (await PostgresStore.open(url)).close()
    conn = await _admin(url)
    try:
        await conn.execute("ALTER TABLE tasks DROP COLUMN trace")
    finally:
        await conn.close()
    with pytest.raises(StoreError, match="trace"):
        await PostgresStore.open(url)


async def test_text_postgres_cannot_hold_is_refused_alone(url: str) -> None:
    store = await PostgresStore.open(url)
    try:
        good = store.put(InsertTask(make_row(1)))
        with pytest.raises(StoreError, match="NUL"):
            store.put(InsertTask(make_row(2, id="a\x00b")))
        with pytest.raises(StoreError, match="UTF-8"):
            store.put(InsertTask(make_row(3, labels={"k": "\udcff"})))
        await good
        # a lone surrogate in an error message is kept exactly (json, not jsonb)
        error = {"message": "bad \udcff byte", "nul": "a\x00b"}
        await store.put(UpdateTask(seq=1, state=TaskState.FAILED, attempts=1, error=error))
        row = await store.get_by_seq(1)
        assert row is not None
        assert row.error == error
        assert await store.get_by_seq(2) is None
    finally:
        await store.close()


async def test_labels_filter_in_sql(url: str) -> None:
    store = await PostgresStore.open(url)
    try:
        await store.put(InsertTask(make_row(1, labels={"env": "prod", "é": "ü"})))
        await store.put(InsertTask(make_row(2, labels={"env": "dev"})))
        got = await store.list_tasks(TaskFilter(labels={"é": "ü"}), 10)
        assert [row.seq for row in got] == [1]
        plan = await store._write_conn.fetchval(
            'EXPLAIN SELECT seq FROM tasks WHERE labels @> \'{"env": "prod"}\'::jsonb'
        )
        assert "tasks" in plan
    finally:
        await store.close()


async def test_a_lost_write_connection_is_fatal(url: str) -> None:
    store = await PostgresStore.open(url)
    fatal: list[StoreError] = []
    store.on_fatal(fatal.append)
    try:
        await store.put(InsertTask(make_row(1)))
        pid = store._write_conn.get_server_pid()
        conn = await _admin(url)
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await conn.close()
        with pytest.raises(StoreError, match="connection"):
            await store.put(InsertTask(make_row(2)))
        assert len(fatal) == 1
        with pytest.raises(StoreError):
            store.put(InsertTask(make_row(3)))
        assert await store.get_by_seq(1) == make_row(1)  # reads go on
    finally:
        await store.close()


async def test_quarantine_moves_rows_whole(url: str) -> None:
    store = await PostgresStore.open(url)
    try:
        await store.put(InsertTask(make_row(1)))
        await store.put(InsertTask(make_row(2)))
        moved = await store.quarantine(
            [
                Quarantine("tasks", (1,), "default/task-000001", "bad"),
                Quarantine("tasks", (9,), "x", "gone"),
            ],
            123.0,
        )
        assert moved == 1
        assert await store.get_by_seq(1) is None
        assert await store.get_by_seq(2) is not None
    finally:
        await store.close()
    conn = await _admin(url)
    try:
        source, key, error, at = await conn.fetchrow(
            "SELECT source, key, error, at FROM quarantine"
        )
    finally:
        await conn.close()
    assert (source, key, error, at) == ("tasks", "default/task-000001", "bad", 123.0)


async def test_open_store_picks_the_store_by_location(url: str, tmp_path: Path) -> None:
    sqlite_store = await open_store(tmp_path / "db" / "tasks.db")
    try:
        assert isinstance(sqlite_store, Store)
    finally:
        await sqlite_store.close()
    assert url.startswith("postgresql://")
    assert "?host=%2F" in url
    pg_store = await open_store(url)
    try:
        assert isinstance(pg_store, PostgresStore)
        await pg_store.put(InsertTask(make_row(1)))
    finally:
        await pg_store.close()
    # libpq's other scheme, and the socket directory written plainly
    plain = url.replace("postgresql://", "postgres://", 1).replace("%2F", "/")
    assert "?host=/" in plain
    again = await open_store(plain)
    try:
        assert await again.max_seq() == 1
    finally:
        await again.close()
    with pytest.raises(ValueError, match="scheme"):
        await open_store("mysql://localhost/db")


async def test_an_unreachable_server_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="opening the database"):
        await PostgresStore.open(f"postgresql://u:secret@/db?host={tmp_path}")
