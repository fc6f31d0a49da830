"""The durable store: every task's record in SQLite (WAL) or PostgreSQL (``open_store`` picks by
location), written by one group-commit writer.

The daemon keeps live queues in memory and uses the store for three things: making a change
durable before acknowledging it (``put`` then await the future), rebuilding memory at start-up
(``load_live``, ``max_seq``), and answering history queries (``get``, ``list_tasks``).

``sqlite3`` errors never leave this package; they become ``StoreError``. Nothing here decides
policy: which ops to write, and when, is the daemon's business.
"""

from asynctask.store.errors import Fenced, StoreError
from asynctask.store.interface import TaskStore
from asynctask.store.open import open_store
from asynctask.store.rows import (
    AssignUid,
    ClearPause,
    DeleteCron,
    DeleteTask,
    InsertTask,
    Op,
    PutCode,
    PutCron,
    Quarantine,
    ReplaceTask,
    SetPause,
    SkippedRow,
    TaskFilter,
    TaskRow,
    Touch,
    UpdateTask,
)
from asynctask.store.schema import SCHEMA_VERSION, Durability
from asynctask.store.sqlite import Store

__all__ = [
    "SCHEMA_VERSION",
    "AssignUid",
    "ClearPause",
    "DeleteCron",
    "DeleteTask",
    "Durability",
    "Fenced",
    "InsertTask",
    "Op",
    "PutCode",
    "PutCron",
    "Quarantine",
    "ReplaceTask",
    "SetPause",
    "SkippedRow",
    "Store",
    "StoreError",
    "TaskFilter",
    "TaskRow",
    "TaskStore",
    "Touch",
    "UpdateTask",
    "open_store",
]
