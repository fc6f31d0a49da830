"""The store contract: what every ``TaskStore`` promises, run against each one in ``conftest``.

Only the ``TaskStore`` interface is used here; SQLite details live in ``test_sqlite.py``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import pytest

from asynctask.errors import AsynctaskError
from asynctask.model import TaskState
from asynctask.store import (
    ClearPause,
    DeleteTask,
    InsertTask,
    Op,
    PutCode,
    ReplaceTask,
    SetPause,
    StoreError,
    TaskFilter,
    TaskRow,
    TaskStore,
    UpdateTask,
)
from tests.store.conftest import Opener
from tests.store.helpers import (
    ALL_STATES,
    LIVE,
    TRICKY_IDS,
    expected,
    make_row,
    page_key,
    seeded_rows,
)

S = TaskState
Seeded = tuple[TaskStore, list[TaskRow]]


async def put_all(store: TaskStore, ops: Sequence[Op]) -> None:
    await asyncio.gather(*(store.put(op) for op in ops))


def seqs(rows: list[TaskRow]) -> list[int]:
    return [row.seq for row in rows]


# -- round trips -------------------------------------------------------------------------------


async def test_insert_then_get_round_trips_every_field(store: TaskStore) -> None:
    full = make_row(
        1,
        tenant="acme",
        id="01HZX-full",
        function="pkg.mod:fn",
        queue="exclusive",
        priority=9,
        state=S.RUNNING,
        payload=bytes(range(256)),
        options={"retries": 2, "timeout": 1.5, "on_success": "a:b", "blob": b"\x00\xff", "n": None},
        labels={"env": "prod", "k.with.dots": "v", 'q"uote': "é", "": ""},
        attempts=3,
        result=b"\x00result",
        error={"kind": "exception", "type": "ValueError", "message": "bad ☃", "traceback": ""},
        created_at=1_700_000_000.123456,
        due_at=1_700_000_100.5,
        started_at=1_700_000_050.25,
        finished_at=1_700_000_060.0,
        errors=[{"attempt": 1, "kind": "timeout", "message": "\udcff", "finished_at": 1.5}],
        held=True,
    )
    bare = make_row(
        2,
        payload=b"",
        options={},
        labels={},
        result=None,
        error=None,
        due_at=None,
        started_at=None,
        finished_at=None,
    )
    empties = make_row(3, result=b"", error={}, options={"nested": {"a": [1, 2]}})
    await put_all(store, [InsertTask(full), InsertTask(bare), InsertTask(empties)])

    assert await store.get("acme", "01HZX-full") == full
    assert await store.get_by_seq(1) == full
    assert await store.get_by_seq(2) == bare
    got = await store.get_by_seq(3)
    assert got == empties
    assert got is not None
    assert got.result == b""  # empty is not None
    assert got.error == {}
    assert type(got.state) is TaskState
    assert isinstance(got.payload, bytes)


async def test_get_misses_and_is_scoped_by_tenant(store: TaskStore) -> None:
    await put_all(
        store,
        [InsertTask(make_row(1, tenant="a", id="x")), InsertTask(make_row(2, tenant="b", id="x"))],
    )
    got_a, got_b = await store.get("a", "x"), await store.get("b", "x")
    assert got_a is not None
    assert got_a.seq == 1
    assert got_b is not None
    assert got_b.seq == 2
    assert await store.get("c", "x") is None
    assert await store.get("a", "y") is None
    assert await store.get_by_seq(99) is None


async def test_get_by_seqs_reads_the_rows_that_exist_in_seq_order(store: TaskStore) -> None:
    rows = [make_row(seq, id=f"t{seq}", options={"retries": 2}) for seq in range(1, 1_203)]
    await put_all(store, [InsertTask(row) for row in rows])
    wanted = [1_202, 3, 700, 9_999, 1, *range(100, 1_100)]  # more than one statement's worth
    got = await store.get_by_seqs(wanted)
    assert [row.seq for row in got] == sorted(set(wanted) - {9_999})
    assert got[0] == rows[0]
    assert got[-1] == rows[-1]
    assert await store.get_by_seqs([]) == []


async def test_max_seq(store: TaskStore) -> None:
    assert await store.max_seq() == 0
    await put_all(store, [InsertTask(make_row(7)), InsertTask(make_row(3))])
    assert await store.max_seq() == 7


async def test_update_sets_every_mutable_column(store: TaskStore) -> None:
    await store.put(InsertTask(make_row(1, state=S.QUEUED)))
    error = {"kind": "timeout", "type": "Timeout", "message": "took 30s", "traceback": "tb"}
    await store.put(
        UpdateTask(
            seq=1,
            state=S.SCHEDULED,
            attempts=2,
            result=b"r",
            error=error,
            started_at=10.0,
            finished_at=11.0,
            due_at=12.0,
        )
    )
    got = await store.get_by_seq(1)
    assert got == make_row(
        1,
        state=S.SCHEDULED,
        attempts=2,
        result=b"r",
        error=error,
        started_at=10.0,
        finished_at=11.0,
        due_at=12.0,
    )
    history = [{"attempt": 1, "kind": "exception", "message": "first"}]
    await store.put(UpdateTask(seq=1, state=S.QUEUED, attempts=2, errors=history, held=True))
    assert await store.get_by_seq(1) == make_row(
        1, state=S.QUEUED, attempts=2, errors=history, held=True
    )
    # and back to None: an update writes every column, including the cleared ones
    await store.put(UpdateTask(seq=1, state=S.QUEUED, attempts=2))
    assert await store.get_by_seq(1) == make_row(1, state=S.QUEUED, attempts=2)


async def test_update_or_delete_of_unknown_seq_changes_nothing(store: TaskStore) -> None:
    await store.put(InsertTask(make_row(1)))
    await store.put(UpdateTask(seq=42, state=S.FAILED, attempts=1))
    await store.put(DeleteTask(43))
    assert await store.get_by_seq(1) == make_row(1)
    assert await store.max_seq() == 1


async def test_delete(store: TaskStore) -> None:
    await put_all(store, [InsertTask(make_row(1)), InsertTask(make_row(2))])
    await store.put(DeleteTask(1))
    assert await store.get_by_seq(1) is None
    assert await store.get("default", "task-000001") is None
    assert await store.get_by_seq(2) == make_row(2)
    # the deleted ID may be stored again
    await store.put(InsertTask(make_row(3, id="task-000001")))
    got = await store.get("default", "task-000001")
    assert got is not None
    assert got.seq == 3


async def test_replace_swaps_the_row_of_an_id(store: TaskStore) -> None:
    old = make_row(1, id="job", state=S.FAILED, attempts=4, error={"kind": "fail"})
    await store.put(InsertTask(old))
    new = make_row(2, id="job", state=S.QUEUED)
    await store.put(ReplaceTask(old_seq=1, row=new))
    assert await store.get("default", "job") == new
    assert await store.get_by_seq(1) is None


async def test_replace_chain_in_one_batch(store: TaskStore) -> None:
    """Re-submitting twice in one batch deletes the row the first replace inserted."""
    await store.put(InsertTask(make_row(1, id="job", state=S.FAILED)))
    await put_all(
        store,
        [
            ReplaceTask(1, make_row(2, id="job")),
            ReplaceTask(2, make_row(3, id="job")),
            ReplaceTask(9, make_row(4, id="other")),
        ],
    )
    assert await store.get_by_seq(1) is None
    assert await store.get_by_seq(2) is None
    got = await store.get("default", "job")
    assert got is not None
    assert got.seq == 3
    assert await store.get_by_seq(4) is not None


async def test_op_order_is_kept_within_a_batch(store: TaskStore) -> None:
    # put without awaiting: all in one transaction, mixing runs of every kind
    ops: list[Op] = [
        InsertTask(make_row(1, id="a")),
        InsertTask(make_row(2, id="b")),
        UpdateTask(seq=1, state=S.RUNNING, attempts=1, started_at=5.0),
        UpdateTask(
            seq=1, state=S.SUCCEEDED, attempts=1, result=b"ok", started_at=5.0, finished_at=6.0
        ),
        DeleteTask(2),
        InsertTask(make_row(3, id="b")),  # b's ID again, after its delete
        UpdateTask(seq=3, state=S.RUNNING, attempts=1, started_at=7.0),
        ReplaceTask(3, make_row(4, id="b")),
        DeleteTask(4),
        InsertTask(make_row(5, id="b", state=S.SCHEDULED, due_at=9.0)),
    ]
    await put_all(store, ops)
    assert await store.get_by_seq(1) == make_row(
        1, id="a", state=S.SUCCEEDED, attempts=1, result=b"ok", started_at=5.0, finished_at=6.0
    )
    assert [await store.get_by_seq(seq) for seq in (2, 3, 4)] == [None, None, None]
    assert await store.get("default", "b") == make_row(5, id="b", state=S.SCHEDULED, due_at=9.0)


# -- group commit ------------------------------------------------------------------------------


async def test_group_commit_batches_concurrent_puts(store: TaskStore) -> None:
    before = store.transactions
    committed: list[int] = []

    async def caller(seq: int) -> None:
        await store.put(InsertTask(make_row(seq)))
        committed.append(seq)

    await asyncio.gather(*(caller(seq) for seq in range(1, 1001)))
    assert sorted(committed) == list(range(1, 1001))
    assert store.transactions - before <= 10
    assert store.ops_committed >= 1000
    assert store.pending == 0
    assert await store.max_seq() == 1000


async def test_puts_while_a_commit_is_in_flight_share_the_next_one(store: TaskStore) -> None:
    """Callers that put again as soon as their commit lands: far fewer commits than puts."""
    before = store.transactions

    async def caller(index: int) -> None:
        for round_ in range(20):
            await store.put(InsertTask(make_row(1 + index + 50 * round_)))

    await asyncio.gather(*(caller(i) for i in range(50)))
    assert store.ops_committed >= 1000
    assert store.transactions - before <= 100  # one per round of 50, give or take


async def test_flush_waits_for_everything_put_so_far(store: TaskStore) -> None:
    await store.flush()  # nothing pending: resolves at once
    futures = [store.put(InsertTask(make_row(seq))) for seq in range(1, 101)]
    await store.flush()
    assert all(future.done() and future.exception() is None for future in futures)
    assert store.pending == 0
    assert await store.max_seq() == 100


async def test_a_failing_batch_fails_all_its_ops_and_applies_none(store: TaskStore) -> None:
    await store.put(InsertTask(make_row(1, id="taken")))
    first = store.put(InsertTask(make_row(2, id="fine-before")))
    await asyncio.sleep(0)  # the writer takes that op: the next ones form a batch of their own
    bad_batch: list[Op] = [
        InsertTask(make_row(3, id="fine")),
        UpdateTask(seq=1, state=S.RUNNING, attempts=1, started_at=1.0),
        DeleteTask(2),
        InsertTask(make_row(4, id="taken")),  # (tenant, id) already stored: the batch fails
        InsertTask(make_row(5, id="fine-too")),
    ]
    futures = [store.put(op) for op in bad_batch]
    flushed = store.flush()
    await first
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(result, StoreError) for result in results), results
    assert all(isinstance(result, AsynctaskError) for result in results)
    assert "(tenant, id)" in str(results[0])
    with pytest.raises(StoreError):
        await flushed

    assert await store.get_by_seq(1) == make_row(1, id="taken")  # update not applied
    assert await store.get_by_seq(2) is not None  # delete not applied
    for seq in (3, 4, 5):
        assert await store.get_by_seq(seq) is None

    # the store goes on working
    await store.put(InsertTask(make_row(6, id="after")))
    assert await store.get("default", "after") == make_row(6, id="after")
    await store.flush()


async def test_duplicate_seq_fails_its_batch(store: TaskStore) -> None:
    await store.put(InsertTask(make_row(1)))
    with pytest.raises(StoreError, match="seq"):
        await store.put(InsertTask(make_row(1, id="other")))
    assert await store.get("default", "other") is None


async def test_unencodable_op_is_refused_alone(store: TaskStore) -> None:
    good = store.put(InsertTask(make_row(1)))
    with pytest.raises(StoreError):
        store.put(InsertTask(make_row(2, options={"x": object()})))
    with pytest.raises(StoreError):
        store.put(UpdateTask(seq=1, state=S.FAILED, attempts=1, error={"x": {1, 2}}))
    await good
    assert await store.get_by_seq(1) == make_row(1)
    assert await store.get_by_seq(2) is None


async def test_a_caller_giving_up_does_not_cancel_the_write(store: TaskStore) -> None:
    abandoned = store.put(InsertTask(make_row(1)))
    kept = store.put(InsertTask(make_row(2)))
    abandoned.cancel()
    await kept
    await store.flush()
    assert await store.get_by_seq(1) is not None
    assert await store.get_by_seq(2) is not None


# -- lifecycle ---------------------------------------------------------------------------------


async def test_data_survives_close_and_reopen(open_store: Opener) -> None:
    store = await open_store()
    rows = seeded_rows(50)
    await put_all(store, [InsertTask(row) for row in rows])
    await store.close()

    again = await open_store()
    assert await again.max_seq() == 50
    for row in rows:
        assert await again.get_by_seq(row.seq) == row


async def test_close_commits_what_is_pending(open_store: Opener) -> None:
    store = await open_store()
    futures = [store.put(InsertTask(make_row(seq))) for seq in range(1, 201)]
    await store.close()
    assert all(future.done() and future.exception() is None for future in futures)
    await store.close()  # twice is fine

    again = await open_store()
    assert await again.max_seq() == 200


async def test_a_functions_code_options_are_put_replaced_deleted_and_kept(
    open_store: Opener,
) -> None:
    """``PutCode``: one row per (tenant, function), the newest wins, None deletes it, in op
    order within a batch; read back after a reopen (``daemon/codeoptions.py``)."""
    store = await open_store()
    await put_all(
        store,
        [
            PutCode("a", "m:f", b"\x81\xa1x\x01"),
            PutCode("b", "m:f", b"\x80"),
            PutCode("a", "m:g", b"\x80"),
            PutCode("a", "m:f", b"\x81\xa1x\x02"),  # replaces a's m:f
            PutCode("a", "m:g", None),  # deletes it
            PutCode("a", "m:gone", None),  # deleting what is not there does nothing
        ],
    )
    await store.close()
    again = await open_store()
    assert sorted(await again.load_code_options()) == [
        ("a", "m:f", b"\x81\xa1x\x02"),
        ("b", "m:f", b"\x80"),
    ]


async def test_use_after_close_raises_store_error(store: TaskStore) -> None:
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        store.put(InsertTask(make_row(1)))
    with pytest.raises(StoreError):
        await store.get_by_seq(1)
    with pytest.raises(StoreError):
        await store.list_tasks(TaskFilter(), 10)
    with pytest.raises(StoreError):
        await store.load_live()


# -- recovery ----------------------------------------------------------------------------------


async def test_load_live_batches_match_load_live_and_share_equal_values(
    store: TaskStore,
) -> None:
    rows = [make_row(seq, options={"retries": 2}, payload=b"\x92\x90\x80") for seq in range(1, 8)]
    rows.append(make_row(8, state=S.SUCCEEDED))
    await put_all(store, [InsertTask(row) for row in rows])
    batches = [batch async for batch in store.load_live_batches(3)]
    assert [len(batch) for batch in batches] == [3, 3, 1]
    flat = [row for batch in batches for row in batch]
    assert flat == await store.load_live()
    assert len({id(row.options) for row in flat}) == 1  # one dict for equal options
    assert len({id(row.payload) for row in flat}) == 1
    assert len({id(row.function) for row in flat}) == 1


async def test_load_live_returns_the_live_rows_in_seq_order(store: TaskStore) -> None:
    rows = seeded_rows(300)
    order = list(range(len(rows)))
    random.Random(3).shuffle(order)  # put in a scrambled order: seq order must come from the store
    await put_all(store, [InsertTask(rows[i]) for i in order])
    live = await store.load_live()
    want = [row for row in rows if row.state in LIVE]
    assert {row.state for row in rows} == set(ALL_STATES)
    assert live == want


async def test_load_live_of_10k_rows(store: TaskStore) -> None:
    states = (S.QUEUED, S.SUCCEEDED, S.SCHEDULED, S.FAILED, S.RUNNING)
    for first in range(1, 10_001, 2_500):
        for seq in range(first, first + 2_500):
            store.put(InsertTask(make_row(seq, state=states[seq % 5])))
        await store.flush()
    live = await store.load_live()
    assert len(live) == 6_000
    assert seqs(live) == [seq for seq in range(1, 10_001) if states[seq % 5] in LIVE]


# -- history queries ---------------------------------------------------------------------------


@pytest.fixture
async def seeded(store: TaskStore) -> Seeded:
    rows = seeded_rows(300)
    await put_all(store, [InsertTask(row) for row in rows])
    return store, rows


SINGLE_FIELD_FILTERS = [
    TaskFilter(),
    TaskFilter(tenants=("acme",)),
    TaskFilter(tenants=("acme", "globex")),
    TaskFilter(tenants=("nobody",)),
    TaskFilter(states=(S.FAILED,)),
    TaskFilter(states=(S.QUEUED, S.RUNNING, S.EXPIRED)),
    TaskFilter(queue="exclusive"),
    TaskFilter(function="app:b"),
    TaskFilter(function="app:%"),
    TaskFilter(since=1_700_000_200.0),
    TaskFilter(until=1_700_000_200.0),
    TaskFilter(since=1_700_000_100.0, until=1_700_000_110.0),
    TaskFilter(labels={"env": "prod"}),
    TaskFilter(labels={"env": "prod", "k.x": "2"}),
    TaskFilter(labels={'q"k': "v"}),
    TaskFilter(labels={"env": "%"}),
    TaskFilter(labels={"missing": "x"}),
    TaskFilter(before=(1_700_000_200.0, 100)),
    TaskFilter(
        tenants=("acme",),
        states=(S.SUCCEEDED, S.FAILED),
        function="app:a",
        before=(1_700_000_300.0, 250),
    ),
    TaskFilter(
        tenants=("globex",), queue="exclusive", labels={"env": "dev"}, since=1_700_000_050.0
    ),
]
PREFIXES = sorted({p for i in TRICKY_IDS for p in (i[:1], i[:2], i[:3], i)} | {"%", "_", "*", "["})


@pytest.mark.parametrize("f", SINGLE_FIELD_FILTERS, ids=repr)
async def test_list_filters_agree_with_brute_force(seeded: Seeded, f: TaskFilter) -> None:
    store, rows = seeded
    for limit in (1000, 7):
        assert seqs(await store.list_tasks(f, limit)) == expected(rows, f, limit)


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_list_id_prefix_matches_literally(seeded: Seeded, prefix: str) -> None:
    store, rows = seeded
    for f in (TaskFilter(id_prefix=prefix), TaskFilter(tenants=("acme",), id_prefix=prefix)):
        got = await store.list_tasks(f, 1000)
        assert seqs(got) == expected(rows, f, 1000)
        assert all(row.id.startswith(prefix) for row in got)


async def test_list_random_combinations_agree_with_brute_force(seeded: Seeded) -> None:
    store, rows = seeded
    rng = random.Random(11)
    for _ in range(200):
        f = TaskFilter(
            tenants=rng.choice((None, ("acme",), ("default", "globex"), ())),
            states=tuple(rng.sample(ALL_STATES, rng.randint(0, 3))),
            queue=rng.choice((None, "exclusive", "acme")),
            function=rng.choice((None, None, "app:a", "other:c")),
            id_prefix=rng.choice((None, None, *PREFIXES)),
            since=rng.choice((None, 1_700_000_000.0 + rng.randint(0, 50) * 10)),
            until=rng.choice((None, 1_700_000_000.0 + rng.randint(0, 50) * 10)),
            labels=rng.choice(({}, {}, {"env": "prod"}, {"k.x": "1", 'q"k': "v"})),
            before=rng.choice(
                (None, (1_700_000_000.0 + rng.randint(0, 50) * 10, rng.randint(1, 320)))
            ),
        )
        limit = rng.choice((1, 10, 1000))
        assert seqs(await store.list_tasks(f, limit)) == expected(rows, f, limit), f


async def test_list_pages_with_a_cursor(seeded: Seeded) -> None:
    store, rows = seeded
    f = TaskFilter(tenants=("acme", "default"), states=(S.SUCCEEDED, S.FAILED, S.QUEUED))
    pages: list[list[int]] = []
    cursor = None
    while True:
        page = await store.list_tasks(TaskFilter(**{**_fields(f), "before": cursor}), 13)
        if not page:
            break
        pages.append(seqs(page))
        cursor = page_key(page[-1])
    assert all(len(page) == 13 for page in pages[:-1])
    assert [seq for page in pages for seq in page] == expected(rows, f, 10_000)


async def test_list_edge_limits(seeded: Seeded) -> None:
    store, rows = seeded
    assert await store.list_tasks(TaskFilter(), 0) == []
    assert await store.list_tasks(TaskFilter(tenants=()), 100) == []
    newest = await store.list_tasks(TaskFilter(), 1)
    assert seqs(newest) == expected(rows, TaskFilter(), 1)


async def test_list_returns_whole_rows(seeded: Seeded) -> None:
    store, rows = seeded
    by_seq = {row.seq: row for row in rows}
    for row in await store.list_tasks(TaskFilter(labels={"env": "dev"}), 50):
        assert row == by_seq[row.seq]


def _fields(f: TaskFilter) -> dict[str, Any]:
    return {name: getattr(f, name) for name in TaskFilter.__dataclass_fields__}


async def test_pauses_are_recorded_cleared_and_survive_reopen(open_store: Opener) -> None:
    store = await open_store()
    await store.put(SetPause("tenant", "acme", ""))
    await store.put(SetPause("queue", "acme", "reports"))
    await store.put(SetPause("queue", "acme", "reports"))  # twice: still one
    await store.put(SetPause("function", "", "m:f"))
    await store.put(ClearPause("function", "", "m:f"))
    await store.put(ClearPause("function", "", "never-paused"))
    await store.close()
    reopened = await open_store()
    assert await reopened.load_pauses() == [
        ("queue", "acme", "reports"),
        ("tenant", "acme", ""),
    ]
