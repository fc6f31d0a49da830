"""The values that cross the store's interface: stored rows, write operations, history filters.

They are plain data with no database in them, so a PostgreSQL store can take the same ones and
``tests/store/`` can run one contract suite against every store.

Write operations are frozen: once ``Store.put`` has accepted one, it is encoded and queued, and
nothing the caller does afterwards changes what gets committed. ``TaskRow`` is mutable (slotted,
not frozen) because the daemon builds it from a ``LiveTask`` and reads hand it back to be turned
into one; nothing inside the store mutates a row it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asynctask.model import ListQuery, TaskState


@dataclass(slots=True)
class TaskRow:
    """One task as stored: the whole durable record of a task, live or finished.

    ``seq`` is assigned by the daemon (monotonic at submit), not by SQLite, so the daemon knows a
    task's key before the write commits and can refer to it in later operations of the same batch.
    ``payload`` and ``result`` are msgpack the store never looks into; ``labels`` and ``error`` are
    JSON in the database so that SQL can filter on them.
    """

    # <generated taskfields:TaskRow>
    #: Assigned by the daemon at submit, so it is known before commit.
    seq: int
    tenant: str
    id: str
    function: str
    queue: str
    priority: int
    state: TaskState
    #: Msgpack of [args, kwargs]; the store never looks into it.
    payload: bytes
    options: dict[str, Any]
    labels: dict[str, str]
    created_at: float
    due_at: float | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    #: Msgpack of the return value.
    result: bytes | None = None
    error: dict[str, Any] | None = None
    #: Every failed attempt's error, oldest first.
    errors: list[dict[str, Any]] | None = None
    #: Paused by selector: waiting, but out of the scheduler's queues.
    held: bool = False
    #: The client's, for joining its own traces; never changes.
    trace_id: str | None = None
    #: [attempt, eligible, dispatched, started, finished] per ended attempt.
    trace: list[list[float | None]] | None = None
    # </generated taskfields:TaskRow>


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A stored task row recovery could not use (garbage in a column, a state this version does
    not know): its key as far as it can be read and why. The daemon sets it aside
    (``Quarantine``); reading it changes nothing."""

    seq: Any
    tenant: Any
    id: Any
    reason: str

    def __str__(self) -> str:
        return f"task seq={self.seq} {self.tenant}/{self.id}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Quarantine:
    """A stored row start-up could not use, to be moved out of the live tables
    (``Store.quarantine``) so that it neither affects them nor trips the next start.

    ``source`` is its table (a key of ``schema.QUARANTINE_KEYS``), ``key`` the values of that
    table's key (``(seq,)`` for ``tasks``, ``(tenant, name)`` for ``crons``), ``label`` the key
    as an operator reads it, ``error`` why it cannot be used."""

    source: str
    key: tuple[Any, ...]
    label: str
    error: str

    def __str__(self) -> str:
        return f"{self.source} row {self.label}: {self.error}"


@dataclass(frozen=True, slots=True)
class InsertTask:
    """Store a new task. Fails its batch if ``seq`` or (``tenant``, ``id``) is already stored.

    ``foreign``: on a shared PostgreSQL store, a task whose partition another daemon holds
    (docs/scale-out.md): stored with a note in that partition's inbox, which its owner reads
    to take the task in. SQLite has one daemon and ignores it."""

    row: TaskRow
    foreign: bool = False


@dataclass(frozen=True, slots=True)
class UpdateTask:
    """Set every mutable column of task ``seq`` (what changes as a task moves through states).

    All the columns are written, not only those that changed, so that consecutive updates share
    one statement and go to SQLite as one ``executemany``. An update of an unknown ``seq`` changes
    nothing and is not an error (the row may have been deleted in the same batch).
    """

    # <generated taskfields:UpdateTask>
    seq: int
    state: TaskState
    due_at: float | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    #: Msgpack of the return value.
    result: bytes | None = None
    error: dict[str, Any] | None = None
    #: Every failed attempt's error, oldest first.
    errors: list[dict[str, Any]] | None = None
    #: Paused by selector: waiting, but out of the scheduler's queues.
    held: bool = False
    #: [attempt, eligible, dispatched, started, finished] per ended attempt.
    trace: list[list[float | None]] | None = None
    # </generated taskfields:UpdateTask>


