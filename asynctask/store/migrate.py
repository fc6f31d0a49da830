"""``copy_store``: every stored row of one ``TaskStore`` into another, empty one.

``asynctask migrate-store`` uses it to move a home's SQLite store to PostgreSQL (README,
"Scale-out: PostgreSQL"). It goes through the ``TaskStore`` protocol only, so it neither knows
nor cares which database is on either side:

* tasks, live and finished, are read in pages of ``list_tasks`` (newest first, the
  ``(created_at, seq)`` cursor) and written as ``InsertTask`` ops, every field as stored,
  ``seq`` included (the daemon resumes its counter from ``max_seq``); each page is one
  transaction of the target (``one_transaction``) and is committed before the next is read;
* then pauses, cron entries and tenant uids, all in one last transaction.

All or nothing, by deletion: if any write fails, the tasks already committed are deleted again
(``DeleteTask``, in batches), so the target is left as empty as it was found. The last
transaction is all or nothing by itself, and tenant uids have no delete op, so they are written
only there. If the clean-up cannot commit either (the connection is gone), ``CopyFailed`` says
so and the target must be emptied by hand.

Rows the source set aside at start-up (its ``quarantine`` table) are not copied: the protocol
does not expose them (``asynctask doctor`` lists them).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from asynctask.store.errors import StoreError
from asynctask.store.interface import TaskStore
from asynctask.store.rows import (
    AssignUid,
    DeleteTask,
    InsertTask,
    PutCron,
    SetPause,
    TaskFilter,
)

#: Tasks per page read and per transaction written.
DEFAULT_BATCH = 1_000


class TargetNotEmpty(StoreError):
    """The target already holds tasks, pauses, cron entries or tenant uids: nothing was
    written."""


class CopyFailed(StoreError):
    """A write to the target failed; ``cleaned`` says whether what was written is gone."""

    def __init__(self, message: str, *, cleaned: bool) -> None:
        super().__init__(message)
        self.cleaned = cleaned


@dataclass
class Copied:
    """What ``copy_store`` copied."""

    tasks: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    pauses: int = 0
    crons: int = 0
    tenant_uids: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "tasks": self.tasks,
            "by_state": dict(sorted(self.by_state.items())),
            "pauses": self.pauses,
            "crons": self.crons,
            "tenant_uids": self.tenant_uids,
        }


async def check_empty(target: TaskStore) -> None:
    """Raise ``TargetNotEmpty`` unless ``target`` holds no task, pause, cron entry or uid."""
    held = {
        "tasks": await target.max_seq() > 0,
        "pauses": bool(await target.load_pauses()),
        "cron entries": bool(await target.load_crons()),
        "tenant uids": bool(await target.load_tenant_uids()),
    }
    found = [what for what, present in held.items() if present]
    if found:
        raise TargetNotEmpty(
            f"the target already holds {', '.join(found)}: migrate-store copies only into an "
            "empty database (or schema); nothing was written"
        )


async def copy_store(source: TaskStore, target: TaskStore, batch: int = DEFAULT_BATCH) -> Copied:
    """Copy every task, pause, cron entry and tenant uid of ``source`` into ``target``, which
    must be empty (``TargetNotEmpty`` otherwise, before anything is written). On a failed
    write, what was written is deleted again and ``CopyFailed`` raised (see the module
    docstring). A read of the source that fails raises its ``StoreError`` after the same
    clean-up."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    await check_empty(target)
    copied = Copied()
    written: list[int] = []
    states: Counter[str] = Counter()
    try:
        before: tuple[float, int] | None = None
        while True:
            rows = await source.list_tasks(TaskFilter(before=before), batch)
            if not rows:
                break
            written.extend(row.seq for row in rows)  # before the puts: a half-put page too
            with target.one_transaction():
                futures = [target.put(InsertTask(row)) for row in rows]
            await _committed(futures)
            states.update(row.state.value for row in rows)
            last = rows[-1]
            before = (last.created_at, last.seq)
            if len(rows) < batch:
                break
        pauses = await source.load_pauses()
        crons = await source.load_crons()
        uids = await source.load_tenant_uids()
        with target.one_transaction():
            futures = [target.put(SetPause(kind, tenant, name)) for kind, tenant, name in pauses]
            futures += [target.put(PutCron(t, name, d)) for t, name, d in crons]
            futures += [target.put(AssignUid(tenant, uid)) for tenant, uid in uids.items()]
        await _committed(futures)
    except StoreError as exc:
        cleaned = await _delete(target, written, batch)
        if not cleaned:
            raise CopyFailed(
                f"the copy failed ({exc}), and deleting the tasks already written failed "
                "too: empty the target by hand (e.g. DROP SCHEMA ... CASCADE) before trying "
                "again",
                cleaned=False,
            ) from exc
        raise CopyFailed(
            f"the copy failed ({exc}); the tasks already written were deleted again, so the "
            "target holds nothing of it",
            cleaned=True,
        ) from exc
    copied.tasks = len(written)
    copied.by_state = dict(states)
    copied.pauses, copied.crons, copied.tenant_uids = len(pauses), len(crons), len(uids)
    return copied


async def _delete(target: TaskStore, seqs: list[int], batch: int) -> bool:
    """Delete tasks ``seqs`` from ``target``; whether it committed."""
    try:
        for start in range(0, len(seqs), batch):
            with target.one_transaction():
                futures = [target.put(DeleteTask(seq)) for seq in seqs[start : start + batch]]
            await _committed(futures)
    except StoreError:
        return False
    return True


async def _committed(futures: list[asyncio.Future[None]]) -> None:
    """Wait for every future (so none is left with an unread error), then raise the first
    error."""
    for outcome in await asyncio.gather(*futures, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome
