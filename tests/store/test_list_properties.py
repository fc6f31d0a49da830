"""Hypothesis: any ``TaskFilter`` returns exactly what the brute-force reference returns.

One seeded store per store kind for the whole module (seeding per example would dominate the
run time); each example only reads. The store lives on an ``asyncio.Runner`` of its own, since
Hypothesis drives synchronous tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.store import InsertTask, TaskFilter, TaskRow, TaskStore
from tests.store.conftest import STORE_KINDS
from tests.store.helpers import ALL_STATES, TRICKY_IDS, expected, seeded_rows

ROWS = seeded_rows(300)
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
    tenants=_optional(
        st.lists(st.sampled_from(("acme", "globex", "default", "nobody")), max_size=3).map(tuple)
    ),
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
    before_seq=_optional(st.integers(0, 320)),
)


@settings(max_examples=150, deadline=None)
@given(f=filters, limit=st.integers(0, 400))
def test_list_tasks_agrees_with_brute_force(
    seeded: tuple[asyncio.Runner, TaskStore], f: TaskFilter, limit: int
) -> None:
    runner, store = seeded
    got = runner.run(store.list_tasks(f, limit))
    assert [row.seq for row in got] == expected(ROWS, f, limit)
