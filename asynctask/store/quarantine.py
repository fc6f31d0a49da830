"""``Store.quarantine``'s transaction: rows this version cannot use move, whole, into the
``quarantine`` table (``asynctask doctor`` lists them, ``store/health.py``)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import Any

from asynctask.store import schema
from asynctask.store.reading import text_escaped
from asynctask.store.rows import Quarantine


def quarantine_rows(conn: sqlite3.Connection, rows: list[Quarantine], now: float) -> int:
    """``Store.quarantine``'s transaction. Text is read with ``surrogateescape`` meanwhile, so
    a column of bytes that are not UTF-8 is kept exactly (as ``\\udcXX`` escapes) instead of
    failing the read."""
    with text_escaped(conn):
        moved = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            for row in rows:
                where = schema.QUARANTINE_KEYS[row.source]
                key = tuple(_as_stored(value) for value in row.key)
                cursor = conn.execute(f"SELECT * FROM {row.source} WHERE {where}", key)
                found = cursor.fetchone()
                if found is None:
                    continue
                names = [column[0] for column in cursor.description]
                raw = json.dumps(
                    {name: _jsonable(value) for name, value in zip(names, found, strict=True)},
                    ensure_ascii=True,
                    separators=(",", ":"),
                )
                label, error = _utf8(row.label), _utf8(row.error)
                conn.execute(schema.INSERT_QUARANTINE, (row.source, label, raw, error, now))
                if row.source == "tasks" and conn.execute(schema.CLEAR_BAD_LABELS, key).rowcount:
                    conn.execute(schema.DELETE_LABELS_OF, key)
                conn.execute(f"DELETE FROM {row.source} WHERE {where}", key)
                moved += 1
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error, ValueError):
                conn.execute("ROLLBACK")
            raise
        return moved


def _as_stored(value: object) -> object:
    """A key's text as the bytes that are stored (a blob, which the ``CAST(? AS TEXT)`` of
    ``schema.QUARANTINE_KEYS`` compares byte for byte), so that text read escaped because it
    is not UTF-8 still finds its row."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return value


def _utf8(text: str) -> str:
    """``text`` with what it escaped from bytes that are not UTF-8 (a key or message built from
    such a row) shown as U+FFFD: SQLite takes only UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _jsonable(value: Any) -> Any:
    """A column value as JSON can hold it: a blob as ``{"hex": ...}``, the rest as it is."""
    return {"hex": value.hex()} if isinstance(value, bytes) else value
