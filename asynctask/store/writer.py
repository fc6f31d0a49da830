"""The one writer: a coroutine that owns the write connection and commits in groups.

Theory of operation
-------------------

A commit with ``synchronous=FULL`` costs an fsync; one transaction per submit would cap the
daemon at a few thousand submits per second (3,566/s measured on this project's 2-core VM,
and slow laptop disks are ten times worse). Group commit pays one fsync for everything that
arrived while the previous fsync was in progress, so throughput grows with load while the
latency of a lone write stays one commit.

The shape is aiosqlite's own (one thread owns the connection, callers enqueue work and await a
future), one level up: ``put`` never touches the database. It encodes the op, appends it to the
newest open batch and returns a future. The writer coroutine takes the oldest batch, runs it as
one ``BEGIN IMMEDIATE … COMMIT`` and resolves the batch's futures; everything put meanwhile
has gathered in the next batch. Nothing waits on a timer to fill a batch: an idle store commits
a lone op at once, a busy one commits whatever has queued up.

Rules:

* A batch is all or nothing. If any statement or the commit fails, the transaction is rolled
  back and every future of the batch gets a ``StoreError``; the writer goes on with the next.
* Except after an I/O error or a damaged file (``errors.is_fatal``): then the writer stops.
  After a failed write or fsync, Linux may have dropped the unwritten pages and reports the
  error once; a later commit on the same file could "succeed" on top of lost data (the
  fsyncgate lesson). So every queued op fails, ``put`` refuses new ones, and ``on_fatal`` tells
  the owner, which must re-open the files from disk (the daemon exits for its supervisor).
* ``failure`` is the message of the latest failed batch until a batch commits again: the
  store's health, which the daemon's ``ping`` reports.
* Op order is kept. Consecutive ops of one kind run as one ``executemany``, which applies its
  rows in order; a run of ``ReplaceTask`` becomes a delete ``executemany`` then an insert one,
  cut where an op would delete a row inserted earlier in the same run.
* A batch holds at most ``max_batch`` ops, which bounds a transaction's duration and so the
  latency of the ops queued behind it.
* Each op has its own future, so a caller that stops waiting (its future is cancelled) does
  not cancel anybody else's; its op is still committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Final

from asynctask.store import schema
from asynctask.store.codec import Params, encode
from asynctask.store.errors import StoreError, describe, is_fatal
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
from asynctask.store.writeconn import WriteConnection

DEFAULT_MAX_BATCH: Final = 5_000

_Item = tuple[type[Op], Params]


@dataclass(slots=True)
class _Batch:
    """Ops that commit together, their futures, and the ``flush`` calls that end with them."""

    number: int
    items: list[_Item] = field(default_factory=list)
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    #: (number of the first batch the flush covers, its future)
    flushes: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)


class GroupCommitWriter:
    """Owns ``conn`` for writing; see the module docstring. Start it inside the running loop."""

    def __init__(self, conn: WriteConnection, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._conn = conn
        self._max_batch = max_batch
        self._loop = asyncio.get_running_loop()
        self._queue: deque[_Batch] = deque()
        self._inflight: _Batch | None = None
        self._numbers = itertools.count(1)
        self._last_failed = 0  # number of the newest batch that failed
        self._wake = asyncio.Event()
        self._closing = False
        self._unbounded = False  # inside one_transaction(): no max_batch cut
        #: Committed transactions, the ops in them, and the ops of failed batches.
        self.transactions = 0
        self.ops_committed = 0
        self.ops_failed = 0
        #: Ops put and not yet committed or failed (queued and in flight).
        self.pending = 0
        #: The latest failed batch's message, until a batch commits (None: healthy), and when
        #: (loop time) the failures began.
        self.failure: str | None = None
        self.failing_since: float | None = None
        #: Set after a fatal error (see the module docstring); ``put`` raises it.
        self.broken: StoreError | None = None
        #: Called once, from the loop, with the fatal error.
        self.on_fatal: Callable[[StoreError], None] | None = None
        self._task = self._loop.create_task(self._run(), name="asynctask-store-writer")

    def put(self, op: Op) -> asyncio.Future[None]:
        """Queue ``op`` for the next transaction; the future resolves when it has committed."""
        if self.broken is not None:
            raise self.broken
        if self._closing:
            raise StoreError("the store is closed")
        if self._task.done():
            raise StoreError("the store's writer has stopped; reopen the store")
        item = encode(op)
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
        """Every op put inside the block commits in one transaction, however many there are
        (``max_batch`` does not cut it): bulk control must leave all or nothing. The block must
        not await; nothing else can then slip in between its ops. Nested blocks join the
        outer one."""
        if self._unbounded:
            yield
            return
        if self._queue and self._queue[-1].items:
            self._queue.append(_Batch(next(self._numbers)))  # not mixed with earlier ops
        self._unbounded = True
        try:
            yield
        finally:
            self._unbounded = False

    def flush(self) -> asyncio.Future[None]:
        """A future that resolves when every op put so far has committed.

        It gets a ``StoreError`` if a batch holding one of those ops failed (the ops' own
        futures say which).
        """
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
        """Refuse new ops, commit every queued one, and stop. The connection stays open."""
        self._closing = True
        self._wake.set()
        # Shielded: a caller giving up on close must not abandon the queued ops mid-commit.
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
                    await self._commit(batch)
                except Exception as error:  # a failed batch fails its ops, never the writer
                    if is_fatal(error):
                        self._break(batch, error)
                        return
                    self._finish(batch, error)
                else:
                    self._finish(batch, None)
                finally:
                    self._inflight = None
        except asyncio.CancelledError:
            # Only a loop shutting down without close() gets here; the in-flight batch may or
            # may not have committed in aiosqlite's thread, so its callers are told so.
            stopped = StoreError("the store's writer was cancelled; the write may not be stored")
            for batch in (*((self._inflight,) if self._inflight else ()), *self._queue):
                self._finish(batch, stopped)
            self._queue.clear()
            raise

    async def _commit(self, batch: _Batch) -> None:
        statements = list(_statements(batch.items))  # built here: the thread only runs SQL

        def transaction(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    conn.executemany(sql, params)
                conn.execute("COMMIT")
            except BaseException:
                # "no transaction is active" when SQLite already rolled back by itself.
                with contextlib.suppress(sqlite3.Error, ValueError):
                    conn.execute("ROLLBACK")
                raise

        await self._conn.run(transaction)  # one thread hop per transaction

    def _break(self, batch: _Batch, error: BaseException) -> None:
        """Stop for good after a fatal error: fail this batch and every queued one."""
        broken = _chained(
            StoreError(
                f"storage I/O error ({describe(error)}): whether the last write was stored is "
                "unknown, and nothing more can be stored until the database is re-opened from "
                "disk"
            ),
            error,
        )
        self.broken = broken
        self._finish(batch, broken)
        while self._queue:
            self._finish(self._queue.popleft(), broken)
        if self.on_fatal is not None:
            self.on_fatal(broken)

    def _finish(self, batch: _Batch, error: BaseException | None) -> None:
        count = len(batch.items)
        self.pending -= count
        if error is None:
            self.failure = self.failing_since = None
            self.transactions += 1
            self.ops_committed += count
            for future in batch.futures:
                if not future.done():
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
                    future.set_exception(_chained(StoreError(message), error))
        for first, future in batch.flushes:
            if future.done():
                continue
            if self._last_failed >= first:
                future.set_exception(StoreError("some writes before this flush were not stored"))
            else:
                future.set_result(None)

    def __repr__(self) -> str:
        return (
            f"<GroupCommitWriter {self.transactions} transactions, {self.ops_committed} ops "
            f"committed, {self.ops_failed} failed, {self.pending} pending>"
        )


def _chained(error: StoreError, cause: BaseException) -> StoreError:
    if cause is not error:
        error.__cause__ = cause
    return error


def _statements(items: list[_Item]) -> Iterator[tuple[str, list[Params]]]:
    """The ``executemany`` calls of a batch, in op order: per run of same-kind ops, one call -
    or, for inserts and updates, a few multi-row statements (``_multi_row``)."""
    for kind, run in itertools.groupby(items, key=itemgetter(0)):
        params = [item[1] for item in run]
        if kind is InsertTask:
            yield from _multi_row(schema.insert_rows, params)
        elif kind is UpdateTask:
            # Each update carries every mutable column, so within a run only the last one of
            # a task counts (a no-op task's "running" and "succeeded" often share a batch).
            latest = {p[-1]: p for p in params}
            yield from _multi_row(schema.update_rows, list(latest.values()))
        elif kind is DeleteTask:
            yield schema.DELETE, params
        elif kind is SetPause:
            yield schema.SET_PAUSE, params
        elif kind is ClearPause:
            yield schema.CLEAR_PAUSE, params
        elif kind is PutCron:
            yield schema.PUT_CRON, params
        elif kind is DeleteCron:
            yield schema.DELETE_CRON, params
        elif kind is AssignUid:
            yield schema.ASSIGN_UID, params
        elif kind is PutCode:
            for one in params:  # rare (a function's first import): in order, one by one
                if one[2] is None:
                    yield schema.DELETE_CODE, [one[:2]]
                else:
                    yield schema.PUT_CODE, [one]
        elif kind is Touch:
            yield schema.TOUCH, params[-1:]
        else:
            assert kind is ReplaceTask
            yield from _replace_statements(params)


#: Rows per multi-row statement: powers of two up to this, so that few distinct SQL texts
#: exist (SQLite's statement cache keeps them prepared) and 512 rows stay far below SQLite's
#: limit of 32,766 parameters.
_MAX_ROWS_PER_STATEMENT: Final = 512


def _multi_row(
    sql_for: Callable[[int], str], params: list[Params]
) -> Iterator[tuple[str, list[Params]]]:
    """Why: ``executemany`` steps once per row, and each step gives up and takes back the GIL.
    While the daemon's loop is busy, every take-back waits for it, which made a commit of 750
    updates take 62 ms under a no-op flood (82 us per row, against 11 us with an idle loop).
    A multi-row statement binds everything at once and steps once."""
    start = 0
    while start < len(params):
        size = min(_MAX_ROWS_PER_STATEMENT, 1 << ((len(params) - start).bit_length() - 1))
        chunk = params[start : start + size]
        yield _cached_sql(sql_for, size), [tuple(itertools.chain.from_iterable(chunk))]
        start += size


_SQL_CACHE: dict[tuple[Callable[[int], str], int], str] = {}


def _cached_sql(sql_for: Callable[[int], str], size: int) -> str:
    key = (sql_for, size)
    sql = _SQL_CACHE.get(key)
    if sql is None:
        sql = _SQL_CACHE[key] = sql_for(size)
    return sql


def _replace_statements(params: list[Params]) -> Iterator[tuple[str, list[Params]]]:
    """Deletes then inserts, cut wherever an op deletes a row the same chunk inserts."""
    chunk: list[Params] = []
    inserted: set[int] = set()
    for replace in params:
        old_seq, new_seq, _ = replace
        if old_seq in inserted:
            yield schema.DELETE, [(p[0],) for p in chunk]
            yield schema.INSERT, [p[2] for p in chunk]
            chunk, inserted = [], set()
        chunk.append(replace)
        inserted.add(new_seq)
    yield schema.DELETE, [(p[0],) for p in chunk]
    yield schema.INSERT, [p[2] for p in chunk]
