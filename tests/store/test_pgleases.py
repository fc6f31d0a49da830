"""``PgLeases`` against the session's private cluster (``tests/pgcluster.py``).

* The contract: random writes, and planners run on random interleavings, performed both on
  ``LeaseTable`` (the reference, ``core/leases.py``) and on PostgreSQL; every answer and the
  whole table agree after every step.
* Races: two connections taking one partition at once, and a take racing a renewal: exactly
  one wins.
* Fencing: a write after the lease is lost commits nothing, and a fenced transaction and a
  take of its partition are ordered by the row lock either way round.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from asynctask.core.leases import (
    FREE,
    Holdings,
    Lease,
    LeaseSettings,
    LeaseTable,
    Leave,
    Release,
    Renew,
    Take,
    Write,
    held,
    leave,
    plan,
)
from asynctask.store import StoreError
from asynctask.store.pgleases import (
    ENSURE_ROW,
    LOCK_FOR_TAKE,
    TAKE,
    PgLeases,
    fence,
    still_held,
)
from asynctask.store.postgres import PostgresStore
from tests import pgcluster

P = 4
NODES = ("a", "b", "c")
LEASE = 10.0


@pytest.fixture
async def url(tmp_path: Path) -> str:
    """A schema of this test's own, migrated by the store (the one owner of migrations)."""
    url = await pgcluster.url_for(tmp_path)
    store = await PostgresStore.open(url)
    await store.close()
    return url


@pytest.fixture
async def admin(url: str) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(url)
    yield conn
    await conn.close()


@pytest.fixture
async def nodes(url: str) -> AsyncIterator[dict[str, PgLeases]]:
    opened = {me: await PgLeases.open(url, me, pid=1, host="here") for me in NODES}
    yield opened
    for leases in opened.values():
        await leases.close()


async def _state(admin: Any) -> tuple[dict[int, Lease], dict[str, float]]:
    rows = await admin.fetch("SELECT partition, owner, epoch, expires_at FROM partitions")
    table = {row[0]: Lease(row[1], row[2], row[3]) for row in rows}
    beats = await admin.fetch("SELECT node, heartbeat_at FROM nodes")
    return {p: table.get(p, FREE) for p in range(P)}, {row[0]: row[1] for row in beats}


def _ref_state(ref: LeaseTable) -> tuple[dict[int, Lease], dict[str, float]]:
    return {p: ref.row(p) for p in range(P)}, dict(ref.nodes)


# -- the contract: the same writes on LeaseTable and on PostgreSQL ---------------------------


def _random_write(rng: random.Random, ref: LeaseTable, now: float) -> Write:
    """A write near the edges the conditions decide on: epochs off by one, expiries equal to
    the decision time (times on a half-second grid), stale decision times, foreign owners."""

    def epoch_near(p: int) -> int:
        return max(0, ref.row(p).epoch + rng.choice((0, 0, 0, -1, 1)))

    def when() -> float:
        return now - rng.choice((0.0, 0.0, 0.5, 5.0, 10.0, 12.0))

    def some_leases() -> tuple[tuple[int, int], ...]:
        parts = rng.sample(range(P), rng.randint(0, P))
        return tuple((p, epoch_near(p)) for p in sorted(parts))

    kind = rng.choice(("take", "take", "take", "renew", "renew", "release", "leave"))
    if kind == "take":
        p = rng.randrange(P)
        read = epoch_near(p)
        as_of = when()
        return Take(p, read, read + rng.choice((1, 1, 1, 2)), as_of, as_of + LEASE)
    if kind == "renew":
        at = when()
        return Renew(some_leases(), at, at + rng.choice((LEASE, LEASE, 2.0)))
    if kind == "release":
        p = rng.randrange(P)
        return Release(p, epoch_near(p))
    return Leave(some_leases())


@pytest.mark.parametrize("seed", range(6))
async def test_random_writes_agree_with_the_reference_step_by_step(
    seed: int, nodes: dict[str, PgLeases], admin: Any
) -> None:
    rng = random.Random(seed)
    ref = LeaseTable()
    now = 1000.0
    for step in range(120):
        now += rng.choice((0.0, 0.5, 1.0, 2.5, 5.0))
        me = rng.choice(NODES)
        write = _random_write(rng, ref, now)
        expected = ref.write(me, write)
        got = await nodes[me].write(write)
        assert got == expected, (step, me, write)
        assert await _state(admin) == _ref_state(ref), (step, me, write)


