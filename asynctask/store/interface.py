"""``TaskStore``: what the daemon needs from durable storage, whatever database provides it.

SQLite (``Store``, ``sqlite.py``) and PostgreSQL (``PostgresStore``, ``postgres.py``) implement
it; the daemon holds its store as a ``TaskStore`` (``open_store`` picks one), and
``tests/store/`` is written against this protocol so that every store passes the same contract
suite (huey's ``StorageTests``).

The contract, beyond the signatures:

* ``put`` is synchronous and never blocks: it queues the op and returns a future that resolves
  once the op is durably committed, or gets ``StoreError`` if its transaction failed (then no op
  of that transaction is stored). Ops commit in the order they were put.
* A read issued after a put's future resolved sees that put.
* Every error a store raises is a ``StoreError``.
* After an error that leaves the files in doubt (an I/O error on write or fsync), the store
  refuses every later write and calls the ``on_fatal`` callback once: the owner must re-open
  the database from disk. A disk-full or read-only error only fails its own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from asynctask.store.errors import StoreError
from asynctask.store.rows import Op, Quarantine, SkippedRow, TaskFilter, TaskRow


class TaskStore(Protocol):
    """The durable record of every task; see the module docstring for the promises."""

    @property
    def transactions(self) -> int:
        """Transactions committed so far (for metrics and tests of group commit)."""
        ...

    @property
    def ops_committed(self) -> int:
        """Ops in those transactions."""
        ...

    @property
    def pending(self) -> int:
        """Ops put and not yet committed or failed."""
        ...

    @property
    def failure(self) -> str | None:
        """Why the latest transaction failed, until one commits again (None: healthy)."""
        ...

    @property
    def failing_since(self) -> float | None:
        """When (loop time) the current run of failures began."""
        ...

    def on_fatal(self, callback: Callable[[StoreError], None]) -> None:
        """Call ``callback`` (once, from the loop) when the store stops taking writes for good."""
        ...

    def put(self, op: Op) -> asyncio.Future[None]: ...

    def one_transaction(self) -> contextlib.AbstractContextManager[None]:
        """Ops put inside the (await-free) block commit in one transaction: all or nothing."""
        ...

    def flush(self) -> asyncio.Future[None]: ...

    async def close(self) -> None: ...

    async def load_live(self) -> list[TaskRow]: ...

    def load_live_batches(
        self, size: int = ..., skipped: list[SkippedRow] | None = ...
    ) -> AsyncIterator[list[TaskRow]]:
        """The live rows in ``seq`` order; with ``skipped``, undecodable rows are described
        there and left out (and left as they are in the store) instead of raising."""
        ...

    async def max_seq(self) -> int: ...

    async def load_pauses(self) -> list[tuple[str, str, str]]: ...

    async def load_crons(self) -> list[tuple[str, str, bytes]]:
        """(tenant, name, definition) of every cron entry."""
        ...

    async def quarantine(self, rows: list[Quarantine], now: float) -> int:
        """Move ``rows`` whole into the ``quarantine`` table, in one transaction; how many
        moved. For start-up, before anything is put."""
        ...

    async def load_tenant_uids(self, skipped: list[Quarantine] | None = ...) -> dict[str, int]: ...

    async def load_code_options(self) -> list[tuple[str, str, bytes]]:
        """``(tenant, function, options)`` of every ``PutCode`` kept, for start-up; the
        daemon checks each (a bad one is logged and skipped)."""
        ...

    async def get(self, tenant: str, task_id: str) -> TaskRow | None: ...

    async def get_by_seq(self, seq: int) -> TaskRow | None: ...

    async def get_by_seqs(self, seqs: list[int]) -> list[TaskRow]:
        """The rows of ``seqs`` that exist, in ``seq`` order; equal values of the rows may be
        shared objects, so treat them as read-only."""
        ...

    async def list_tasks(self, f: TaskFilter, limit: int) -> list[TaskRow]: ...

    async def old_finished(
        self, before: float, limit: int, tenant: str | None = None
    ) -> list[tuple[int, str, str, int]]:
        """(seq, tenant, id, attempts) of the oldest finished tasks created before ``before``,
        of ``tenant`` only if given."""
        ...

    async def count_finished(self) -> int: ...

    async def count_finished_by_tenant(self) -> dict[str, int]:
        """Each tenant's finished tasks; tenants with none are left out."""
        ...
