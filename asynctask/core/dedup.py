"""What a submit with an ID means when that ID is already taken (de-duplication by ID).

A task that is waiting, running or succeeded keeps its ID: the submit answers with that task
and creates nothing, so a client may repeat a submit it is unsure of. A task that failed, was
cancelled or expired frees its ID: the submit replaces it with a new task under the same ID,
so a caller can run a failed job again by submitting it again."""

from __future__ import annotations

from enum import Enum

from asynctask.model import DEDUP_STATES, TaskState


class Dedup(Enum):
    CREATE = "create"  # the ID is free: a new task
    KEEP = "keep"  # the existing task stands; the submit answers with it
    REPLACE = "replace"  # the existing task ended without success: a new one takes its ID


def on_existing(state: TaskState | None) -> Dedup:
    """The meaning of a submit whose ID names a task in ``state`` (``None``: no such task)."""
    if state is None:
        return Dedup.CREATE
    return Dedup.KEEP if state in DEDUP_STATES else Dedup.REPLACE


def keeps(state: TaskState) -> bool:
    """Whether a task in ``state`` keeps its ID against a new submit of it."""
    return state in DEDUP_STATES
