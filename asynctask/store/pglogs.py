"""``PgAttemptLogs``: ended attempts' logs in PostgreSQL, so every daemon of a cluster can read
them (issue 16, docs/scale-out.md "Attempt logs across daemons").

The live path stays the daemon's files (``daemon/attemptlogs.py``): output arrives in many
small pieces, and an append to the page cache costs microseconds where a row per piece would
cost a round trip. When an attempt ends, its whole log, already capped at ``max_log_bytes``
with its truncation marker, is copied here in one write; ``logs`` on any daemon reads its own
file if it has one, else this table. A running attempt's output is therefore visible only on
the daemon that runs it, until the attempt ends.

The table, ``attempt_logs (seq, attempt, data)``, is keyed like the files, by the task's
``seq`` (unique for the life of the database: an ID deleted and submitted again is a new
task) and the attempt's number. No size column: ``octet_length(data)`` reads the length from
the value's header without decompressing it, so a stored size would only repeat it.

Deletion mirrors the files': the daemon deletes the tasks (one transaction on the store's
writer), then their logs (``delete``, on this connection, after the commit). There is no
foreign key with ``ON DELETE CASCADE`` on purpose: it would delete up to a megabyte of TOAST
per task inside the writer's transaction, which submits wait behind. A copy racing the
deletion of its task cannot leave a row behind: ``STORE`` inserts only rows whose task still
exists, and locks that task row ``FOR KEY SHARE`` until it commits, so a concurrent delete
of the task waits for the copy, and the log deletion that follows it sees the copied row. A
daemon killed between the two deletions leaves rows whose task is gone (``delete_orphans``
removes them).

One connection of its own, opened again after a loss (as ``PgLeases``), with
``synchronous_commit = off``: a log is a diagnostic, not part of the durable record, and a
copy lost in a server crash costs a log, never a task. Calls are serialized by a lock (the
daemon's copier and ``logs`` requests share the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from asynctask.store.errors import StoreError
from asynctask.store.pgconn import reconnecting
from asynctask.store.pgerrors import map_errors

#: The migration step that adds the table (after the store's steps in ``pgschema``).
LOGS_MIGRATION: Final[tuple[str, ...]] = (
    "CREATE TABLE attempt_logs (seq bigint NOT NULL, attempt integer NOT NULL "
    "CHECK (attempt > 0), data bytea NOT NULL, PRIMARY KEY (seq, attempt))",
)

#: Upsert a batch of logs ($1 seqs, $2 attempts, $3 data), only for tasks that still exist,
#: whose rows stay locked ``FOR KEY SHARE`` until the commit (the module docstring says why).
#: The batch holds each (seq, attempt) once (``store_many``).
STORE: Final = (
    "INSERT INTO attempt_logs (seq, attempt, data) "
    "SELECT v.seq, v.attempt, v.data "
    "FROM unnest($1::bigint[], $2::integer[], $3::bytea[]) AS v(seq, attempt, data) "
    "JOIN tasks ON tasks.seq = v.seq FOR KEY SHARE OF tasks "
    "ON CONFLICT (seq, attempt) DO UPDATE SET data = excluded.data"
)
#: Each asked attempt of one task ($1 seq) from its offset ($2 attempts, $3 offsets: bytes
#: to skip, clamped to ``0..MAX_OFFSET``); ``substring`` past the end is empty.
READ: Final = (
    "SELECT l.attempt, octet_length(l.data), substring(l.data FROM w.start + 1) "
    "FROM attempt_logs l JOIN unnest($2::integer[], $3::integer[]) AS w(attempt, start) "
    "ON l.attempt = w.attempt WHERE l.seq = $1 ORDER BY l.attempt"
)
#: Past any stored log (a ``bytea`` holds at most 1 GiB) and within ``substring``'s integer.
MAX_OFFSET: Final = 2**30
DELETE: Final = "DELETE FROM attempt_logs WHERE seq = ANY($1::bigint[])"
#: Rows of tasks that are gone (a daemon died between a task's deletion and its logs').
DELETE_ORPHANS: Final = (
    "DELETE FROM attempt_logs WHERE (seq, attempt) IN (SELECT l.seq, l.attempt "
    "FROM attempt_logs l WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.seq = l.seq) "
    "LIMIT $1)"
)
#: Whether the schema has the table: the store's migrations add it.
HAS_TABLE: Final = "SELECT to_regclass('attempt_logs') IS NOT NULL"


@dataclass(frozen=True, slots=True)
class StoredLog:
    """An attempt's stored log, as ``daemon.attemptlogs.AttemptLog`` (the store may not
    import the daemon): its whole size, and its bytes from the asked offset on."""

    attempt: int
    size: int
    data: bytes


class PgAttemptLogs:
    """The ``attempt_logs`` table. Open with ``PgAttemptLogs.open``; every method raises
    ``StoreError`` on a database error, and the next call connects again if the connection
    was lost."""

    def __init__(self, url: str, conn: Any) -> None:
        """Use ``PgAttemptLogs.open``; this only wraps an open connection."""
        self.url = url
        self._conn: Any = conn
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"<PgAttemptLogs {state} busy={self._lock.locked()}>"

    @classmethod
    async def open(cls, url: str) -> PgAttemptLogs:
        """Connect to the store's database; the store has migrated it (``PostgresStore.open``
        runs the migrations), so a schema without the table is refused here."""
        conn: Any = None
        try:
            with map_errors("opening the attempt logs table"):
                conn = await _connect(url)
                exists = await conn.fetchval(HAS_TABLE)
            if not exists:
                raise StoreError(
                    "the database has no attempt_logs table; open the store first, which "
                    "migrates it"
                )
        except BaseException:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            raise
        return cls(url, conn)

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with map_errors("closing the attempt logs table"):
                    await conn.close()

    @contextlib.asynccontextmanager
    async def _using(self, doing: str) -> AsyncIterator[Any]:
        """The connection, to this caller alone, opened again if the last one was lost."""
        # InternalClientError: the server's goodbye arrived mid-statement (``is_fatal``).
        connect = lambda: _connect(self.url)  # noqa: E731
        also = (asyncpg.InternalClientError,)
        async with self._lock, reconnecting(self, "_conn", connect, doing, also) as conn:
            yield conn

    async def store(self, seq: int, attempt: int, data: bytes) -> int:
        """Keep (or replace) the log of attempt ``attempt`` of task ``seq``. Returns 1, or 0
        if the task is not stored (deleted meanwhile)."""
        return await self.store_many([(seq, attempt, data)])

    async def store_many(self, logs: Iterable[tuple[int, int, bytes]]) -> int:
        """``store`` for a batch, in one statement; a (seq, attempt) given twice keeps the
        last. Returns how many rows were written."""
        latest = {(seq, attempt): data for seq, attempt, data in logs}
        if not latest:
            return 0
        seqs = [seq for seq, _ in latest]
        attempts = [attempt for _, attempt in latest]
        async with self._using(f"storing {len(latest)} attempt logs") as conn:
            status = await conn.execute(STORE, seqs, attempts, list(latest.values()))
        return int(status.split()[-1])

    async def read(
        self,
        seq: int,
        attempts: int,
        offsets: Mapping[int, int],
        skip: Collection[int] = (),
    ) -> list[StoredLog]:
        """Each stored log of attempts 1 to ``attempts`` of task ``seq`` but those in
        ``skip`` (read elsewhere), from ``offsets[attempt]`` (default 0), in attempt order:
        ``AttemptLogs.read``'s answer."""
        wanted = [n for n in range(1, attempts + 1) if n not in skip]
        if not wanted:
            return []
        starts = [min(max(0, offsets.get(n, 0)), MAX_OFFSET) for n in wanted]
        async with self._using(f"reading the logs of task {seq}") as conn:
            rows = await conn.fetch(READ, seq, wanted, starts)
        return [StoredLog(row[0], row[1], bytes(row[2])) for row in rows]

    async def delete(self, seqs: Collection[int]) -> int:
        """Remove every log of these (deleted) tasks. Returns how many rows went."""
        if not seqs:
            return 0
        async with self._using(f"deleting the logs of {len(seqs)} tasks") as conn:
            status = await conn.execute(DELETE, list(seqs))
        return int(status.split()[-1])

    async def delete_orphans(self, limit: int = 1000) -> int:
        """Remove up to ``limit`` logs whose task is no longer stored. Returns how many."""
        async with self._using("deleting the logs of deleted tasks") as conn:
            status = await conn.execute(DELETE_ORPHANS, limit)
        return int(status.split()[-1])


async def _connect(url: str) -> Any:
    return await asyncpg.connect(
        url,
        server_settings={"synchronous_commit": "off", "application_name": "asynctask-logs"},
    )
