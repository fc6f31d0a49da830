"""``PgLeases``: the lease table of scale-out in PostgreSQL, one transaction per planner write.

``asynctask.core.leases`` decides; this module performs. Each write of the planner (``Take``,
``Renew``, ``Release``, ``Leave``) is one transaction here with exactly the compare-and-set of
``LeaseTable``, the in-memory reference whose docstrings give the ``WHERE`` clauses, and
answers what ``Holdings.settle`` takes: for each partition the write names, the row after the
write, or None where the condition refused it. ``HandOver`` and ``Stop`` write nothing (the
table of docs/scale-out.md), so there is no method for them. ``tests/store/test_pgleases.py``
runs the same random writes on both and checks they agree step by step.

Times are the caller's clock, never the database's: epoch seconds (``time.time()``), passed
in as the actions carry them (``Take.as_of`` and ``expires_at``, ``Renew.at`` and
``expires_at``). The planner compares ``expires_at`` and heartbeats with its own ``now``, and
the safety proof in ``core/leases.py`` bounds the offset of the clocks that write and compare
them (``margin >= 2 * skew``). ``now()`` in SQL would add the database's clock as a third one
the margin must cover, and would judge a delayed take by its commit time instead of its
decision time (``as_of``), which the proof relies on only ever making a take harder.

Why a connection of its own, not the group-commit writer's: a renewal must not wait behind a
batch of task writes, or a slow batch would cost the lease. Why ``synchronous_commit = on``
whatever the store's durability: a take that is acknowledged but lost in a server crash would
let another node take the same partition at the same epoch, which fencing cannot tell apart.

Fencing (``fence``, ``still_held``): a task write of a partition commits only while this node
is the owner at the epoch it holds. The check locks the partition's row ``FOR KEY SHARE``,
and ``take`` locks it ``FOR UPDATE`` before it changes the owner: those two conflict, so a
fenced transaction and a take of its partition are ordered. If the fence locked first, the
take waits for the task write to commit, and the taker's load sees it. If the take locked
first, the fence waits and then re-reads the row at its new epoch (READ COMMITTED re-checks a
locked row's condition on its newest version) and the write does nothing. ``FOR KEY SHARE``,
not ``FOR SHARE``: it does not conflict with the holder's own renewal (an ``UPDATE`` of a
non-key column), so a renewal does not wait for task writes. (It does queue behind a take of
the same row that waits for them; that take is of an expired lease, and the renewal is then
refused anyway.) No cycle of waits is possible: a take locks one row, a fenced transaction
waits for nothing a renewal holds, and ``still_held`` locks its rows in partition order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from asynctask.core.leases import Lease, Leave, Release, Renew, Take, Write
from asynctask.store import pgschema
from asynctask.store.errors import StoreError
from asynctask.store.pgconn import reconnecting
from asynctask.store.pgerrors import map_errors

#: The schema version that has the ``partitions`` and ``nodes`` tables.
LEASES_VERSION: Final = 2

_ROW: Final = "partition, owner, epoch, expires_at"

#: A take of a partition never taken has no row to update: one at epoch 0, free, as
#: ``core.leases.FREE`` reads a missing row. Inserting it changes nothing the planner sees.
ENSURE_ROW: Final = (
    "INSERT INTO partitions (partition, owner, epoch, expires_at) "
    "VALUES ($1, NULL, 0, '-Infinity') ON CONFLICT (partition) DO NOTHING"
)
#: The lock that orders a take after any fenced write in flight (``fence``).
LOCK_FOR_TAKE: Final = "SELECT 1 FROM partitions WHERE partition = $1 FOR UPDATE"
#: ``LeaseTable._take``: $1 partition, $2 me, $3 read epoch, $4 new epoch, $5 as_of, $6 expiry.
TAKE: Final = (
    "UPDATE partitions SET owner = $2, epoch = $4, expires_at = $6 "
    "WHERE partition = $1 AND epoch = $3 AND epoch + 1 = $4 "
    "AND (owner IS NULL OR expires_at <= $5) "
    f"RETURNING {_ROW}"
)
#: The heartbeat half of ``Renew``: $1 node, $2 at, $3 pid, $4 host, $5 started_at, $6 running.
#: A late heartbeat changes nothing (``GREATEST``, as for the leases, and the figures of the
#: newer one stay with it).
HEARTBEAT: Final = (
    "INSERT INTO nodes (node, heartbeat_at, pid, host, started_at, running) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (node) DO UPDATE SET "
    "heartbeat_at = excluded.heartbeat_at, pid = excluded.pid, host = excluded.host, "
    "started_at = excluded.started_at, running = excluded.running "
    "WHERE nodes.heartbeat_at <= excluded.heartbeat_at"
)
#: ``LeaseTable._renew`` for every lease at once: $1 me, $2 partitions, $3 epochs, $4 expiry.
RENEW: Final = (
    "UPDATE partitions SET expires_at = GREATEST(partitions.expires_at, $4) "
    "FROM unnest($2::integer[], $3::bigint[]) AS held(partition, epoch) "
    "WHERE partitions.partition = held.partition AND partitions.epoch = held.epoch "
    "AND partitions.owner = $1 "
    "RETURNING partitions.partition, partitions.owner, partitions.epoch, partitions.expires_at"
)
#: ``LeaseTable._release`` for any number of leases: $1 me, $2 partitions, $3 epochs. The
#: epoch and the expiry stay: the next take raises the epoch.
RELEASE: Final = (
    "UPDATE partitions SET owner = NULL "
    "FROM unnest($2::integer[], $3::bigint[]) AS held(partition, epoch) "
    "WHERE partitions.partition = held.partition AND partitions.epoch = held.epoch "
    "AND partitions.owner = $1 "
    "RETURNING partitions.partition, partitions.owner, partitions.epoch, partitions.expires_at"
)
#: The heartbeat half of ``Leave``: a leaver stops counting as live at once.
FORGET_NODE: Final = "DELETE FROM nodes WHERE node = $1"
#: Heartbeat rows of nodes gone long ago (a ``kill -9`` leaves its row): $1 the cut-off, $2
#: now. A row whose node still owns an unexpired lease stays, whatever its age.
PRUNE_NODES: Final = (
    "DELETE FROM nodes WHERE heartbeat_at < $1 AND NOT EXISTS (SELECT 1 FROM partitions "
    "WHERE partitions.owner = nodes.node AND partitions.expires_at > $2)"
)
SELECT_OWNER: Final = (
    "SELECT owner FROM partitions WHERE partition = $1 AND owner IS NOT NULL AND expires_at > $2"
)
SELECT_TABLE: Final = f"SELECT {_ROW} FROM partitions ORDER BY partition"
SELECT_HEARTBEATS: Final = "SELECT node, heartbeat_at FROM nodes ORDER BY node"
SELECT_NODES: Final = (
    "SELECT n.node, n.heartbeat_at, n.pid, n.host, n.started_at, n.running, "
    "coalesce(array_agg(p.partition ORDER BY p.partition) "
    "FILTER (WHERE p.partition IS NOT NULL), '{}') "
    "FROM nodes n LEFT JOIN partitions p ON p.owner = n.node AND p.expires_at > $1 "
    "GROUP BY n.node ORDER BY n.node"
)
#: ``still_held``: $1 me, $2 partitions, $3 epochs, $4 now. Sorted, so that two transactions
#: locking several rows lock them in one order.
STILL_HELD: Final = (
    "SELECT partitions.partition FROM partitions "
    "JOIN unnest($2::integer[], $3::bigint[]) AS held(partition, epoch) "
    "ON partitions.partition = held.partition AND partitions.epoch = held.epoch "
    "WHERE partitions.owner = $1 AND partitions.expires_at > $4 "
    "ORDER BY partitions.partition FOR KEY SHARE OF partitions"
)


def fence(partition: str, epoch: str, owner: str, now: str) -> str:
    """A SQL condition for a task write's ``WHERE``: true only while ``owner`` holds
    ``partition`` at ``epoch`` with its lease not past ``now``; each argument is SQL (a
    parameter such as ``$3``, or a column of the statement).

    ``INSERT INTO tasks ... SELECT ... WHERE <fence>``, ``UPDATE tasks SET ... WHERE seq = $1
    AND <fence>``: the write then does nothing once the lease is lost (the module docstring
    says how the row lock orders it against a take). ``now`` is the caller's clock (plus
    ``margin`` for ``held``'s exact rule); the epoch is what fences, the expiry only stops a
    paused holder sooner, before anyone has taken the partition."""
    return (
        f"EXISTS (SELECT 1 FROM partitions WHERE partitions.partition = {partition} "
        f"AND partitions.owner = {owner} AND partitions.epoch = {epoch} "
        f"AND partitions.expires_at > {now} FOR KEY SHARE OF partitions)"
    )


async def still_held(conn: Any, me: str, held: Mapping[int, int], now: float) -> set[int]:
    """The partitions of ``held`` (partition: epoch) that ``me`` still holds, locked until the
    caller's transaction ends: call it first inside the transaction of a batch of task writes,
    and drop (or fail) the writes of the partitions it leaves out. ``conn`` must be in a
    transaction, or the lock ends with this statement."""
    if not held:
        return set()
    if not conn.is_in_transaction():
        raise StoreError("still_held must run inside the transaction of the writes it fences")
    parts = sorted(held)
    with map_errors("checking the leases of a write"):
        rows = await conn.fetch(STILL_HELD, me, parts, [held[p] for p in parts], now)
    return {row[0] for row in rows}


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A heartbeat row as ``asynctask nodes`` will show it, with the partitions it holds."""

    node: str
    heartbeat_at: float
    pid: int | None
    host: str | None
    started_at: float | None
    running: int
    partitions: tuple[int, ...]


