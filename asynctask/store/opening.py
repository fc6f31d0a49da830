"""Opening the database: each connection's settings (WAL, ``schema.connection_pragmas``), the
check for commits a damaged WAL lost, and the schema migrations. ``Store.open`` runs them in
this order, before anything is written."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

import aiosqlite

from asynctask.store import schema
from asynctask.store.errors import StoreError, describe
from asynctask.store.reading import first_row
from asynctask.store.schema import Durability
from asynctask.store.walcheck import WalLoss, ignored_commits


async def configure_reader(conn: aiosqlite.Connection, durability: Durability) -> None:
    row = first_row(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
    _check_wal(row)
    for pragma in schema.connection_pragmas(durability):
        await conn.execute(pragma)


def configure_writer(conn: sqlite3.Connection, durability: Durability) -> None:
    _check_wal(conn.execute("PRAGMA journal_mode = WAL").fetchone())
    for pragma in schema.connection_pragmas(durability):
        conn.execute(pragma)


def read_wal_loss(conn: sqlite3.Connection, path: str) -> tuple[WalLoss | None, str | None]:
    """Before anything is written (a write may restart the WAL over the evidence): the frames
    SQLite kept when it replayed the WAL (a passive checkpoint reports them), then what it left.

    The checkpoint copies pages into the database file, so on a full disk it fails; the
    daemon must start anyway (it serves reads and resumes writing once there is space), so the
    check is skipped and the reason returned instead.
    """
    try:
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.OperationalError as error:
        return None, describe(error)
    if row is None or int(row[1]) < 0:  # not in WAL mode
        return None, None
    return ignored_commits(f"{path}-wal", int(row[1])), None


def _check_wal(row: Any) -> None:
    mode = str(row[0]).lower() if row is not None else None
    if mode != "wal":
        raise StoreError(f"the database cannot use WAL mode (journal_mode is {mode})")


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to ``schema.SCHEMA_VERSION``, one transaction per missing step."""
    conn.execute(schema.CREATE_META)
    row = conn.execute(schema.READ_VERSION).fetchone()
    version = int(row[0]) if row is not None else 0
    if version > schema.SCHEMA_VERSION:
        raise StoreError(
            f"the database has schema version {version}, newer than this asynctask knows "
            f"({schema.SCHEMA_VERSION}); upgrade asynctask or use another database"
        )
    for number in range(version + 1, schema.SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in schema.MIGRATIONS[number - 1]:
                conn.execute(statement)
            conn.execute(schema.WRITE_VERSION, (number,))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error, ValueError):
                conn.execute("ROLLBACK")
            raise
