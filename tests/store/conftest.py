"""One fixture set for every store implementation (``asynctask/store/interface.py``).

``STORE_KINDS`` names each implementation and how to open it in a directory; every contract test
runs once per kind. PostgreSQL opens a schema of its own per directory in the session's private
cluster (``tests/pgcluster.py``); where PostgreSQL cannot start, its tests skip with the reason.

Every test that takes ``store``, ``open_store`` or ``STORE_KINDS`` runs for both kinds
(test_contract, test_list_properties, test_read_snapshots, test_retention). The modules that
open ``Store`` directly are SQLite's own (test_sqlite, test_walcheck, test_quarantine,
test_plan, test_fatal_errors; test_starts is the start journal, no database), and
test_postgres.py is PostgreSQL's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from asynctask.store import Store, TaskStore
from asynctask.store.postgres import PostgresStore
from tests import pgcluster

Opener = Callable[..., Awaitable[TaskStore]]


async def _open_sqlite(directory: Path, **options: Any) -> TaskStore:
    return await Store.open(str(directory / "db" / "tasks.db"), **options)


async def _open_postgres(directory: Path, **options: Any) -> TaskStore:
    return await PostgresStore.open(await pgcluster.url_for(directory), **options)


STORE_KINDS: dict[str, Callable[..., Awaitable[TaskStore]]] = {
    "sqlite": _open_sqlite,
    "postgres": _open_postgres,
}


@pytest.fixture(params=sorted(STORE_KINDS))
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def open_store(store_kind: str, tmp_path: Path) -> AsyncIterator[Opener]:
    """Open the store of this test's directory; each call opens it again (to test reopening).

    Every store opened is closed at the end, so no connection thread outlives its test.
    """
    opened: list[TaskStore] = []

    async def opener(**options: Any) -> TaskStore:
        store = await STORE_KINDS[store_kind](tmp_path, **options)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: Opener) -> TaskStore:
    return await open_store()
