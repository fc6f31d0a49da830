"""Clients: ``AsyncClient`` (asyncio) and ``Client`` (blocking), written once.

- ``_async/client.py``: every call, for asyncio; the single source.
- ``_sync/client.py``: the blocking client, generated from it (``scripts/unasync.py``;
  ``make lint`` fails when it is stale).
- ``_connection.py``: the only I/O, one class per style (pipelined asyncio, blocking socket).
- ``_calls.py``: requests built and checked, replies parsed; no I/O.
- ``_options.py``: the calls' keyword arguments as ``TypedDict``s, for the user's type checker.
- ``_default.py``: the default clients of ``f.submit()`` and its kin (one per thread).
- ``_eager.py``: where ``asynctask.testing.eager()`` plugs in.
"""

from __future__ import annotations

from asynctask.client._async.client import AsyncClient, AsyncTaskHandle
from asynctask.client._calls import COMMAND_REF, Page, TaskStatus, function_ref, task_spec
from asynctask.client._default import configure_default, default_async_client, default_client
from asynctask.client._options import ListFilters, Selector, SubmitOptions, TaskFilters
from asynctask.client._sync.client import Client, TaskHandle
from asynctask.errors import RemoteError

__all__ = [
    "COMMAND_REF",
    "AsyncClient",
    "AsyncTaskHandle",
    "Client",
    "ListFilters",
    "Page",
    "RemoteError",
    "Selector",
    "SubmitOptions",
    "TaskFilters",
    "TaskHandle",
    "TaskStatus",
    "configure_default",
    "default_async_client",
    "default_client",
    "function_ref",
    "task_spec",
]
