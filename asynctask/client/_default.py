"""The default clients that ``f.submit()``, ``f.delay()`` and their async twins use.

Before this, every ``f.submit()`` made a new ``Client()``: a socket, a handshake and a close
per call. Now each thread has one blocking ``Client``, made at its first call and kept, so its
connection is reused; and each event loop has one ``AsyncClient`` (an asyncio connection
belongs to the loop that opened it).

* **Threads.** One connection per thread, not one shared under a lock: measured with a real
  daemon (``benchmarks/bench_default_client.py``, 7 runs on a busy 2-core machine), 8
  threads submitting through one shared connection made 594-1,847 submits/s, through a
  connection each 1,207-5,092/s (faster in 6 runs of 7, even in the 7th), because the daemon
  commits the submits of several connections together (group commit) while a shared
  connection carries one request at a time. A thread's client goes when the thread ends (its
  socket is closed then). Each thread that submits holds a connection: the daemon allows
  ``[server] max_connections_per_user`` (256) per user; a program with more submitting
  threads than that should share explicit clients instead.
* **Fork.** A child must not speak on its parent's socket: replies would go to whichever
  process reads first. ``os.register_at_fork`` drops every client in the child (unused: the
  parent's sockets are left alone), and each client is also checked against the pid that made
  it, for a fork the hook did not see.
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
    __slots__ = ("async_clients", "lock", "pid", "socket", "tenant", "threads")

    def __init__(self, socket: str | Path | None = None, tenant: str = DEFAULT_TENANT) -> None:
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.socket = socket
        self.tenant = tenant
        #: Each thread's ``Client`` (``threads.client``), made at its first call.
        self.threads = threading.local()
        self.async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
            weakref.WeakKeyDictionary()
        )


_STATE = _Defaults()


def _after_fork() -> None:
    global _STATE
    _STATE = _Defaults(_STATE.socket, _STATE.tenant)


os.register_at_fork(after_in_child=_after_fork)


def configure_default(socket: str | Path | None = None, tenant: str = DEFAULT_TENANT) -> None:
    """Where the default clients connect (``None``: ``$ASYNCTASK_SOCKET``, else the home's
    socket) and which tenant they act for, from their next call on, in every thread."""
    global _STATE
    _STATE = _Defaults(socket, tenant)


def _state() -> _Defaults:
    """The current state, made anew in a process that is not the one that made it."""
    global _STATE
    state = _STATE
    if state.pid != os.getpid():  # forked, and the fork hook did not run
        with state.lock:
            if _STATE is state:
                _STATE = _Defaults(state.socket, state.tenant)
        state = _STATE
    return state


def default_client() -> Client:
    """This thread's blocking client, made at its first call (see the module docstring)."""
    state = _state()
    client: Client | None = getattr(state.threads, "client", None)
    if client is None:
        from asynctask.client._sync.client import Client

        client = state.threads.client = Client(state.socket, tenant=state.tenant)
    return client


def default_async_client() -> AsyncClient:
    """The running event loop's asyncio client, made at its first call there."""
    from asynctask.client._async.client import AsyncClient

    loop = asyncio.get_running_loop()
    state = _state()
    with state.lock:  # loops may run in several threads
        client = state.async_clients.get(loop)
        if client is None:
            client = state.async_clients[loop] = AsyncClient(state.socket, tenant=state.tenant)
    return client
