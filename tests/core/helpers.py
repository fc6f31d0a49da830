from __future__ import annotations

import itertools

from asynctask.model import LiveTask, TaskState

_seq = itertools.count(1)


def make_task(
    priority: int = 5,
    *,
    state: TaskState = TaskState.QUEUED,
    due_at: float | None = None,
    retries: int = 3,
    expires_at: float | None = None,
    tenant: str = "default",
) -> LiveTask:
    seq = next(_seq)
    return LiveTask(
        seq=seq,
        tenant=tenant,
        id=f"t{seq}",
        function="m:f",
        queue=tenant,
        priority=priority,
        state=state,
        payload=b"\x92\x90\x80",
        options={},
        labels={},
        retries=retries,
        timeout=None,
        created_at=0.0,
        due_at=due_at,
        expires_at=expires_at,
    )
