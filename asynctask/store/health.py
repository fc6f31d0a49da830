"""What ``asynctask doctor`` reads from the database: rows set aside, integrity, WAL facts.

It works on the file, not through the daemon, because the moment an operator needs it most is
when the daemon will not start or has died. The connection is read-only (``mode=ro``): with WAL
it reads a consistent snapshot beside a running daemon without blocking its writer, and it can
never change what it examines. It does not migrate: a database older than this code simply
has no ``quarantine`` table yet, which means nothing was set aside.

Every SQLite error is caught and reported as a finding, not raised: a damaged file is what
this is for, and "database disk image is malformed" is an answer.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from asynctask.store import schema
from asynctask.store.errors import describe


@dataclass(frozen=True, slots=True)
class QuarantinedRow:
    """One row of the ``quarantine`` table (``Store.quarantine`` put it there)."""

    id: int
    source: str
    key: str
    error: str
    at: float
    row: dict[str, Any]


@dataclass(slots=True)
class Health:
    """The findings. ``problems`` lists what is wrong besides the quarantined rows: integrity
    check messages and errors met while reading; ``healthy`` is neither."""

    path: str
    exists: bool = False
    schema_version: int | None = None
    size: int = 0
    wal_size: int = 0
    pages: int | None = None
    free_pages: int | None = None
    integrity: str = "not checked"
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems and not self.quarantined


def examine(path: str | os.PathLike[str], quick: bool = False) -> Health:
    """Read ``path`` read-only and report. ``quick`` runs ``quick_check`` (no index contents
    are compared with their tables: linear in the file, for a large one) instead of
    ``integrity_check``."""
    path = os.fspath(path)
    health = Health(path)
    if not os.path.exists(path):
        return health  # nothing stored yet is nothing wrong
    health.exists = True
    health.size = os.path.getsize(path)
    wal = f"{path}-wal"
    health.wal_size = os.path.getsize(wal) if os.path.exists(wal) else 0
    uri = f"file:{urllib.parse.quote(path)}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        health.problems.append(f"cannot open the database: {describe(exc)}")
        return health
    try:
        conn.text_factory = lambda data: data.decode("utf-8", "replace")
        _read(conn, health, quick)
    finally:
        conn.close()
    return health


def _read(conn: sqlite3.Connection, health: Health, quick: bool) -> None:
    try:
        conn.execute(f"PRAGMA busy_timeout = {schema.BUSY_TIMEOUT_MS}")
        health.pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        health.free_pages = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    except sqlite3.Error as exc:
        health.problems.append(f"cannot read the database: {describe(exc)}")
        return
    check = "quick_check" if quick else "integrity_check"
    try:
        messages = [str(row[0]) for row in conn.execute(f"PRAGMA {check}(100)")]
    except sqlite3.Error as exc:
        messages = [describe(exc)]
    health.integrity = "ok" if messages == ["ok"] else "damaged"
    if messages != ["ok"]:
        health.problems += [f"integrity: {message}" for message in messages]
    try:
        tables = {str(name) for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        if "meta" in tables:
            row = conn.execute(schema.READ_VERSION).fetchone()
            health.schema_version = int(row[0]) if row is not None else 0
        if "quarantine" in tables:
            health.quarantined = [
                _quarantined(row) for row in conn.execute(schema.SELECT_QUARANTINE)
            ]
    except (sqlite3.Error, ValueError, TypeError) as exc:
        health.problems.append(f"cannot read the quarantine table: {describe(exc)}")


def _quarantined(row: tuple[Any, ...]) -> QuarantinedRow:
    rid, source, key, error, at, raw = row
    try:
        values = json.loads(raw)
    except ValueError:
        values = {"unreadable": str(raw)}
    return QuarantinedRow(int(rid), str(source), str(key), str(error), float(at), values)
