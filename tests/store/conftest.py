"""One fixture set for every store implementation (``asynctask/store/interface.py``).

``STORE_KINDS`` names each implementation and how to open it in a directory; every contract test
runs once per kind. A PostgreSQL store adds an entry here (opening a fresh schema per directory)
and inherits the whole suite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from asynctask.store import Store, TaskStore

Opener = Callable[..., Awaitable[TaskStore]]


async def _open_sqlite(directory: Path, **options: Any) -> TaskStore:
    return await Store.open(str(directory / "db" / "tasks.db"), **options)


STORE_KINDS: dict[str, Callable[..., Awaitable[TaskStore]]] = {"sqlite": _open_sqlite}


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
