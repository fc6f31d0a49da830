"""Hypothesis: any ``TaskFilter`` returns exactly what the brute-force reference returns, and
paging through it with the cursor returns every match once, newest first.

One seeded store per store kind for the whole module (seeding per example would dominate the
run time); each example only reads. The store lives on an ``asyncio.Runner`` of its own, since
Hypothesis drives synchronous tests. The seeded times are clustered (many tasks share a
``created_at``), so pages often end inside a tie, which the cursor's ``seq`` must break; up to
seven tenants are drawn, enough for ``plan.MAX_ARMS`` to send a query down its fallback walk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.store import InsertTask, TaskFilter, TaskRow, TaskStore, listing
from tests.store.conftest import STORE_KINDS
from tests.store.helpers import ALL_STATES, TRICKY_IDS, expected, page_key, seeded_rows

ROWS = seeded_rows(300)
#: Tenants to draw: the seeded three, and some with no tasks.
TENANTS = ("acme", "globex", "default", "nobody", "t5", "t6", "t7")
TIMES = sorted({row.created_at for row in ROWS})


@pytest.fixture(scope="module", params=sorted(STORE_KINDS))
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[asyncio.Runner, TaskStore]]:
    directory: Path = tmp_path_factory.mktemp(f"seeded-{request.param}")
    with asyncio.Runner() as runner:
        store = runner.run(_open(request.param, directory))
        try:
            runner.run(_seed(store, ROWS))
            yield runner, store
        finally:
            runner.run(store.close())


async def _open(kind: str, directory: Path) -> TaskStore:
    return await STORE_KINDS[kind](directory)


async def _seed(store: TaskStore, rows: list[TaskRow]) -> None:
    await asyncio.gather(*(store.put(InsertTask(row)) for row in rows))


def _optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | strategy


_time = st.sampled_from(TIMES) | st.floats(TIMES[0] - 10, TIMES[-1] + 10)
filters = st.builds(
    TaskFilter,
    tenants=_optional(st.lists(st.sampled_from(TENANTS), max_size=7, unique=True).map(tuple)),
    states=st.lists(st.sampled_from(ALL_STATES), max_size=3, unique=True).map(tuple),
    queue=_optional(st.sampled_from(("acme", "globex", "default", "exclusive"))),
    function=_optional(st.sampled_from(("app:a", "app:b", "other:c", "app:%"))),
    id_prefix=_optional(
        st.sampled_from([i[:n] for i in TRICKY_IDS for n in (1, 2, 3)])
        | st.text(alphabet="ab%_*?[]\\'\"xé\U0010ffff1", max_size=4)
    ),
    since=_optional(_time),
    until=_optional(_time),
    labels=st.dictionaries(
        st.sampled_from(("env", "k.x", 'q"k', "other")),
        st.sampled_from(("prod", "dev", "1", "2", "v", "%")),
        max_size=2,
    ),
    before=_optional(st.tuples(_time, st.integers(0, 320))),
)


@settings(max_examples=200, deadline=None)
@given(f=filters, limit=st.integers(0, 400), wide_prefix=st.booleans(), wide_label=st.booleans())
def test_list_tasks_agrees_with_brute_force(
    seeded: tuple[asyncio.Runner, TaskStore],
    f: TaskFilter,
    limit: int,
    wide_prefix: bool,
    wide_label: bool,
) -> None:
    runner, store = seeded
    # wide_prefix / wide_label: the store takes every ID prefix (label) for a wide one (plan
    # rule 2, 1b off), so both ways of reading each are checked on the same small history.
    with (
        mock.patch.object(listing, "NARROW_PREFIX_ROWS", 0 if wide_prefix else 2_000),
        mock.patch.object(listing, "NARROW_LABEL_ROWS", 0 if wide_label else 20_000),
    ):
        got = runner.run(store.list_tasks(f, limit))
    assert [row.seq for row in got] == expected(ROWS, f, limit)


@settings(max_examples=100, deadline=None)
@given(f=filters, size=st.integers(1, 40))
def test_pages_return_every_match_once_newest_first(
    seeded: tuple[asyncio.Runner, TaskStore], f: TaskFilter, size: int
) -> None:
    runner, store = seeded
    seen: list[int] = []
    cursor = f.before
    for _ in range(len(ROWS) + 1):  # a cursor that never ends would be a bug, not a hang
        page = runner.run(store.list_tasks(replace(f, before=cursor), size))
        seen.extend(row.seq for row in page)
        if len(page) < size:
            break
        cursor = page_key(page[-1])
    assert seen == expected(ROWS, f, len(ROWS))
