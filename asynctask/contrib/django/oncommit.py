"""``submit_on_commit``: submit a task once the current database transaction has committed.

Why: a view that saves a row and submits a task about it inside one transaction races the
worker - the task can start before the row is committed, read nothing, or read a row that a
rollback then removes. ``transaction.on_commit`` runs the submit only after the commit, and not
at all after a rollback; outside a transaction (autocommit) it runs at once. That is what
Celery users write by hand (``transaction.on_commit(lambda: f.delay(...))``) and what Django's
own tasks framework leaves to the caller.

The task's ID is chosen now (``model.new_task_id``, a ULID, unless ``task_id=`` is given) and
returned, so the view can hand it to its client before the task exists; until the commit the
daemon answers "not found" for it, and after a rollback it never exists. A given ID also makes
the submit idempotent: the daemon de-duplicates by ID.

The submit itself goes through one blocking client per process and socket, created on first use
(a client is thread-safe; a forked child makes its own, since a socket must not be shared across
a fork).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any, Unpack

from django.db import transaction

from asynctask.client import Client
from asynctask.client._options import FunctionRef, SubmitOptions
from asynctask.model import DEFAULT_TENANT, new_task_id
from asynctask.paths import resolve_socket

_clients: dict[tuple[int, str, str], Client] = {}
_lock = threading.Lock()


def shared_client(
    socket: str | os.PathLike[str] | None = None, tenant: str = DEFAULT_TENANT
) -> Client:
    """This process's client for ``socket`` (default: ``$ASYNCTASK_SOCKET``, else the home's,
    resolved at each call) and ``tenant``; a new one after a fork."""
    key = (os.getpid(), str(resolve_socket(socket)), tenant)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = Client(key[1], tenant=tenant)
    return client


def submit_on_commit(
    func: FunctionRef,
    *args: Any,
    kwargs: Mapping[str, Any] | None = None,
    using: str | None = None,
    client: Client | None = None,
    **options: Unpack[SubmitOptions],
) -> str:
    """Submit ``func(*args, **kwargs)`` when the transaction on database ``using`` (default: the
    default database) commits; return the task's ID. ``options`` are ``Client.submit``'s.

    After a rollback nothing is submitted. A submit that fails after the commit (no daemon,
    back pressure) raises from the commit's callbacks, as Django raises any ``on_commit``
    error: the data is committed by then, so a caller that must not lose the task should give
    ``task_id=`` and be able to submit it again (the daemon de-duplicates by ID)."""
    task_id = options.get("task_id") or new_task_id()
    chosen: SubmitOptions = {**options, "task_id": task_id}
    arguments = dict(kwargs) if kwargs is not None else None

    def submit() -> None:
        active = client if client is not None else shared_client()
        active.submit(func, *args, kwargs=arguments, **chosen)

    transaction.on_commit(submit, using=using)
    return task_id
