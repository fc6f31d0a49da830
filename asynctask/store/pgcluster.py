"""``PgCluster``: what a daemon sharing a PostgreSQL database with others reads and claims
beyond the ``TaskStore`` protocol (docs/scale-out.md, "Several daemons").

* **Task numbers.** Every daemon numbers the tasks it creates (``seq``, the attempt ID and the
  history cursor's tie-break). Daemons draw blocks of ``pgschema.SEQ_BLOCK`` numbers from one
  sequence, so two never hand out the same one, and a block costs one round trip per 65,536
  tasks. Order across daemons is by block, not by submit: FIFO holds within a daemon's block,
  which is where one owner dispatches a tenant from.
* **Taking tasks in.** ``take_in`` is the one read of a partition's live tasks: all of them
  for a partition just taken, the inbox's for one held already (a foreign submit, noted in
  the inbox by ``pgwriter``). It runs in one transaction that first checks and locks the
  leases (``pgleases.still_held``), so a daemon that has lost a partition reads nothing of it,
  and an inbox row is only removed by its partition's owner at its epoch.
* **Notifications.** ``listen`` wakes the owner when a foreign submit commits. A lost
  notification only delays: the daemon also reads its inbox at every heartbeat.
* **The partition count.** ``[store] partitions`` maps tenants to partitions; every daemon of
  a database must use the same count, so the first writes it to ``meta`` and the others are
  refused if theirs differs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import Any, cast

import asyncpg

from asynctask.core.partitions import partition_of
from asynctask.store import pgschema
from asynctask.store.codec import DECODE_ERRORS, row_decoder
from asynctask.store.errors import StoreError
from asynctask.store.open import redacted
from asynctask.store.pgconn import reconnecting
from asynctask.store.pgerrors import map_errors
from asynctask.store.pgleases import still_held
from asynctask.store.rows import SkippedRow, TaskRow


class PgCluster:
    """One daemon's connection for the reads above, and one for notifications. Open with
    ``PgCluster.open``; a lost connection is opened again at the next call."""

    def __init__(self, url: str, conn: Any, partitions: int) -> None:
        """Use ``PgCluster.open``."""
        self.url = url
        self.partitions = partitions
        self._conn: Any = conn
        self._listen_conn: Any = None
        #: One statement at a time on a connection (asyncpg refuses a second): the lease
        #: loop's reads and a block drawn in the background take turns.
        self._turn = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, partitions: int) -> PgCluster:
        """Connect and check ``partitions`` against the count the database's first daemon
        set (``StoreError`` if they differ). The store must have migrated the schema."""
        conn: Any = None
        try:
            with map_errors("opening the cluster connection"):
                conn = await _connect(url)
                await conn.execute(pgschema.CLAIM_PARTITIONS, str(partitions))
                stored = int(await conn.fetchval(pgschema.READ_PARTITIONS))
            if stored != partitions:
                raise StoreError(
                    f"the database {redacted(url)} is shared with [store] partitions = "
                    f"{stored}, and this daemon has {partitions}: every daemon of one database "
                    "must map tenants to partitions alike; set it to the same value"
                )
        except BaseException:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            raise
        return cls(url, conn, partitions)

    async def close(self) -> None:
        for name in ("_conn", "_listen_conn"):
            conn = getattr(self, name)
            setattr(self, name, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    @contextlib.asynccontextmanager
    async def _using(self, doing: str) -> AsyncIterator[Any]:
        async with (
            self._turn,
            reconnecting(self, "_conn", lambda: _connect(self.url), doing, DECODE_ERRORS) as conn,
        ):
            yield conn

    async def seq_block(self) -> int:
        """The first of ``pgschema.SEQ_BLOCK`` task numbers no daemon has or will hand out.

        Past every stored seq too: a store migrated from SQLite, or written by a daemon alone,
        has numbers the sequence never handed out, so it is moved past them first."""
        size = pgschema.SEQ_BLOCK
        async with self._using("drawing a block of task numbers") as conn:
            block = int(await conn.fetchval(pgschema.NEXT_SEQ_BLOCK))
            stored = int(await conn.fetchval(pgschema.SELECT_MAX_SEQ))
            if block * size <= stored:
                await conn.execute(pgschema.SKIP_SEQ_BLOCKS, stored // size + 1)
                block = int(await conn.fetchval(pgschema.NEXT_SEQ_BLOCK))
        return block * size

    async def take_in(
        self,
        me: str,
        held: Mapping[int, int],
        now: float,
        whole: Collection[int],
        skipped: list[SkippedRow],
    ) -> tuple[set[int], list[TaskRow]]:
        """The partitions of ``held`` (partition: epoch) that ``me`` still holds by ``now``,
        and the live tasks to take in for them: every one of the ``whole`` partitions (just
        taken), and those in the others' inbox. One transaction; the inbox rows it reads
        are removed in it. Undecodable rows are described in ``skipped``."""
        if not held:
            return set(), []
        decode = row_decoder(shared=True, skipped=skipped)
        async with self._using("taking in tasks") as conn, conn.transaction():
            ok = await still_held(conn, me, held, now)
            fresh = sorted(p for p in ok if p in whole)
            known = sorted(p for p in ok if p not in whole)
            records: list[Any] = []
            if fresh:
                await conn.execute(pgschema.CLEAR_INBOX, fresh)
                wanted = set(fresh)
                tenants = [
                    tenant
                    for (tenant,) in await conn.fetch(pgschema.SELECT_LIVE_TENANTS)
                    if partition_of(tenant, self.partitions) in wanted
                ]
                if tenants:
                    records += await conn.fetch(pgschema.SELECT_LIVE_OF_TENANTS, tenants)
            if known:
                seqs = [seq for (seq,) in await conn.fetch(pgschema.TAKE_INBOX, known)]
                if seqs:
                    records += await conn.fetch(pgschema.SELECT_LIVE_BY_SEQS, seqs)
            rows = [decode(cast(Any, None), tuple(record)) for record in records]
        return ok, [row for row in rows if row is not None]

    async def listen(self, notified: Callable[[], None]) -> bool:
        """Call ``notified`` whenever a foreign submit commits (``pgwriter``); ``False`` if
        the listening connection could not be opened (the heartbeat's read covers it).
        Opens the connection again if it was lost; a no-op while it is open."""
        conn = self._listen_conn
        if conn is not None and not conn.is_closed():
            return True
        try:
            conn = await _connect(self.url)
            await conn.add_listener(pgschema.INBOX_CHANNEL, lambda *_: notified())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        self._listen_conn = conn
        return True


async def _connect(url: str) -> Any:
    return await asyncpg.connect(
        url,
        server_settings={"synchronous_commit": "on", "application_name": "asynctask-cluster"},
    )
