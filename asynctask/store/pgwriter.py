"""The PostgreSQL store's one writer: a coroutine that owns the write connection and commits
in groups, with the semantics of ``writer.py`` (read its docstring first).

Why group commit matters on PostgreSQL too: with ``synchronous_commit = on`` every ``COMMIT``
waits for the server's WAL flush, and a round trip per statement adds up. So, as with SQLite,
``put`` only encodes and queues; the writer takes the oldest batch, runs it as one transaction,
and everything put meanwhile gathers in the next one. A run of same-kind ops becomes one
statement whose parameters are arrays (``INSERT ... SELECT FROM unnest(...)``, ``UPDATE ...
FROM unnest(...)``, ``DELETE ... = ANY(...)``): one round trip and one plan for any number of
rows, where ``executemany`` would still execute per row on the server.

The same rules as ``writer.py``: op order kept, a batch all or nothing, ``max_batch`` per
transaction except inside ``one_transaction()``, one future per op (a caller that stops waiting
cancels nobody else's write), ``flush()``, ``failure``/``failing_since``.

What is fatal differs. PostgreSQL owns its files and handles an fsync failure itself (it
stops and recovers from its WAL), so no server error leaves *our* view in doubt - except a lost
connection: if it broke while a ``COMMIT`` was on the wire, whether the batch committed is
unknown. The writer then stops, fails every queued op, and ``on_fatal`` tells the owner to
re-open the store (and reload what is live), as after an SQLite I/O error. This is kept in one
module of its own, not shared with ``writer.py``, because that one runs each transaction in a
thread; folding both into one class parameterised by its commit is a follow-up once the SQLite
store's split has settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Final

from asynctask.core.partitions import partition_of
from asynctask.store import pgschema
from asynctask.store.codec import Params
from asynctask.store.errors import Fenced, StoreError
from asynctask.store.pgerrors import describe, is_fatal
from asynctask.store.pgleases import still_held
from asynctask.store.rows import (
    AssignUid,
    ClearPause,
    DeleteCron,
    DeleteTask,
    InsertTask,
    Op,
    PutCode,
    PutCron,
    ReplaceTask,
    SetPause,
    Touch,
    UpdateTask,
)

DEFAULT_MAX_BATCH: Final = 5_000
_SEQ: Final = pgschema.COLUMNS.index("seq")
_TENANT: Final = pgschema.COLUMNS.index("tenant")
_ID: Final = pgschema.COLUMNS.index("id")


@dataclass(frozen=True, slots=True)
class Fence:
    """What a batch's task writes are conditioned on when daemons share the database
    (docs/scale-out.md, fencing): ``me`` holds ``held`` (partition: epoch) by its own belief,
    and each lease must outlast ``now`` (the daemon's clock plus its margin)."""

    me: str
    held: Mapping[int, int]
    now: float
    partitions: int


@dataclass(frozen=True, slots=True)
class ForeignInsert(InsertTask):
    """The writer's kind for an insert into a partition another daemon holds: the row, plus
    its seq in that partition's inbox and a notification, all in the batch's transaction."""


@dataclass(frozen=True, slots=True)
class ForeignReplace(ReplaceTask):
    """``ForeignInsert`` for a ``ReplaceTask``."""


_Item = tuple[type[Op], Params]
#: One statement of a transaction: (SQL, parameter tuples); one tuple runs it with ``execute``,
#: several with ``executemany``.
Statement = tuple[str, list[Params]]


@dataclass(slots=True)
class _Batch:
    number: int
    items: list[_Item] = field(default_factory=list)
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    flushes: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)


