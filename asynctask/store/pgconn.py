"""A PostgreSQL connection of a store part that is opened again after it was lost.

The lease table, the cluster reads and the attempt logs each keep a connection of their own
(``pgleases.py``, ``pgcluster.py``, ``pglogs.py``) and share one rule for it: use the open one,
connect again if it is missing or closed, and after an error that says the connection is gone
(``pgerrors.is_fatal``) drop it so that the next call reconnects, the error itself surfacing as
``StoreError``. Taking turns on a connection stays with each owner (asyncpg runs one statement
at a time per connection), since their locks differ.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from asynctask.store.pgerrors import is_fatal, map_errors


@contextlib.asynccontextmanager
async def reconnecting(
    owner: Any,
    attribute: str,
    connect: Callable[[], Awaitable[Any]],
    doing: str,
    also: tuple[type[Exception], ...] = (),
) -> AsyncIterator[Any]:
    """``owner``'s connection in ``attribute``, opened with ``connect()`` if it is missing or
    closed, and dropped again when an error says it was lost; errors as ``StoreError``
    saying what was being ``doing`` (``also``: more error types to map)."""
    with map_errors(doing, also=also):
        try:
            conn = getattr(owner, attribute)
            if conn is None or conn.is_closed():
                conn = await connect()
                setattr(owner, attribute, conn)
            yield conn
        except BaseException as error:
            conn = getattr(owner, attribute)
            if is_fatal(error) and conn is not None:
                conn.terminate()
                setattr(owner, attribute, None)
            raise