class PgLeases:
    """The ``partitions`` and ``nodes`` tables for one node. Open with ``PgLeases.open``.

    ``me`` is this node's ID; ``pid``, ``host`` and ``started_at`` go into its heartbeat row
    for ``asynctask nodes``. ``read`` and the writes are not for concurrent use from several
    tasks: the planner's loop performs its actions in order, on one connection. ``nodes`` is:
    requests call it while the loop writes, so it reads on a second connection of its own
    (opened on its first call; the calls take turns on it), and a renewal never waits behind
    a request. A lost connection is dropped when an error says so (``pgerrors.is_fatal``) and
    the next call connects again, so the loop only has to carry on: a write that raised
    settles nothing (``write``)."""

    def __init__(
        self,
        url: str,
        conn: Any,
        me: str,
        *,
        pid: int | None,
        host: str | None,
        started_at: float | None,
    ) -> None:
        """Use ``PgLeases.open``; this only wraps an open connection."""
        self.url = url
        self.me = me
        self.pid = pid
        self.host = host
        self.started_at = started_at
        self._conn: Any = conn
        self._reader: Any = None  # ``nodes``' own connection
        self._reading = asyncio.Lock()  # one ``nodes`` query at a time on it

    @classmethod
    async def open(
        cls,
        url: str,
        me: str,
        *,
        pid: int | None = None,
        host: str | None = None,
        started_at: float | None = None,
    ) -> PgLeases:
        """Connect to the store's database; the store has migrated it (``PostgresStore.open``
        runs the migrations: one owner of the schema), so an older schema is refused here."""
        conn: Any = None
        try:
            with map_errors("opening the lease table"):
                conn = await _connect(url)
                value = await conn.fetchval(pgschema.READ_VERSION)
            version = int(value) if value is not None else 0
            if version < LEASES_VERSION:
                raise StoreError(
                    f"the database has schema version {version}, without the lease table "
                    f"(version {LEASES_VERSION}); open the store first, which migrates it"
                )
        except BaseException:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            raise
        return cls(url, conn, me, pid=pid, host=host, started_at=started_at)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.terminate()  # it only reads: nothing to finish, no goodbye to wait for
        conn, self._conn = self._conn, None
        if conn is not None:
            with map_errors("closing the lease table"):
                await conn.close()

    @contextlib.asynccontextmanager
    async def _using(self, doing: str, *, reader: bool = False) -> AsyncIterator[Any]:
        """The connection (``reader``: ``nodes``' own), opened again if the last one was
        lost; errors as ``StoreError`` (``pgconn.reconnecting``)."""
        name = "_reader" if reader else "_conn"
        async with reconnecting(self, name, lambda: _connect(self.url), doing) as conn:
            yield conn

    # -- reads --------------------------------------------------------------------------------

    async def read(self) -> tuple[dict[int, Lease], dict[str, float]]:
        """The table and the heartbeats for ``plan``, from one snapshot (a heartbeat and its
        renewals commit together, so the planner never sees one without the other)."""
        async with (
            self._using("reading the lease table") as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await conn.fetch(SELECT_TABLE)
            beats = await conn.fetch(SELECT_HEARTBEATS)
        return {row[0]: Lease(row[1], row[2], row[3]) for row in rows}, {
            row[0]: row[1] for row in beats
        }

    async def nodes(self, now: float, lease: float) -> list[NodeRow]:
        """The nodes whose heartbeat is younger than ``lease`` (``core.leases.live_nodes``),
        each with the partitions whose lease it holds by ``now``. Safe to call while the
        lease loop writes: on the reader connection (the class docstring)."""
        async with self._reading, self._using("reading the nodes", reader=True) as conn:
            rows = await conn.fetch(SELECT_NODES, now)
        return [
            NodeRow(row[0], row[1], row[2], row[3], row[4], row[5], tuple(row[6]))
            for row in rows
            if now - row[1] < lease
        ]

    async def owner(self, partition: int, now: float) -> str | None:
        """Who holds ``partition`` past ``now`` by the table, if anyone. On the reader
        connection, as ``nodes``: a request asks it while the lease loop writes."""
        async with self._reading, self._using("reading a lease", reader=True) as conn:
            owner = await conn.fetchval(SELECT_OWNER, partition, now)
        return None if owner is None else str(owner)

    async def prune(self, before: float, now: float) -> int:
        """Delete the heartbeat rows older than ``before`` of nodes that hold nothing by
        ``now``; how many. Harmless to the planner either way (a stale heartbeat is not
        live), but ``asynctask nodes`` and the table stay to the point."""
        async with self._using("pruning the nodes") as conn:
            status = await conn.execute(PRUNE_NODES, before, now)
        return int(status.split()[-1])

    # -- writes: one transaction each ---------------------------------------------------------

    async def write(self, write: Write, running: int = 0) -> dict[int, Lease | None]:
        """Perform ``write``; what ``Holdings.settle(write, ...)`` takes. ``running`` (attempts
        running here) goes into the heartbeat of a ``Renew``.

        On ``StoreError`` the outcome is unknown (the commit may have landed): settle nothing.
        That is safe by the core's rules: a take whose answer was lost grants nothing, and its
        row becomes takeable when it expires; a renewal whose answer was lost leaves the
        grant at its old expiry, so the node stops in time."""
        match write:
            case Take():
                return await self.take(write)
            case Renew():
                return await self.renew(write, running)
            case Release():
                return await self.release(write)
            case Leave():
                return await self.leave(write)

    async def take(self, take: Take) -> dict[int, Lease | None]:
        """``LeaseTable._take``: the row is created free if missing, locked, then set."""
        args = (take.partition, self.me, take.read_epoch, take.epoch, take.as_of, take.expires_at)
        async with self._using(f"taking partition {take.partition}") as conn, conn.transaction():
            await conn.execute(ENSURE_ROW, take.partition)
            await conn.execute(LOCK_FOR_TAKE, take.partition)
            row = await conn.fetchrow(TAKE, *args)
        return {take.partition: _lease(row) if row is not None else None}

    async def renew(self, renew: Renew, running: int = 0) -> dict[int, Lease | None]:
        """``LeaseTable.write(Renew)``: the heartbeat and every renewal in one transaction."""
        parts, epochs = _split(renew.leases)
        async with self._using("renewing the leases") as conn, conn.transaction():
            await conn.execute(
                HEARTBEAT, self.me, renew.at, self.pid, self.host, self.started_at, running
            )
            rows = await conn.fetch(RENEW, self.me, parts, epochs, renew.expires_at)
        return _answer(renew.leases, rows)

    async def release(self, release: Release) -> dict[int, Lease | None]:
        """``LeaseTable._release``: free the partition if still held at this epoch."""
        leases = ((release.partition, release.epoch),)
        parts, epochs = _split(leases)
        async with self._using(f"releasing partition {release.partition}") as conn:
            rows = await conn.fetch(RELEASE, self.me, parts, epochs)
        return _answer(leases, rows)

    async def leave(self, leave: Leave) -> dict[int, Lease | None]:
        """``LeaseTable.write(Leave)``: every release and the heartbeat's deletion at once."""
        parts, epochs = _split(leave.leases)
        async with self._using("leaving the cluster") as conn, conn.transaction():
            rows = await conn.fetch(RELEASE, self.me, parts, epochs)
            await conn.execute(FORGET_NODE, self.me)
        return _answer(leave.leases, rows)


async def _connect(url: str) -> Any:
    return await asyncpg.connect(
        url,
        server_settings={"synchronous_commit": "on", "application_name": "asynctask-leases"},
    )


def _lease(row: Any) -> Lease:
    return Lease(row[1], int(row[2]), float(row[3]))


def _split(leases: tuple[tuple[int, int], ...]) -> tuple[list[int], list[int]]:
    return [p for p, _ in leases], [e for _, e in leases]


def _answer(leases: tuple[tuple[int, int], ...], rows: list[Any]) -> dict[int, Lease | None]:
    """Every partition the write named: its row after the write, None where refused."""
    done = {row[0]: _lease(row) for row in rows}
    return {partition: done.get(partition) for partition, _ in leases}