async def test_planners_on_random_interleavings_agree_with_the_reference(
    nodes: dict[str, PgLeases], admin: Any
) -> None:
    """Real plans on stale reads, delayed writes and pauses: the same answers from both, and
    never two holders of one partition."""
    settings = LeaseSettings(partitions=P, lease=LEASE, heartbeat=LEASE / 3, margin=1.0, drain=2.0)
    rng = random.Random(7)
    ref = LeaseTable()
    holdings = {me: Holdings(me) for me in NODES}
    views: dict[str, tuple[dict[int, Lease], dict[str, float]]] = {me: ({}, {}) for me in NODES}
    pending: list[tuple[str, Write]] = []
    outcomes: Counter[tuple[str, bool]] = Counter()
    now = 1000.0
    for step in range(300):
        now += rng.choice((0.25, 0.5, 1.0, 3.0))
        me = rng.choice(NODES)
        mine = holdings[me]
        if rng.random() < 0.6:
            views[me] = await nodes[me].read()
            read_table, read_beats = views[me]
            assert ({p: read_table.get(p, FREE) for p in range(P)}, read_beats) == _ref_state(
                ref
            ), step
        table, beats = views[me]
        busy = {p for p in mine.draining if rng.random() < 0.5}
        for action in plan(table, beats, mine, busy, now, settings):
            mine.begin(action, now)
            if isinstance(action, Take | Renew | Release | Leave):
                pending.append((me, action))
        rng.shuffle(pending)
        keep = rng.randint(0, min(2, len(pending)))  # delayed: performed on a later step
        for who, write in pending[keep:]:
            expected = ref.write(who, write)
            got = await nodes[who].write(write)
            assert got == expected, (step, who, write)
            holdings[who].settle(write, got)
            outcomes[type(write).__name__, all(row is not None for row in got.values())] += 1
        del pending[keep:]
        assert await _state(admin) == _ref_state(ref), step
        holders: dict[int, list[str]] = {}
        for who, h in holdings.items():
            for p, epoch in held(h, now, settings).items():
                holders.setdefault(p, []).append(who)
                assert (ref.row(p).owner, ref.row(p).epoch) == (who, epoch), (step, who, p)
        assert all(len(names) == 1 for names in holders.values()), (step, holders)
    # The delayed writes land, then everyone leaves cleanly: no heartbeat is left, and every
    # partition is free but those whose lease lapsed by its holder's clock (left to expire).
    for who, write in pending:
        got = await nodes[who].write(write)
        assert got == ref.write(who, write)
        holdings[who].settle(write, got)
    for me in NODES:
        write = leave(holdings[me], now, settings)
        assert await nodes[me].write(write) == ref.write(me, write)
    table, beats = await _state(admin)
    assert beats == {}
    assert all(row.owner is None or now >= row.expires_at - 1.0 for row in table.values())
    assert await _state(admin) == _ref_state(ref)
    # The run reached the cases that matter: takes won and refused (stale views), handovers
    # released, renewals refused (a lease lost while a renewal was delayed).
    wanted = [("Take", True), ("Take", False), ("Release", True), ("Renew", False)]
    assert all(outcomes[case] > 0 for case in wanted), outcomes


async def test_the_heartbeat_row_carries_what_asynctask_nodes_shows(url: str) -> None:
    leases = await PgLeases.open(url, "n1", pid=4242, host="box", started_at=990.0)
    try:
        await leases.write(Take(3, 0, 1, 1000.0, 1010.0))
        await leases.write(Renew(((3, 1),), 1001.0, 1011.0), running=5)
        await leases.write(Renew(((3, 1),), 1000.5, 1010.5), running=6)  # late: never moves back
        (row,) = await leases.nodes(1002.0, LEASE)
        assert (row.node, row.heartbeat_at, row.pid, row.host, row.started_at) == (
            "n1", 1001.0, 4242, "box", 990.0,
        )  # fmt: skip
        assert (row.running, row.partitions) == (5, (3,))  # the late heartbeat's figure lost
        assert await leases.nodes(1011.0, LEASE) == []  # the heartbeat is a lease old: not live
        assert (await leases.read())[0][3] == Lease("n1", 1, 1011.0)
    finally:
        await leases.close()


async def test_nodes_may_be_read_while_the_loop_writes_and_by_several_requests_at_once(
    url: str,
) -> None:
    """``asynctask nodes`` calls ``nodes`` from requests while the lease loop is inside a write:
    on one connection asyncpg would refuse one of them ("another operation is in progress")."""
    leases = await PgLeases.open(url, "n1", pid=1, host="box")
    try:
        await leases.write(Renew((), 1000.0, 1010.0), running=2)
        conn = leases._conn

        async def writing() -> None:  # the loop, mid-transaction on its connection
            async with conn.transaction():
                await conn.execute("SELECT pg_sleep(0.3)")

        loop_write = asyncio.create_task(writing())
        await asyncio.sleep(0.05)
        reads = await asyncio.gather(*(leases.nodes(1001.0, LEASE) for _ in range(3)))
        assert not loop_write.done()  # the reads did not wait for the write
        await loop_write
        assert [[(row.node, row.running) for row in read] for read in reads] == [[("n1", 2)]] * 3
        await leases.write(Renew((), 1002.0, 1012.0), running=0)  # the loop's connection is fine
    finally:
        await leases.close()
    assert leases._reader is None


