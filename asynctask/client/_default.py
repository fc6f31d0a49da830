"""The process-wide default clients that ``f.submit()``, ``f.delay()`` and their async twins use.

Before this, every ``f.submit()`` made a new ``Client()``: a socket, a handshake and a close
per call (about 3 ms). Now there is one blocking ``Client`` per process, made on first use and
kept, so its connection is reused; and one ``AsyncClient`` per event loop (an asyncio
connection belongs to the loop that opened it).

* **Threads.** The blocking client is shared by every thread: its connection does one round
  trip at a time under a lock (``_connection.Connection``). One connection per thread was the
  alternative; measured with a real daemon (docs/calling.md, "The default client") it was no
  faster for submits, since the daemon answers one connection's requests and another's on the
  same event loop, and it would open a connection per thread, against the daemon's cap of
  ``[server] max_connections_per_user`` (256) that a thread-pool web server can pass.
* **Fork.** A child must not speak on its parent's socket: replies would go to whichever
  process reads first. The client remembers the pid that made it; in another process (a fork)
  it is dropped, unused, and a new one made. ``os.register_at_fork`` also resets the lock in
  the child, in case a parent thread held it at the fork.
* **Where.** ``configure_default(socket=..., tenant=...)`` sets what the default clients
  connect to and act for (default: ``$ASYNCTASK_SOCKET`` or the home's socket, tenant
  ``default``), and drops the current ones.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from asynctask.model import DEFAULT_TENANT

if TYPE_CHECKING:
    from asynctask.client._async.client import AsyncClient
    from asynctask.client._sync.client import Client


class _Defaults:
    __slots__ = ("async_clients", "client", "lock", "pid", "socket", "tenant")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client: Client | None = None
        self.pid = os.getpid()
        self.socket: str | Path | None = None
        self.tenant = DEFAULT_TENANT
        self.async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
            weakref.WeakKeyDictionary()
        )


_STATE = _Defaults()


def _after_fork() -> None:
    global _STATE
    old = _STATE
    _STATE = _Defaults()
    _STATE.socket, _STATE.tenant = old.socket, old.tenant


os.register_at_fork(after_in_child=_after_fork)


def configure_default(socket: str | Path | None = None, tenant: str = DEFAULT_TENANT) -> None:
    """Where the default clients connect (``None``: ``$ASYNCTASK_SOCKET``, else the home's
    socket) and which tenant they act for, from their next call on."""
    state = _STATE
    with state.lock:
        state.socket, state.tenant = socket, tenant
        state.client = None
        state.async_clients = weakref.WeakKeyDictionary()


def default_client() -> Client:
    """This process's blocking client, made on first use (see the module docstring)."""
    state = _STATE
    client = state.client
    if client is not None and state.pid == os.getpid():
        return client
    from asynctask.client._sync.client import Client

    with state.lock:
        if state.pid != os.getpid():  # forked, and the fork hook did not run (os.fork only)
            state.pid = os.getpid()
            state.client = None
            state.async_clients = weakref.WeakKeyDictionary()
        if state.client is None:
            state.client = Client(state.socket, tenant=state.tenant)
        return state.client


def default_async_client() -> AsyncClient:
    """The running event loop's asyncio client, made on first use there."""
    from asynctask.client._async.client import AsyncClient

    loop = asyncio.get_running_loop()
    state = _STATE
    if state.pid != os.getpid():
        default_client()  # resets the state for this process
        state = _STATE
    client = state.async_clients.get(loop)
    if client is None:
        client = state.async_clients[loop] = AsyncClient(state.socket, tenant=state.tenant)
    return client
