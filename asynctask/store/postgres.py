"""``PostgresStore``: the task record in PostgreSQL, behind the same ``TaskStore`` protocol.

Why asyncpg: the daemon is asyncio through and through, and asyncpg is asyncio-native (no
thread hop per query, which the SQLite store pays), speaks the binary protocol (floats, bytea
and integers cross without text formatting), and binds a whole array as one parameter, so a
group commit of 5,000 inserts is one ``INSERT ... SELECT FROM unnest($1, ...)`` statement: one
round trip, one plan. It installs as a wheel with no libpq. psycopg 3 would serve too, but its
async mode is a layer over libpq and its fastest bulk path (COPY) cannot do the updates and
deletes a batch mixes in.

Shape, as in ``sqlite.py``: one write connection owned by the group-commit writer
(``pgwriter.PgWriter``: one owner per resource, docs/architecture.md "The performance design")
and a small pool of read connections, so a long ``list`` never delays a commit. The read
connections are ``default_transaction_read_only``: a bug cannot make them a second writer.
Every connection has ``synchronous_commit = on`` (durability ``full``, the default): a future
resolves only after the server has flushed the commit to its WAL, so an acknowledged write
survives a crash of the server or its machine. ``durability="normal"`` sets it ``off`` (a
server crash may lose the last commits, never corrupt), as SQLite's ``synchronous=NORMAL``
does.

The store connects with a libpq-style URL (``postgresql://user@host/db``; a Unix socket as
``?host=/run/postgresql``). Any other query parameter is a server setting for the store's
connections, e.g. ``search_path=asynctask`` to keep one deployment per schema.

Driver errors become ``StoreError`` at this module's boundary (``pgerrors.map_errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, Literal, cast

import asyncpg

from asynctask.store import pgschema
from asynctask.store.codec import DECODE_ERRORS, Params, encode, row_decoder
from asynctask.store.errors import StoreError
from asynctask.store.open import redacted as _safe
from asynctask.store.pgerrors import map_errors
from asynctask.store.pgwriter import (
    DEFAULT_MAX_BATCH,
    Fence,
    ForeignInsert,
    ForeignReplace,
    PgWriter,
)
from asynctask.store.query import prefix_successor
from asynctask.store.rows import (
    InsertTask,
    Op,
    Quarantine,
    ReplaceTask,
    SkippedRow,
    TaskFilter,
    TaskRow,
)
from asynctask.store.schema import Durability

_SYNCHRONOUS_COMMIT: Final = {"full": "on", "normal": "off"}
#: Read connections: enough for a few overlapping history queries beside recovery.
DEFAULT_READERS: Final = 4
#: Where each table that start-up loads finds one row by the key ``Quarantine.key`` holds.
_QUARANTINE_KEYS: Final[dict[str, str]] = {
    "tasks": "seq = $1",
    "crons": "tenant = $1 AND name = $2",
    "pauses": "kind = $1 AND tenant = $2 AND name = $3",
    "tenant_uids": "tenant = $1",
}


class PostgresStore:
    """The PostgreSQL ``TaskStore``. Open with ``await PostgresStore.open(url)``."""

    def __init__(
        self,
        url: str,
        durability: Durability,
        write_conn: Any,
        readers: Any,
        writer: PgWriter,
    ) -> None:
        """Use ``PostgresStore.open``; this only assembles already opened parts."""
        self.url = url
        self.durability = durability
        self._write_conn = write_conn
        self._readers = readers
        self._writer = writer
        self._closing: asyncio.Task[None] | None = None
        self._on_fatal: Callable[[StoreError], None] | None = None
        self._fatal: StoreError | None = None
        writer.on_fatal = self._fatal_once

    @classmethod
    async def open(
        cls,
        url: str,
        durability: Durability = "full",
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        readers: int = DEFAULT_READERS,
        lock: Literal["daemon", "exclusive"] | None = None,
    ) -> PostgresStore:
        """Connect, migrate the schema (once, under an advisory lock) and start the writer.

        ``lock``: the write connection first takes the schema's writers' lock
        (``pgschema.SOLE_DAEMON_KEY``) and keeps it while it lives: ``"daemon"`` shared, as
        every daemon does (any number of them share a schema), ``"exclusive"`` for
        ``migrate-store``, which must write alone. Where the other kind is held,
        ``StoreError`` says by whom and nothing is written."""
        if durability not in _SYNCHRONOUS_COMMIT:
            raise ValueError(f"durability must be 'full' or 'normal', not {durability!r}")
        settings = {
            "synchronous_commit": _SYNCHRONOUS_COMMIT[durability],
            "application_name": "asynctask",
        }
        write_conn: Any = None
        pool: Any = None
        try:
            with map_errors(f"opening the database {_safe(url)}"):
                write_conn = await asyncpg.connect(url, server_settings=settings)
                if lock is not None:
                    await _claim_lock(write_conn, url, lock)
                await _migrate(write_conn)
                await _check_columns(write_conn)
                pool = await asyncpg.create_pool(
                    url,
                    min_size=1,
                    max_size=readers,
                    server_settings={**settings, "default_transaction_read_only": "on"},
                )
            writer = PgWriter(write_conn, _encode, max_batch=max_batch)
        except BaseException:
            with contextlib.suppress(Exception):
                if pool is not None:
                    await pool.close()
            with contextlib.suppress(Exception):
                if write_conn is not None:
                    await write_conn.close()
            raise
        store = cls(url, durability, write_conn, pool, writer)
        if lock is not None:
            write_conn.add_termination_listener(store._lock_lost)
        return store

    # -- writes -------------------------------------------------------------------------------

    def put(self, op: Op) -> asyncio.Future[None]:
        """Queue ``op``; the future resolves when its transaction has committed."""
        return self._writer.put(op)

    def fence_writes(self, fence: Callable[[], Fence]) -> None:
        """Daemons share this database (docs/scale-out.md): from now on every batch's task
        writes are conditioned on the leases ``fence()`` names when the batch commits."""
        self._writer.fence = fence

    @property
    def ops_fenced(self) -> int:
        return self._writer.ops_fenced

    def one_transaction(self) -> contextlib.AbstractContextManager[None]:
        """Ops put inside the (await-free) block commit together: all or nothing."""
        return self._writer.one_transaction()

    def flush(self) -> asyncio.Future[None]:
        return self._writer.flush()

    @property
    def transactions(self) -> int:
        return self._writer.transactions

    @property
    def ops_committed(self) -> int:
        return self._writer.ops_committed

    @property
    def ops_failed(self) -> int:
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
        self._on_fatal = callback

    def _fatal_once(self, error: StoreError) -> None:
        """The writer's broken connection, or the lost lock connection (``_lock_lost``): the
        owner hears of the first only (the protocol's "once")."""
        if self._fatal is not None:
            return
        self._fatal = error
        if self._on_fatal is not None:
            self._on_fatal(error)

    def _lock_lost(self, _conn: Any) -> None:
        """The write connection closed while the store was open (``lock``): with it went the
        writers' lock, so a ``migrate-store`` could start writing beside this store at any
        moment, and whether its last batch committed is unknown. The owner must stop now
        rather than at its next write."""
        if self._closing is not None:
            return
        self._fatal_once(
            StoreError(
                "lost the database connection (the one that held the writers' lock): nothing "
                "more can be stored until the store is re-opened"
            )
        )

    @property
    def closed(self) -> bool:
        return self._closing is not None

    async def close(self) -> None:
        """Commit everything queued, then close every connection. Safe to call twice."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        try:
            await self._writer.close()
        finally:
            with map_errors("closing the database"):
                try:
                    await self._write_conn.close()
                finally:
                    await self._readers.close()

    async def quarantine(self, rows: list[Quarantine], now: float) -> int:
        """Move ``rows`` whole into ``quarantine`` in one transaction; how many moved.

        For start-up, before anything is put. On a connection of its own, not the writer's
        (which its task owns); the row is kept as PostgreSQL's JSON of it."""
        self._check_open()
        if not rows:
            return 0
        moved = 0
        with map_errors("setting rows aside"):
            conn = await asyncpg.connect(self.url)
            try:
                async with conn.transaction():
                    for row in rows:
                        where = _QUARANTINE_KEYS[row.source]
                        found = await conn.fetchval(
                            f"SELECT row_to_json(t)::text FROM {row.source} AS t WHERE {where}",
                            *row.key,
                        )
                        if found is None:
                            continue
                        await conn.execute(
                            "INSERT INTO quarantine (source, key, row, error, at) "
                            "VALUES ($1, $2, $3, $4, $5)",
                            row.source,
                            _utf8(row.label),
                            found,
                            _utf8(row.error),
                            now,
                        )
                        await conn.execute(f"DELETE FROM {row.source} WHERE {where}", *row.key)
                        moved += 1
            finally:
                await conn.close()
        return moved

    # -- reads --------------------------------------------------------------------------------

    async def load_live(self) -> list[TaskRow]:
        """Every live task in ``seq`` order (start-up), the garbage collector paused while the
        rows are built (see ``sqlite.Store.load_live``)."""
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return await self._fetch_rows("loading the live tasks", pgschema.SELECT_LIVE)
        finally:
            if was_enabled:
                gc.enable()

    async def load_live_batches(
        self, size: int = 10_000, skipped: list[SkippedRow] | None = None
    ) -> AsyncIterator[list[TaskRow]]:
        """``load_live`` in batches of ``size`` rows, each a keyset query (``seq > last``), so
        no cursor or transaction stays open while recovery digests a batch. Equal values are
        shared objects (``row_decoder(shared=True)``); with ``skipped``, undecodable rows are
        described there and left out."""
        self._check_open()
        decode = row_decoder(shared=True, skipped=skipped)
        after = 0
        while True:
            with map_errors("loading the live tasks", DECODE_ERRORS):
                async with self._readers.acquire() as conn:
                    records = await conn.fetch(pgschema.SELECT_LIVE_AFTER, after, size)
                if not records:
                    return
                was_enabled = gc.isenabled()
                gc.disable()
                try:
                    decoded = [decode(cast(Any, None), tuple(record)) for record in records]
                finally:
                    if was_enabled:
                        gc.enable()
            after = int(records[-1][0])
            rows = [row for row in decoded if row is not None]
            if rows:
                yield rows
            if len(records) < size:
                return

    async def max_seq(self) -> int:
        value = await self._fetchval("reading the largest seq", pgschema.SELECT_MAX_SEQ)
        return int(value or 0)

    async def load_pauses(self) -> list[tuple[str, str, str]]:
        records = await self._fetch("reading the pauses", pgschema.SELECT_PAUSES)
        return [(str(kind), str(tenant), str(name)) for kind, tenant, name in records]

    async def load_code_options(self) -> list[tuple[str, str, bytes]]:
        records = await self._fetch("reading the functions' options", pgschema.SELECT_CODE)
        return [
            (str(tenant), str(function), bytes(options)) for tenant, function, options in records
        ]

    async def load_crons(self) -> list[tuple[str, str, bytes]]:
        records = await self._fetch("reading the cron entries", pgschema.SELECT_CRONS)
        return [(str(tenant), str(name), bytes(definition)) for tenant, name, definition in records]

    async def load_tenant_uids(self, skipped: list[Quarantine] | None = None) -> dict[str, int]:
        records = await self._fetch("reading the tenants' uids", pgschema.SELECT_TENANT_UIDS)
        uids: dict[str, int] = {}
        for tenant, uid in records:
            if not 0 <= uid < 2**32:
                message = f"uid {uid!r} is not a uid"
                if skipped is None:
                    raise StoreError(f"reading the tenants' uids failed: {message}")
                skipped.append(Quarantine("tenant_uids", (tenant,), str(tenant), message))
                continue
            uids[str(tenant)] = int(uid)
        return uids

    async def get(self, tenant: str, task_id: str) -> TaskRow | None:
        rows = await self._fetch_rows(
            f"reading task {tenant}/{task_id}", pgschema.SELECT_BY_KEY, tenant, task_id
        )
        return rows[0] if rows else None

    async def get_by_seq(self, seq: int) -> TaskRow | None:
        rows = await self._fetch_rows(f"reading task seq={seq}", pgschema.SELECT_BY_SEQ, seq)
        return rows[0] if rows else None

    async def get_by_seqs(self, seqs: list[int]) -> list[TaskRow]:
        """The rows of ``seqs`` that exist, in ``seq`` order (``sqlite.Store.get_by_seqs``)."""
        return await self._fetch_rows(
            f"reading {len(seqs)} tasks by seq", pgschema.SELECT_BY_SEQS, seqs
        )

    async def list_tasks(self, f: TaskFilter, limit: int) -> list[TaskRow]:
        """Tasks matching ``f``, newest (``created_at``, then ``seq``) first, at most ``limit``.

        One statement; PostgreSQL's planner picks the index from its statistics (the SQLite
        store chooses in ``plan.py`` because SQLite has none without ``ANALYZE``)."""
        if limit <= 0 or f.tenants == ():
            self._check_open()
            return []
        sql, params = list_sql(f, limit)
        return await self._fetch_rows("listing tasks", sql, *params)

    async def old_finished(
        self, before: float, limit: int, tenant: str | None = None
    ) -> list[tuple[int, str, str, int]]:
        """``(seq, tenant, id, attempts)`` of up to ``limit`` finished tasks created before
        ``before`` (``math.inf``: any), oldest first, of ``tenant`` only if given."""
        if tenant is None:
            records = await self._fetch(
                "finding old finished tasks", pgschema.SELECT_OLD_FINISHED, before, limit
            )
        else:
            records = await self._fetch(
                "finding old finished tasks",
                pgschema.SELECT_TENANT_OLD_FINISHED,
                before,
                limit,
                tenant,
            )
        return [(int(s), str(t), str(i), int(n)) for s, t, i, n in records]

    async def count_finished(self) -> int:
        return int(await self._fetchval("counting finished tasks", pgschema.COUNT_FINISHED) or 0)

    async def count_finished_by_tenant(self) -> dict[str, int]:
        records = await self._fetch("counting finished tasks", pgschema.COUNT_FINISHED_BY_TENANT)
        return {str(tenant): int(count) for tenant, count in records}

    async def schema_version(self) -> int:
        """The schema version recorded in the database (``pgschema.SCHEMA_VERSION`` once open)."""
        return int(await self._fetchval("reading the schema version", pgschema.READ_VERSION) or 0)

    async def settings(self) -> dict[str, Any]:
        """The server's durability settings as a read connection sees them (stats, tests)."""
        values: dict[str, Any] = {}
        for name in ("synchronous_commit", "fsync", "default_transaction_read_only"):
            values[name] = await self._fetchval("reading the settings", f"SHOW {name}")
        return values

    async def _fetch(self, doing: str, sql: str, *args: Any) -> list[Any]:
        self._check_open()
        with map_errors(doing):
            async with self._readers.acquire() as conn:
                return list(await conn.fetch(sql, *args))

    async def _fetchval(self, doing: str, sql: str, *args: Any) -> Any:
        self._check_open()
        with map_errors(doing):
            async with self._readers.acquire() as conn:
                return await conn.fetchval(sql, *args)

    async def _fetch_rows(self, doing: str, sql: str, *args: Any) -> list[TaskRow]:
        self._check_open()
        with map_errors(doing, DECODE_ERRORS):
            async with self._readers.acquire() as conn:
                records = await conn.fetch(sql, *args)
            decode = row_decoder()
            return cast(
                list[TaskRow], [decode(cast(Any, None), tuple(record)) for record in records]
            )

    def _check_open(self) -> None:
        if self._closing is not None:
            raise StoreError("the store is closed")

    def __repr__(self) -> str:
        writer = self._writer
        return (
            f"<PostgresStore {_safe(self.url)!r} durability={self.durability} "
            f"{'closed' if self.closed else 'open'} | {writer.transactions} transactions, "
            f"{writer.ops_committed} ops committed, {writer.ops_failed} failed, "
            f"{writer.pending} pending>"
        )


def list_sql(f: TaskFilter, limit: int) -> tuple[str, list[Any]]:
    """``list_tasks``'s statement: the filter's conditions, newest first, ``limit`` rows.

    No user text is spliced into SQL. The ID prefix is a half-open range on the ``"C"``-collated
    ``id`` (code point order; ``query.prefix_successor``), so ``%``, ``_`` and ``\\`` are plain
    characters; the labels are one ``jsonb`` containment test."""
    where: list[str] = []
    params: list[Any] = []

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if f.tenants is not None:
        where.append(f"tenant = ANY({bind(list(f.tenants))}::text[])")
    if f.states:
        where.append(f"state = ANY({bind([s.value for s in f.states])}::text[])")
    if f.queue is not None:
        where.append(f"queue = {bind(f.queue)}")
    if f.function is not None:
        where.append(f"function = {bind(f.function)}")
    if f.id_prefix:
        where.append(f"id >= {bind(f.id_prefix)}")
        upper = prefix_successor(f.id_prefix)
        if upper is not None:
            where.append(f"id < {bind(upper)}")
    if f.since is not None:
        where.append(f"created_at >= {bind(f.since)}")
    if f.until is not None:
        where.append(f"created_at < {bind(f.until)}")
    if f.labels:
        where.append(f"labels @> {bind(json.dumps(f.labels))}::jsonb")
    if f.trace_id is not None:
        where.append(f"trace_id = {bind(f.trace_id)}")
    if f.before is not None:
        created_at, seq = f.before
        at = bind(created_at)
        where.append(f"created_at <= {at} AND (created_at < {at} OR seq < {bind(seq)})")
    sql = f"SELECT {', '.join(pgschema.COLUMNS)} FROM tasks"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return f"{sql} ORDER BY created_at DESC, seq DESC LIMIT {bind(limit)}", params


def _encode(op: Op) -> tuple[type[Op], Params]:
    """``codec.encode``, and a refusal, for this op alone, of text PostgreSQL cannot hold.

    PostgreSQL text is UTF-8 without NUL, and ``jsonb`` refuses ``\\u0000`` and lone
    surrogates; SQLite would fail such a row at commit, with the whole batch. Checked here, on
    the caller's turn, so the op is refused alone (``StoreError``) as an unencodable one is."""
    kind, params = encode(op)
    if isinstance(op, InsertTask) and op.foreign:
        kind = ForeignInsert
    elif isinstance(op, ReplaceTask) and op.foreign:
        kind = ForeignReplace
    row = op.row if isinstance(op, InsertTask | ReplaceTask) else None
    values: tuple[Any, ...] = params[2] if isinstance(op, ReplaceTask) else params
    for value in values:
        if type(value) is str:
            _check_text(value, op)
    if row is not None:
        for key, value in row.labels.items():
            _check_text(key, op)
            _check_text(value, op)
    return kind, params


def _check_text(text: str, op: Op) -> None:
    if "\x00" in text:
        raise StoreError(f"cannot store {type(op).__name__}: text holds a NUL character")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise StoreError(
                f"cannot store {type(op).__name__}: text is not UTF-8 ({exc})"
            ) from exc


async def _migrate(conn: Any) -> None:
    """Bring the schema to ``pgschema.SCHEMA_VERSION``, one transaction per missing step,
    holding the migration lock so that daemons starting together migrate once."""
    await conn.execute(pgschema.MIGRATION_LOCK)
    try:
        await conn.execute(pgschema.CREATE_META)
        value = await conn.fetchval(pgschema.READ_VERSION)
        version = int(value) if value is not None else 0
        if version > pgschema.SCHEMA_VERSION:
            raise StoreError(
                f"the database has schema version {version}, newer than this asynctask knows "
                f"({pgschema.SCHEMA_VERSION}); upgrade asynctask or use another database"
            )
        for number in range(version + 1, pgschema.SCHEMA_VERSION + 1):
            async with conn.transaction():
                for statement in pgschema.MIGRATIONS[number - 1]:
                    await conn.execute(statement)
                await conn.execute(pgschema.WRITE_VERSION, str(number))
    finally:
        await conn.execute(pgschema.MIGRATION_UNLOCK)


async def _claim_lock(conn: Any, url: str, lock: str) -> None:
    """Take the schema's writers' lock (shared for a daemon, exclusive for a copy), or refuse,
    naming a holder (PostgreSQL's view of its connection; its host is the holder's machine)."""
    statement = pgschema.SHARED_DAEMON_LOCK if lock == "daemon" else pgschema.SOLE_DAEMON_LOCK
    if await conn.fetchval(statement):
        return
    holder = await conn.fetchrow(pgschema.SOLE_DAEMON_HOLDER)
    held_by = (
        f" (held by server process {holder[0]}, client {holder[1] or '?'} on {holder[2]}, "
        f"connected since {holder[3]})"
        if holder is not None
        else ""
    )
    if lock == "daemon":
        raise StoreError(
            f"asynctask migrate-store is copying into the database {_safe(url)}{held_by}: "
            "start the daemon once the copy is done"
        )
    raise StoreError(
        f"asynctask daemons are using the database {_safe(url)}{held_by}: stop every daemon "
        "of this database (or schema) first, or copy into another one"
    )


async def _check_columns(conn: Any) -> None:
    """Refuse a table that lacks a stored field: a field added to ``taskfields`` without its
    migration (``pgschema.add_column``) would otherwise fail every insert."""
    found = {record[0] for record in await conn.fetch(pgschema.TABLE_COLUMNS)}
    missing = [column for column in pgschema.COLUMNS if column not in found]
    if missing:
        raise StoreError(
            f"the tasks table has no column {', '.join(missing)}: a field of asynctask.taskfields "
            "lacks its migration in store/pgschema.py"
        )


def _utf8(text: str) -> str:
    """``text`` with anything PostgreSQL cannot hold shown as U+FFFD."""
    return (
        text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "\ufffd")
    )