async def test_opening_refuses_a_schema_without_the_lease_table(tmp_path: Path) -> None:
    url = await pgcluster.url_for(tmp_path)  # never opened by the store: not migrated
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)")
        await conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    finally:
        await conn.close()
    with pytest.raises(StoreError, match="without the lease table"):
        await PgLeases.open(url, "a")


# -- races ------------------------------------------------------------------------------------


async def _blocked(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` is still waiting a moment after it started (on a row lock)."""
    await asyncio.sleep(0.2)
    return not task.done()


async def test_two_connections_racing_for_one_partition_exactly_one_wins(
    nodes: dict[str, PgLeases], admin: Any
) -> None:
    a, b = nodes["a"], nodes["b"]
    for p in range(P):
        # Held at a row lock so that both takes are in flight together, then let go.
        await admin.execute(ENSURE_ROW, p)
        async with admin.transaction():
            await admin.execute(LOCK_FOR_TAKE, p)
            racing = [asyncio.create_task(x.take(Take(p, 0, 1, 1000.0, 1010.0))) for x in (a, b)]
            assert await _blocked(racing[0])
            assert await _blocked(racing[1])
        answers = [(await task)[p] for task in racing]
        winners = [x.me for x, got in zip((a, b), answers, strict=True) if got is not None]
        assert len(winners) == 1
        assert (await a.read())[0][p] == Lease(winners[0], 1, 1010.0)
    # And unsynchronised, many times over: never two winners of one epoch.
    for round_ in range(20):
        p = round_ % P
        epoch = (await a.read())[0][p].epoch
        take = Take(p, epoch, epoch + 1, 2000.0 + 20 * round_, 2010.0 + 20 * round_)
        got = await asyncio.gather(*(nodes[me].take(take) for me in NODES))
        assert sum(answer[p] is not None for answer in got) == 1
    # Partitions never taken: the takes race to insert the free row first, too.
    for p in range(10, 20):
        take = Take(p, 0, 1, 1000.0, 1010.0)
        got = await asyncio.gather(*(nodes[me].take(take) for me in NODES))
        assert sum(answer[p] is not None for answer in got) == 1


async def test_a_take_racing_a_renewal_of_an_expired_lease_one_of_them_wins(
    nodes: dict[str, PgLeases],
) -> None:
    a, b = nodes["a"], nodes["b"]
    for round_ in range(10):
        p = round_ % P
        start = 1000.0 + 100 * round_
        epoch = (await a.read())[0].get(p, FREE).epoch
        assert (await a.take(Take(p, epoch, epoch + 1, start, start + LEASE)))[p] is not None
        renewed, taken = await asyncio.gather(
            a.renew(Renew(((p, epoch + 1),), start + 9.0, start + 19.0)),  # late: lands anyway
            b.take(Take(p, epoch + 1, epoch + 2, start + LEASE, start + 20.0)),  # expired for b
        )
        assert (renewed[p] is None) != (taken[p] is None), round_
        await a.leave(Leave(((p, epoch + 1),)))
        await b.leave(Leave(((p, epoch + 2),)))


# -- fencing ----------------------------------------------------------------------------------

FENCED_INSERT = "INSERT INTO work (partition, note) SELECT $1, $5 WHERE " + fence(
    "$1", "$2", "$3", "$4"
)


@pytest.fixture
async def work(admin: Any) -> Any:
    """A stand-in for the task table: one row per write, by partition."""
    await admin.execute("CREATE TABLE work (partition integer NOT NULL, note text NOT NULL)")
    return admin


async def test_a_write_after_losing_the_lease_commits_nothing(
    nodes: dict[str, PgLeases], work: Any
) -> None:
    a, b = nodes["a"], nodes["b"]
    assert (await a.take(Take(0, 0, 1, 1000.0, 1010.0)))[0] is not None
    conn = a._conn
    assert await conn.execute(FENCED_INSERT, 0, 1, "a", 1005.0, "held") == "INSERT 0 1"
    # a pauses past its lease; b takes the partition at epoch 2.
    assert (await b.take(Take(0, 1, 2, 1010.0, 1020.0)))[0] == Lease("b", 2, 1020.0)
    # a resumes with its old belief (and its clock as it was): nothing commits.
    assert await conn.execute(FENCED_INSERT, 0, 1, "a", 1005.0, "lost") == "INSERT 0 0"
    update = "UPDATE work SET note = 'lost' WHERE partition = $1 AND " + fence(
        "$1", "$2", "$3", "$4"
    )
    assert await conn.execute(update, 0, 1, "a", 1005.0) == "UPDATE 0"
    async with conn.transaction():
        assert await still_held(conn, "a", {0: 1}, 1005.0) == set()
    async with b._conn.transaction():
        assert await still_held(b._conn, "b", {0: 2}, 1011.0) == {0}
        assert await still_held(b._conn, "b", {0: 2}, 1020.0) == set()  # expired by then
    assert [tuple(r) for r in await work.fetch("SELECT partition, note FROM work")] == [(0, "held")]
    with pytest.raises(StoreError, match="inside the transaction"):
        await still_held(conn, "a", {0: 1}, 1005.0)


async def test_a_take_waits_for_a_fenced_write_in_flight_and_then_sees_it(
    nodes: dict[str, PgLeases], work: Any, url: str
) -> None:
    a, b = nodes["a"], nodes["b"]
    await a.take(Take(0, 0, 1, 1000.0, 1010.0))
    writer = await asyncpg.connect(url)  # a's task writer: a connection of its own
    try:
        async with writer.transaction():
            assert await still_held(writer, "a", {0: 1}, 1004.0) == {0}
            await writer.execute("INSERT INTO work VALUES (0, 'in flight')")
            # a's renewal does not wait for its fenced write (FOR KEY SHARE vs UPDATE).
            renewed = await asyncio.wait_for(a.renew(Renew(((0, 1),), 1005.0, 1015.0)), 5)
            assert renewed == {0: Lease("a", 1, 1015.0)}
            taking = asyncio.create_task(b.take(Take(0, 1, 2, 1015.0, 1025.0)))
            assert await _blocked(taking)  # the take waits for the fenced transaction
        assert (await taking)[0] == Lease("b", 2, 1025.0)
    finally:
        await writer.close()
    assert await work.fetchval("SELECT note FROM work") == "in flight"


async def test_a_fenced_write_waiting_on_a_take_in_flight_commits_nothing(
    nodes: dict[str, PgLeases], work: Any, url: str
) -> None:
    a = nodes["a"]
    await a.take(Take(0, 0, 1, 1000.0, 1010.0))
    taker = await asyncpg.connect(url)
    try:
        async with taker.transaction():  # b's take, held open after its lock and update
            await taker.execute(ENSURE_ROW, 0)
            await taker.execute(LOCK_FOR_TAKE, 0)
            assert await taker.fetchrow(TAKE, 0, "b", 1, 2, 1010.0, 1020.0) is not None
            writing = asyncio.create_task(a._conn.execute(FENCED_INSERT, 0, 1, "a", 1009.0, "late"))
            assert await _blocked(writing)
        assert await writing == "INSERT 0 0"
    finally:
        await taker.close()
    assert await work.fetchval("SELECT count(*) FROM work") == 0


async def test_a_renewal_never_shortens_and_a_read_is_one_snapshot(
    nodes: dict[str, PgLeases],
) -> None:
    a = nodes["a"]
    await a.take(Take(1, 0, 1, 1000.0, 1010.0))
    assert (await a.renew(Renew(((1, 1),), 1005.0, 1015.0)))[1] == Lease("a", 1, 1015.0)
    assert (await a.renew(Renew(((1, 1),), 1003.0, 1013.0)))[1] == Lease("a", 1, 1015.0)
    table, beats = await a.read()
    assert (table, beats) == ({1: Lease("a", 1, 1015.0)}, {"a": 1005.0})
    assert (await a.release(Release(1, 1)))[1] == Lease(None, 1, 1015.0)
    assert (await a.release(Release(1, 1)))[1] is None  # no longer the owner


async def test_a_lost_connection_fails_one_call_and_the_next_connects_again(
    nodes: dict[str, PgLeases], admin: Any
) -> None:
    a = nodes["a"]
    await a.renew(Renew((), 1000.0, 1010.0))
    pid = await a._conn.fetchval("SELECT pg_backend_pid()")
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    await asyncio.sleep(0.1)
    # The call that finds the connection gone may fail (if the driver had not noticed yet);
    # the one after it connects again.
    failed: list[str] = []
    for at in (1001.0, 1002.0):
        try:
            assert await a.renew(Renew((), at, at + LEASE)) == {}
            break
        except StoreError as error:
            failed.append(str(error))
    assert len(failed) <= 1, failed
    assert all("renewing the leases failed" in message for message in failed)
    assert (await a.read())[1]["a"] in (1001.0, 1002.0)
    assert await a._conn.fetchval("SELECT pg_backend_pid()") != pid
