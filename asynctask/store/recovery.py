"""Two of the start-up reads behind ``Store``: the live tasks in batches, and the tenants' uids.

Text that is not UTF-8 (a row written by hand) makes SQLite's fetch itself fail, for the whole
batch, before a row decoder sees it. ``live_batches`` then goes on from the last row it
yielded, reading one batch with a text factory that cannot fail (``reading.text_escaped``) and
skipping the rows whose text it had to escape, and then fast again.
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import aiosqlite

from asynctask.store import schema
from asynctask.store.codec import DECODE_ERRORS, row_decoder
from asynctask.store.errors import StoreError, describe, map_errors
from asynctask.store.reading import text_escaped
from asynctask.store.rows import Quarantine, SkippedRow, TaskRow


async def live_batches(
    conn: aiosqlite.Connection, size: int, skipped: list[SkippedRow] | None
) -> AsyncGenerator[list[TaskRow], None]:
    """``Store.load_live_batches`` on the read connection ``conn``."""
    after = 0
    tolerant = False
    while True:
        with map_errors("loading the live tasks", DECODE_ERRORS):
            try:
                # Closed here, not whenever it is collected: the connection may be gone by then.
                batch = _live_batch(conn, after, size, skipped, tolerant)
                async with contextlib.aclosing(batch):
                    async for rows in batch:
                        after = rows[-1]
                        yield cast(list[TaskRow], rows[:-1])
                        tolerant = False
                return
            except sqlite3.OperationalError as error:
                if skipped is None or tolerant or "decode" not in str(error):
                    raise
                tolerant = True  # again from ``after``, escaping what is not UTF-8


async def _live_batch(
    conn: aiosqlite.Connection,
    after: int,
    size: int,
    skipped: list[SkippedRow] | None,
    tolerant: bool,
) -> AsyncGenerator[list[Any], None]:
    """Batches of live rows with ``seq > after``, each followed by the last seq it read
    (so that a retry resumes there); ``tolerant``: only one batch, read with escaped text."""
    decoder = row_decoder(shared=True, skipped=skipped, check_text=tolerant)
    with text_escaped(conn) if tolerant else contextlib.nullcontext():
        async with conn.execute(schema.SELECT_LIVE_AFTER, (after,)) as cursor:
            cursor.row_factory = cast(Any, _with_seq(decoder))
            while True:
                was_enabled = gc.isenabled()
                gc.disable()
                try:
                    fetched = cast(list[tuple[TaskRow | None, int]], await cursor.fetchmany(size))
                finally:
                    if was_enabled:
                        gc.enable()
                if not fetched:
                    return
                rows = [row for row, _ in fetched if row is not None]
                yield [*rows, fetched[-1][1]]
                if tolerant:
                    return


def _with_seq(
    decoder: Callable[[sqlite3.Cursor, tuple[Any, ...]], TaskRow | None],
) -> Callable[[sqlite3.Cursor, tuple[Any, ...]], tuple[TaskRow | None, int]]:
    def decode(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> tuple[TaskRow | None, int]:
        return decoder(cursor, row), row[0]

    return decode


def checked_uids(rows: list[Any], skipped: list[Quarantine] | None) -> dict[str, int]:
    """``Store.load_tenant_uids``' check of the ``(tenant, uid)`` rows read (text escaped)."""
    uids: dict[str, int] = {}
    for tenant, uid in rows:
        try:
            str(tenant).encode()
            if type(uid) is not int or not 0 <= uid < 2**32:
                raise ValueError(f"uid {uid!r} is not a uid")
        except (ValueError, UnicodeError) as exc:
            if skipped is None:
                raise StoreError(f"reading the tenants' uids failed: {exc}") from exc
            skipped.append(Quarantine("tenant_uids", (tenant,), str(tenant), describe(exc)))
            continue
        uids[str(tenant)] = uid
    return uids