class PgWriter:
    """Owns ``conn`` (an ``asyncpg.Connection``) for writing. Start it inside the running loop.

    ``encode`` turns an op into its parameters on the caller's turn (refusing one that cannot
    be stored, alone)."""

    def __init__(
        self,
        conn: Any,
        encode: Callable[[Op], _Item],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._conn = conn
        self._encode = encode
        self._max_batch = max_batch
        self._loop = asyncio.get_running_loop()
        self._queue: deque[_Batch] = deque()
        self._inflight: _Batch | None = None
        self._numbers = itertools.count(1)
        self._last_failed = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._unbounded = False
        self.transactions = 0
        self.ops_committed = 0
        self.ops_failed = 0
        self.pending = 0
        self.failure: str | None = None
        self.failing_since: float | None = None
        self.broken: StoreError | None = None
        self.on_fatal: Callable[[StoreError], None] | None = None
        #: Set when daemons share the database: every batch's task writes are fenced.
        self.fence: Callable[[], Fence] | None = None
        #: Ops refused by the fence (their partition had moved).
        self.ops_fenced = 0
        self._task = self._loop.create_task(self._run(), name="asynctask-pg-writer")

    def put(self, op: Op) -> asyncio.Future[None]:
        if self.broken is not None:
            raise self.broken
        if self._closing:
            raise StoreError("the store is closed")
        if self._task.done():
            raise StoreError("the store's writer has stopped; reopen the store")
        item = self._encode(op)
        future: asyncio.Future[None] = self._loop.create_future()
        queue = self._queue
        if queue and (self._unbounded or len(queue[-1].items) < self._max_batch):
            batch = queue[-1]
        else:
            batch = _Batch(next(self._numbers))
            queue.append(batch)
        batch.items.append(item)
        batch.futures.append(future)
        self.pending += 1
        self._wake.set()
        return future

    @contextlib.contextmanager
    def one_transaction(self) -> Iterator[None]:
        """Ops put inside the (await-free) block commit in one transaction, all or nothing."""
        if self._unbounded:
            yield
            return
        if self._queue and self._queue[-1].items:
            self._queue.append(_Batch(next(self._numbers)))
        self._unbounded = True
        try:
            yield
        finally:
            self._unbounded = False

    def flush(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        inflight = self._inflight
        if self._queue:
            first = inflight.number if inflight else self._queue[0].number
            self._queue[-1].flushes.append((first, future))
        elif inflight is not None:
            inflight.flushes.append((inflight.number, future))
        else:
            future.set_result(None)
        return future

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch = self._queue.popleft()
                self._inflight = batch
                try:
                    refused = await self._commit(batch)
                except Exception as error:  # a failed batch fails its ops, never the writer
                    if is_fatal(error) or self._conn.is_closed():
                        self._break(batch, error)
                        return
                    self._finish(batch, error)
                else:
                    self._finish(batch, None, refused)
                finally:
                    self._inflight = None
        except asyncio.CancelledError:
            stopped = StoreError("the store's writer was cancelled; the write may not be stored")
            for batch in (*((self._inflight,) if self._inflight else ()), *self._queue):
                self._finish(batch, stopped)
            self._queue.clear()
            raise

    async def _commit(self, batch: _Batch) -> dict[int, StoreError]:
        """Run the batch as one transaction; the ops refused alone in it, by index."""
        conn = self._conn
        async with conn.transaction():
            if self.fence is not None:
                return await _commit_shared(conn, batch.items, self.fence())
            for sql, params in statements(batch.items):
                await _run(conn, sql, params)
        return {}

    def _break(self, batch: _Batch, error: BaseException) -> None:
        broken = StoreError(
            f"lost the database connection ({describe(error)}): whether the last write was "
            "stored is unknown, and nothing more can be stored until the store is re-opened"
        )
        broken.__cause__ = error
        self.broken = broken
        self._finish(batch, broken)
        while self._queue:
            self._finish(self._queue.popleft(), broken)
        if self.on_fatal is not None:
            self.on_fatal(broken)

    def _finish(
        self,
        batch: _Batch,
        error: BaseException | None,
        refused: Mapping[int, StoreError] | None = None,
    ) -> None:
        refused = refused or {}
        count = len(batch.items)
        self.pending -= count
        if error is None:
            self.failure = self.failing_since = None
            self.transactions += 1
            self.ops_committed += count - len(refused)
            self.ops_fenced += sum(1 for e in refused.values() if isinstance(e, Fenced))
            for index, future in enumerate(batch.futures):
                if future.done():
                    continue
                if index in refused:
                    future.set_exception(refused[index])
                else:
                    future.set_result(None)
        else:
            self.ops_failed += count
            self._last_failed = batch.number
            message = (
                error.message
                if isinstance(error, StoreError)
                else f"a write batch of {count} ops was rolled back, nothing of it was stored: "
                f"{describe(error)}"
            )
            self.failure = message
            if self.failing_since is None:
                self.failing_since = self._loop.time()
            for future in batch.futures:
                if not future.done():
                    failed = StoreError(message)
                    if failed is not error:
                        failed.__cause__ = error
                    future.set_exception(failed)
        for first, future in batch.flushes:
            if future.done():
                continue
            if self._last_failed >= first:
                future.set_exception(StoreError("some writes before this flush were not stored"))
            else:
                future.set_result(None)


async def _run(conn: Any, sql: str, params: list[Params]) -> None:
    if len(params) == 1:
        await conn.execute(sql, *params[0])
    else:
        await conn.executemany(sql, params)


async def _commit_shared(conn: Any, items: list[_Item], fence: Fence) -> dict[int, StoreError]:
    """A batch on a shared store, inside its transaction: fenced first (``_fenced``), then
    run in op order, with each insert alone to fail. Two daemons may store one new
    (tenant, ID) at the same moment (neither had it in memory), and a unique violation would
    fail the whole batch, every other op of it with it; so inserts skip a taken key
    (``ON CONFLICT DO NOTHING``) and each one skipped is refused alone. Returns the ops
    refused, by index."""
    kept, refused = await _fenced(conn, items, fence)
    foreign = False
    for kind, run in itertools.groupby(kept, key=lambda entry: entry[1][0]):
        entries = list(run)
        if kind is InsertTask or kind is ForeignInsert:
            rows = [params for _, (_, params) in entries]
            inserted = {
                record[0]
                for record in await conn.fetch(
                    pgschema.INSERT_UNNEST_NEW, *pgschema.columns_of(rows)
                )
            }
            for index, (_, params) in entries:
                if params[_SEQ] not in inserted:
                    refused[index] = StoreError(
                        f"a task with the ID {params[_TENANT]}/{params[_ID]} was stored by "
                        "another daemon at the same moment: this one was not; submit again "
                        "to get that task"
                    )
            if kind is ForeignInsert:
                noted = [row for row in rows if row[_SEQ] in inserted]
                if noted:
                    foreign = True
                    await _run(conn, pgschema.INSERT_INBOX, [_inbox_rows(noted, fence)])
            continue
        for sql, batch in statements([item for _, item in entries], fence.partitions):
            if sql == pgschema.NOTIFY_INBOX:
                foreign = True
                continue
            await _run(conn, sql, batch)
    if foreign:
        await conn.execute(pgschema.NOTIFY_INBOX)
    return refused


def _inbox_rows(rows: list[Params], fence: Fence) -> Params:
    return (
        [row[_SEQ] for row in rows],
        [partition_of(row[_TENANT], fence.partitions) for row in rows],
    )


async def _fenced(
    conn: Any, items: list[_Item], fence: Fence
) -> tuple[list[tuple[int, _Item]], dict[int, StoreError]]:
    """The batch's ops as the fence lets them through (with their indexes), and those it
    refuses.

    Called first in the batch's transaction: ``still_held`` locks the rows of the partitions
    the batch writes, so a take of one of them waits for this commit (``pgleases.py``). An
    update or replace of a partition no longer held is refused (``Fenced``). An insert into
    one is stored all the same, as a foreign insert: the submit was acknowledged by its
    caller's terms (stored), and the partition's owner takes it in from the inbox. Deletes,
    pauses, crons and uids are not fenced: none of them is a live task's state."""
    tenant_of: dict[int, str] = {}
    for kind, params in items:
        if kind is InsertTask:
            tenant_of[params[_SEQ]] = params[_TENANT]
        elif kind is ReplaceTask:
            tenant_of[params[1]] = params[2][_TENANT]
    unknown = [p[-1] for kind, p in items if kind is UpdateTask and p[-1] not in tenant_of]
    if unknown:
        for seq, tenant in await conn.fetch(pgschema.SELECT_TENANTS_OF_SEQS, unknown):
            tenant_of[seq] = tenant
    part = {seq: partition_of(tenant, fence.partitions) for seq, tenant in tenant_of.items()}
    needed = {part[seq] for seq in part}
    ok = await still_held(
        conn, fence.me, {p: fence.held[p] for p in needed if p in fence.held}, fence.now
    )
    kept: list[tuple[int, _Item]] = []
    refused: dict[int, StoreError] = {}
    for index, item in enumerate(items):
        kind, params = item
        if kind is InsertTask:
            kept.append((index, item if part[params[_SEQ]] in ok else (ForeignInsert, params)))
        elif (kind is ReplaceTask and part[params[1]] not in ok) or (
            kind is UpdateTask and params[-1] in part and part[params[-1]] not in ok
        ):
            refused[index] = Fenced(
                "the task's partition is held by another daemon now: not stored"
            )
        else:
            kept.append((index, item))
    return kept, refused


def statements(items: Sequence[_Item], partitions: int | None = None) -> Iterator[Statement]:
    """The statements of a batch, in op order: one per run of same-kind ops (two per chunk of
    replaces), each binding the run's rows as arrays. Foreign inserts (``partitions`` is
    then the cluster's count) also note each task in its partition's inbox, and the batch
    ends with one notification to the owners."""
    foreign = False
    for kind, run in itertools.groupby(items, key=itemgetter(0)):
        params = [item[1] for item in run]
        if kind is ForeignInsert or kind is ForeignReplace:
            assert partitions is not None, "a foreign insert needs the partition count"
            foreign = True
            rows = params if kind is ForeignInsert else [p[2] for p in params]
            if kind is ForeignInsert:
                yield pgschema.INSERT_UNNEST, [pgschema.columns_of(rows)]
            else:
                yield from _replace_statements(params)
            seqs = [row[_SEQ] for row in rows]
            parts = [partition_of(row[_TENANT], partitions) for row in rows]
            yield pgschema.INSERT_INBOX, [(seqs, parts)]
        elif kind is InsertTask:
            yield pgschema.INSERT_UNNEST, [pgschema.columns_of(params)]
        elif kind is UpdateTask:
            # Every mutable column is written, so within a run only the last update of a task
            # counts (and ``UPDATE ... FROM`` must not see one seq twice).
            latest = list({p[-1]: p for p in params}.values())
            yield pgschema.UPDATE_UNNEST, [pgschema.update_columns_of(latest)]
        elif kind is DeleteTask:
            yield pgschema.DELETE_MANY, [([p[0] for p in params],)]
        elif kind is ReplaceTask:
            yield from _replace_statements(params)
        elif kind is SetPause:
            yield pgschema.SET_PAUSE, params
        elif kind is ClearPause:
            yield pgschema.CLEAR_PAUSE, params
        elif kind is PutCron:
            yield pgschema.PUT_CRON, params
        elif kind is DeleteCron:
            yield pgschema.DELETE_CRON, params
        elif kind is AssignUid:
            yield pgschema.ASSIGN_UID, params
        elif kind is PutCode:
            for one in params:  # rare (a function's first import): in order, one by one
                if one[2] is None:
                    yield pgschema.DELETE_CODE, [one[:2]]
                else:
                    yield pgschema.PUT_CODE, [one]
        else:
            assert kind is Touch
            yield pgschema.TOUCH, [(repr(float(params[-1][0])),)]
    if foreign:
        yield pgschema.NOTIFY_INBOX, [()]


def _replace_statements(params: list[Params]) -> Iterator[Statement]:
    """Deletes then inserts, cut wherever an op deletes a row the same chunk inserts."""
    chunk: list[Params] = []
    inserted: set[int] = set()
    for replace in params:
        old_seq, new_seq, _ = replace
        if old_seq in inserted:
            yield from _replace_chunk(chunk)
            chunk, inserted = [], set()
        chunk.append(replace)
        inserted.add(new_seq)
    yield from _replace_chunk(chunk)


def _replace_chunk(chunk: list[Params]) -> Iterator[Statement]:
    yield pgschema.DELETE_MANY, [([p[0] for p in chunk],)]
    yield pgschema.INSERT_UNNEST, [pgschema.columns_of([p[2] for p in chunk])]