@dataclass(frozen=True, slots=True)
class DeleteTask:
    """Remove task ``seq``; deleting an unknown ``seq`` changes nothing."""

    seq: int


@dataclass(frozen=True, slots=True)
class ReplaceTask:
    """Delete task ``old_seq`` and insert ``row`` in the same transaction.

    For re-submitting an ID whose task ended ``failed``, ``cancelled`` or ``expired``: the
    (tenant, id) pair is unique, so the old row must go in the same commit the new one arrives
    in, or a crash between the two would lose the old task without storing the new one.
    """

    old_seq: int
    row: TaskRow
    foreign: bool = False  # as ``InsertTask.foreign``


@dataclass(frozen=True, slots=True)
class SetPause:
    """Record that a tenant, queue or function is paused (``kind`` names which)."""

    kind: str
    tenant: str
    name: str


@dataclass(frozen=True, slots=True)
class ClearPause:
    """Forget a pause (resume); clearing one that is not recorded does nothing."""

    kind: str
    tenant: str
    name: str


@dataclass(frozen=True, slots=True)
class PutCron:
    """Create or replace a tenant's cron entry; ``definition`` is the daemon's, opaque here."""

    tenant: str
    name: str
    definition: bytes


@dataclass(frozen=True, slots=True)
class DeleteCron:
    """Remove a cron entry; removing one that does not exist does nothing."""

    tenant: str
    name: str


@dataclass(frozen=True, slots=True)
class AssignUid:
    """Record the uid a tenant's workers run as (``isolation.py``): given once, kept forever.
    The uid column is UNIQUE, so two tenants can never be given the same uid."""

    tenant: str
    uid: int


@dataclass(frozen=True, slots=True)
class PutCode:
    """Record the options a tenant's function declares in code, as its worker reported them
    (``daemon/codeoptions.py``; ``options`` is msgpack), replacing the previous report;
    ``options`` None deletes the row (the function declares none any more)."""

    tenant: str
    function: str
    options: bytes | None


@dataclass(frozen=True, slots=True)
class Touch:
    """Write the time into ``meta``: a real write, so its commit tells whether the disk takes
    writes again (the daemon probes with it while storage is failing and nothing else waits)."""

    at: float


Op = (
    InsertTask
    | UpdateTask
    | DeleteTask
    | ReplaceTask
    | SetPause
    | ClearPause
    | PutCron
    | DeleteCron
    | AssignUid
    | PutCode
    | Touch
)


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """A history query; every field is optional and the given ones must all match.

    ``tenants=None`` means every tenant, ``()`` means none (the caller may see no tenant).
    ``id_prefix`` matches literally: ``%``, ``_``, ``*`` and ``[`` are ordinary characters.
    ``since`` is inclusive and ``until`` exclusive, both on ``created_at``, so consecutive
    windows never count a task twice. Pages come newest first: by ``created_at``, then ``seq``
    (``seq`` breaks ties). ``before`` is the pagination cursor: the (``created_at``, ``seq``)
    of the last row of the previous page, to get the next (older) page.
    """

    tenants: tuple[str, ...] | None = None
    states: tuple[TaskState, ...] = ()
    queue: str | None = None
    function: str | None = None
    id_prefix: str | None = None
    since: float | None = None
    until: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    before: tuple[float, int] | None = None
    trace_id: str | None = None

    @classmethod
    def from_query(cls, query: ListQuery) -> TaskFilter:
        """The filter of a validated ``list`` request (its ``limit`` goes to ``list_tasks``)."""
        return cls(
            tenants=query.tenants,
            states=query.states,
            queue=query.queue,
            function=query.function,
            id_prefix=query.prefix,
            since=query.since,
            until=query.until,
            labels=dict(query.labels),
            before=query.before,
            trace_id=query.trace_id,
        )
