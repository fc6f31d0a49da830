"""``Store``: the task record in one SQLite file, WAL mode, one writer, one reader.

Two connections, each on its own thread: the read connection is aiosqlite's; the write connection is
a plain ``sqlite3`` one (``writeconn.py``: a whole transaction per thread hop). The write connection
belongs to the ``GroupCommitWriter`` alone (one owner per resource: docs/architecture.md, "The
performance design", 1). The read connection serves recovery and history queries; WAL lets it read a
consistent snapshot while the writer commits, so a long ``list`` never delays a submit's commit and
a commit never blocks a read. The read connection is ``query_only``: a bug cannot make it a second
writer.

Both are opened with ``isolation_level=None`` so that ``sqlite3`` never begins or commits a
transaction behind our back; the writer says ``BEGIN IMMEDIATE`` and ``COMMIT`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import aiosqlite

from asynctask.store import schema
from asynctask.store.codec import DECODE_ERRORS, row_decoder
from asynctask.store.errors import StoreError, map_errors
from asynctask.store.listing import plan_list
from asynctask.store.opening import configure_reader, configure_writer, migrate, read_wal_loss
from asynctask.store.quarantine import quarantine_rows
from asynctask.store.reading import first_row, text_escaped
from asynctask.store.recovery import checked_uids, live_batches
from asynctask.store.rows import Op, Quarantine, SkippedRow, TaskFilter, TaskRow
from asynctask.store.schema import Durability
from asynctask.store.walcheck import WalLoss
from asynctask.store.writeconn import WriteConnection
from asynctask.store.writer import DEFAULT_MAX_BATCH, GroupCommitWriter


class Store:
    """The SQLite ``TaskStore``. Open with ``await Store.open(path)``; close with ``close()``."""

    def __init__(
        self,
        path: str,
        durability: Durability,
        write_conn: WriteConnection,
        read_conn: aiosqlite.Connection,
        writer: GroupCommitWriter,
    ) -> None:
        """Use ``Store.open``; this only assembles already opened parts."""
        self.path = path
        self.durability = durability
        self._write_conn = write_conn
        self._read_conn = read_conn
        self._writer = writer
        self._closing: asyncio.Task[None] | None = None
        #: Committed transactions SQLite dropped from a damaged WAL at open (``walcheck``).
        self.wal_loss: WalLoss | None = None
        #: Why the WAL could not be checked at open (its checkpoint could not write: disk full).
        self.wal_unchecked: str | None = None

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        durability: Durability = "full",
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> Store:
        """Open (creating the directory, file and schema if needed) and migrate the database.

        ``max_batch`` caps the ops of one transaction (see ``writer``); the default suits the
        daemon, tests lower it to see the cap work.
        """
        path = os.fspath(path)
        if durability not in schema.SYNCHRONOUS:
            raise ValueError(f"durability must be 'full' or 'normal', not {durability!r}")
        if path in ("", ":memory:"):
            raise ValueError("the store needs a file path (its two connections share the file)")
        opened: list[aiosqlite.Connection | WriteConnection] = []
        try:
            with map_errors(f"opening the database {path}"):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                write_conn = await WriteConnection.open(path)
                opened.append(write_conn)
                await write_conn.run(lambda conn: configure_writer(conn, durability))
                wal_loss, unchecked = await write_conn.run(lambda conn: read_wal_loss(conn, path))
                await write_conn.run(migrate)
                read_conn = await aiosqlite.connect(path, isolation_level=None)
                opened.append(read_conn)
                await configure_reader(read_conn, durability)
                await read_conn.execute("PRAGMA query_only = ON")
            writer = GroupCommitWriter(write_conn, max_batch=max_batch)
        except BaseException:
            for conn in opened:
                with contextlib.suppress(Exception):
                    await conn.close()
            raise
        store = cls(path, durability, write_conn, read_conn, writer)
        store.wal_loss = wal_loss
        store.wal_unchecked = unchecked
        return store

    # -- writes -------------------------------------------------------------------------------

    def put(self, op: Op) -> asyncio.Future[None]:
        """Queue ``op``; the future resolves when its transaction has committed.

        Never blocks and never awaits: the caller decides whether to wait for durability.
        Raises ``StoreError`` at once if the store is closed or the op cannot be encoded.
        """
        return self._writer.put(op)

    def one_transaction(self) -> contextlib.AbstractContextManager[None]:
        """Ops put inside the (await-free) block commit together: all or nothing."""
        return self._writer.one_transaction()

    def flush(self) -> asyncio.Future[None]:
        """Resolves when every op put so far has committed (``StoreError`` if any failed)."""
        return self._writer.flush()

    @property
    def transactions(self) -> int:
        return self._writer.transactions

    @property
    def ops_committed(self) -> int:
        return self._writer.ops_committed

    @property
    def ops_failed(self) -> int:
        """Ops of batches whose transaction failed (and so were not stored)."""
        return self._writer.ops_failed

    @property
    def pending(self) -> int:
        return self._writer.pending

    @property
    def failure(self) -> str | None:
        return self._writer.failure

    @property
    def failing_since(self) -> float | None:
        return self._writer.failing_since

    def on_fatal(self, callback: Callable[[StoreError], None]) -> None:
        self._writer.on_fatal = callback

    @property
    def closed(self) -> bool:
        return self._closing is not None

    async def close(self) -> None:
        """Commit everything queued, then close both connections. Safe to call twice."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        # Shielded: a cancelled caller must not interrupt the final commits halfway.
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        try:
            await self._writer.close()
        finally:
            with map_errors("closing the database"):
                try:
                    await self._write_conn.close()
                finally:
                    await self._read_conn.close()

    async def quarantine(self, rows: list[Quarantine], now: float) -> int:
        """Move ``rows`` into the ``quarantine`` table, whole, in one transaction; return how
        many were moved (a row no longer stored is passed over).

        For start-up, before anything is put: the transaction runs in one hop of the write
        connection's thread, as each of the writer's does, so the two never interleave. Not
        through ``put``: what moves is whatever is stored, columns this version cannot decode
        included, and nothing but this needs it. ``StoreError`` (a read-only or full disk)
        means nothing moved; the rows are then still where they were.
        """
        self._check_open()
        if not rows:
            return 0
        with map_errors("setting rows aside"):
            return await self._write_conn.run(lambda conn: quarantine_rows(conn, rows, now))

    # -- reads --------------------------------------------------------------------------------

    async def load_live(self) -> list[TaskRow]:
        """Every scheduled, queued or running task, in ``seq`` order: start-up recovery.

        The cyclic garbage collector is paused while the rows are built. A million rows are a
        few million new container objects, and the collections their allocation triggers
        would walk them over and over for nothing (none is garbage): measured, they made up
        60% of the decoding time. The previous state is restored before returning.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return await self._fetch_rows("loading the live tasks", schema.SELECT_LIVE, ())
        finally:
            if was_enabled:
                gc.enable()

    async def load_live_batches(
        self, size: int = 10_000, skipped: list[SkippedRow] | None = None
    ) -> AsyncIterator[list[TaskRow]]:
        """``load_live`` in batches of ``size`` rows, so that recovery turns each into tasks
        before the next is read and a million rows never exist at once beside their tasks.
        The garbage collector is paused while a batch is decoded, as in ``load_live``.

        For a backlog that stays in memory: equal names, options, labels and small payloads
        of the rows are shared objects (``row_decoder(shared=True)``), so treat them as
        read-only.

        With ``skipped``, rows that cannot be decoded are left out of the batches (and left
        as they are in the database) and described there instead of failing the load; text
        that is not UTF-8 included (``recovery.live_batches``).

        It reads on a connection of its own, closed when the batches end: its one statement
        keeps a read snapshot for as long as the load takes, which on the read connection
        would have every other read (``status`` of a task submitted meanwhile) see that
        snapshot too, and the daemon serves while a long backlog loads."""
        self._check_open()
        with map_errors("opening a connection to load the live tasks"):
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            with map_errors("opening a connection to load the live tasks"):
                await configure_reader(conn, self.durability)
                await conn.execute("PRAGMA query_only = ON")
            async with contextlib.aclosing(live_batches(conn, size, skipped)) as batches:
                async for batch in batches:
                    yield batch
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    async def max_seq(self) -> int:
        """The largest ``seq`` stored, 0 for an empty store: where the daemon's counter resumes."""
        self._check_open()
        with map_errors("reading the largest seq"):
            row = first_row(await self._read_conn.execute_fetchall(schema.SELECT_MAX_SEQ))
        return int(row[0]) if row is not None else 0

    async def load_pauses(self) -> list[tuple[str, str, str]]:
        """Every recorded pause as ``(kind, tenant, name)``, for start-up; text that is not
        UTF-8 comes back escaped (``load_crons``), for the daemon to set aside."""
        rows = await self._read_escaped("reading the pauses", schema.SELECT_PAUSES)
        return [(str(kind), str(tenant), str(name)) for kind, tenant, name in rows]

    async def load_tenant_uids(self, skipped: list[Quarantine] | None = None) -> dict[str, int]:
        """The uid given to each tenant's workers (``AssignUid``), for start-up. With
        ``skipped``, a row whose uid is not a uid, or whose tenant is not UTF-8, is described
        there (to be set aside) instead of failing the load."""
        rows = await self._read_escaped("reading the tenants' uids", schema.SELECT_TENANT_UIDS)
        return checked_uids(rows, skipped)

    async def _read_escaped(self, doing: str, sql: str) -> list[Any]:
        self._check_open()
        with text_escaped(self._read_conn), map_errors(doing):
            return list(await self._read_conn.execute_fetchall(sql))

    async def old_finished(
        self, before: float, limit: int, tenant: str | None = None
    ) -> list[tuple[int, str, str, int]]:
        """``(seq, tenant, id, attempts)`` of up to ``limit`` finished tasks created before
        ``before`` (``math.inf``: any), oldest first, of ``tenant`` only if given (history
        retention; ``attempts`` names their log files)."""
        self._check_open()
        query = schema.SELECT_OLD_FINISHED
        params: dict[str, object] = {"before": before, "limit": limit}
        if tenant is not None:
            query, params["tenant"] = schema.SELECT_TENANT_OLD_FINISHED, tenant
        with map_errors("finding old finished tasks"):
            rows = list(await self._read_conn.execute_fetchall(query, params))
        return [(int(seq), str(tenant), str(task_id), int(n)) for seq, tenant, task_id, n in rows]

    async def count_finished(self) -> int:
        """How many finished tasks are stored (history retention's count cap)."""
        self._check_open()
        with map_errors("counting finished tasks"):
            row = first_row(await self._read_conn.execute_fetchall(schema.COUNT_FINISHED))
        return int(row[0]) if row is not None else 0

    async def count_finished_by_tenant(self) -> dict[str, int]:
        """Each tenant's finished tasks (history retention's cap counts each tenant's own)."""
        self._check_open()
        with map_errors("counting finished tasks"):
            rows = list(await self._read_conn.execute_fetchall(schema.COUNT_FINISHED_BY_TENANT))
        return {str(tenant): int(count) for tenant, count in rows}

    async def load_code_options(self) -> list[tuple[str, str, bytes]]:
        rows = await self._read_escaped("reading the functions' options", schema.SELECT_CODE)
        return [(str(tenant), str(function), bytes(options)) for tenant, function, options in rows]

    async def load_crons(self) -> list[tuple[str, str, bytes]]:
        """Every cron entry as ``(tenant, name, definition)``, for start-up. Text that is not
        UTF-8 (a row written by hand) comes back escaped (``surrogateescape``) rather than
        failing the read of every entry; the daemon then finds that entry unusable."""
        rows = await self._read_escaped("reading the cron entries", schema.SELECT_CRONS)
        return [(str(tenant), str(name), bytes(definition)) for tenant, name, definition in rows]

    async def get(self, tenant: str, task_id: str) -> TaskRow | None:
        rows = await self._fetch_rows(
            f"reading task {tenant}/{task_id}", schema.SELECT_BY_KEY, (tenant, task_id)
        )
        return rows[0] if rows else None

    async def get_by_seq(self, seq: int) -> TaskRow | None:
        rows = await self._fetch_rows(f"reading task seq={seq}", schema.SELECT_BY_SEQ, (seq,))
        return rows[0] if rows else None

    async def get_by_seqs(self, seqs: list[int]) -> list[TaskRow]:
        """The rows of ``seqs`` that exist, in ``seq`` order, decoded as the backlog's are
        (``row_decoder(shared=True)``: equal values are one object; read-only)."""
        self._check_open()
        rows: list[TaskRow] = []
        decode = row_decoder(shared=True)
        seqs = sorted(set(seqs))  # each statement's rows come in seq order: so do all
        step = schema.SEQS_PER_SELECT
        with map_errors(f"reading {len(seqs)} tasks by seq", DECODE_ERRORS):
            for start in range(0, len(seqs), step):
                part = seqs[start : start + step]
                sql = schema.SELECT_BY_SEQS.format(", ".join("?" * len(part)))
                raw = await self._read_conn.execute_fetchall(sql, part)
                rows += cast(list[TaskRow], [decode(cast(Any, None), tuple(row)) for row in raw])
        return rows

    async def list_tasks(self, f: TaskFilter, limit: int) -> list[TaskRow]:
        """Tasks matching ``f``, newest (``created_at``, then ``seq``) first, at most ``limit``,
        along the query ``listing.plan_list`` chooses (after bounded probes of the filter)."""
        if limit <= 0 or f.tenants == ():
            self._check_open()
            return []
        planned = await plan_list(self._read_conn, f, limit)
        if planned is None:
            return []
        return await self._fetch_rows("listing tasks", *planned)

    async def schema_version(self) -> int:
        """The schema version recorded in the database (``schema.SCHEMA_VERSION`` once open)."""
        self._check_open()
        with map_errors("reading the schema version"):
            row = first_row(await self._read_conn.execute_fetchall(schema.READ_VERSION))
        return int(row[0]) if row is not None else 0

    async def settings(self) -> dict[str, Any]:
        """The write connection's SQLite settings, read back from SQLite (for stats and tests).

        ``synchronous`` is per connection, so it is read where it matters: on the writer's. It
        goes through the writer's connection between or inside transactions, which is harmless
        for ``PRAGMA`` reads.
        """
        self._check_open()
        names = (
            "journal_mode",
            "synchronous",
            "busy_timeout",
            "foreign_keys",
            "wal_autocheckpoint",
        )
        values: dict[str, Any] = {}

        def read(conn: sqlite3.Connection) -> None:
            for name in names:
                row = conn.execute(f"PRAGMA {name}").fetchone()
                values[name] = row[0] if row is not None else None

        with map_errors("reading the database settings"):
            await self._write_conn.run(read)
        return values

    async def _fetch_rows(self, doing: str, sql: str, params: Any) -> list[TaskRow]:
        """Every read runs and fetches in one hop of the read connection's thread
        (``execute_fetchall``), never with a cursor open across an ``await``: SQLite keeps a
        connection's read transaction, and so its snapshot, while any of its statements is
        open, and requests overlapping on the one read connection kept one open for seconds -
        ``wait`` then read a finished task as still ``queued``."""
        self._check_open()
        with map_errors(doing, DECODE_ERRORS):
            raw = await self._read_conn.execute_fetchall(sql, params)
            decode = row_decoder()
            rows = [decode(cast(Any, None), tuple(row)) for row in raw]
        return cast(list[TaskRow], rows)

    def _check_open(self) -> None:
        if self._closing is not None:
            raise StoreError("the store is closed")

    def __repr__(self) -> str:
        writer = self._writer
        return (
            f"<Store {self.path!r} durability={self.durability} "
            f"{'closed' if self.closed else 'open'} | {writer.transactions} transactions, "
            f"{writer.ops_committed} ops committed, {writer.ops_failed} failed, "
            f"{writer.pending} pending>"
        )
