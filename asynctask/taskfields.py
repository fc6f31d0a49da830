"""The fields of a task, defined once.

Every other list of a task's fields is generated from this table by ``scripts/taskfields.py``
(``make lint`` fails when one is stale): ``LiveTask`` in ``model.py``; ``TaskRow`` and
``UpdateTask`` in ``store/rows.py``; the column lists in ``store/schema.py``; the row codec in
``store/codec.py``; and the mappings between them and the client's view in ``daemon/views.py``.

To add a field: add a ``TaskField`` here, add its column to the schema with a migration
(``store/schema.py``) if it is stored, run ``python scripts/taskfields.py``, and test what it
does. ``tests/test_taskfields.py`` checks that the migrated database's ``tasks`` table has exactly
the stored fields.

The order is ``LiveTask``'s parameter order (required fields first), and also the column order
of reads and inserts; the database's own column order does not matter, since every statement
names its columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class TaskField:
    name: str
    #: The annotation, as the generated code spells it.
    type: str
    #: The default expression, or ``None`` for a required field.
    default: str | None = None
    #: How the store keeps it: ``None`` (not a column: ``from_row`` gives it), ``"plain"``,
    #: ``"state"`` (its value text), ``"options"`` (msgpack map), ``"labels"`` (JSON map),
    #: ``"json"`` (optional JSON), ``"msgpack"`` (optional msgpack), ``"bool"``.
    column: str | None = "plain"
    #: Changes after submit, so every ``UpdateTask`` writes it.
    mutable: bool = False
    #: A number column checked on read: ``"int"``, ``"float"`` or ``"float?"`` (or NULL).
    number: str | None = None
    #: For a field that is not a column: its value in terms of the row's ``options``.
    from_row: str | None = None
    #: Why the field exists, when its name does not say it (a ``#:`` comment on ``TaskRow``).
    doc: str | None = None


FIELDS: Final = (
    TaskField("seq", "int", doc="assigned by the daemon at submit, so it is known before commit"),
    TaskField("tenant", "str"),
    TaskField("id", "str"),
    TaskField("function", "str"),
    TaskField("queue", "str"),
    TaskField("priority", "int", number="int"),
    TaskField("state", "TaskState", column="state", mutable=True),
    TaskField("payload", "bytes", doc="msgpack of [args, kwargs]; the store never looks into it"),
    TaskField("options", "dict[str, Any]", column="options"),
    TaskField("labels", "dict[str, str]", column="labels"),
    TaskField("retries", "int", column=None, from_row='int(options.get("retries", 0))'),
    TaskField("timeout", "float | None", column=None, from_row='options.get("timeout")'),
    TaskField("created_at", "float", number="float"),
    TaskField("due_at", "float | None", "None", mutable=True, number="float?"),
    TaskField(
        "expires_at", "float | None", "None", column=None, from_row='options.get("expires_at")'
    ),
    TaskField("attempts", "int", "0", mutable=True, number="int"),
    TaskField("started_at", "float | None", "None", mutable=True, number="float?"),
    TaskField("finished_at", "float | None", "None", mutable=True, number="float?"),
    TaskField("result", "bytes | None", "None", mutable=True, doc="msgpack of the return value"),
    TaskField("error", "dict[str, Any] | None", "None", column="json", mutable=True),
    TaskField(
        "errors",
        "list[dict[str, Any]] | None",
        "None",
        column="json",
        mutable=True,
        doc="every failed attempt's error, oldest first",
    ),
    TaskField(
        "held",
        "bool",
        "False",
        column="bool",
        mutable=True,
        doc="paused by selector: waiting, but out of the scheduler's queues",
    ),
    TaskField(
        "trace_id",
        "str | None",
        "None",
        doc="the client's, for joining its own traces; never changes",
    ),
    TaskField(
        "trace",
        "list[list[float | None]] | None",
        "None",
        column="msgpack",
        mutable=True,
        doc="[attempt, eligible, dispatched, started, finished] per ended attempt",
    ),
)

#: The client's view of a task (``status``, ``wait``, ``list``): (key, expression of ``task``),
#: in the order clients see them.
VIEW: Final = (
    ("id", "task.id"),
    ("state", "str(task.state)"),
    ("tenant", "task.tenant"),
    ("queue", "task.queue"),
    ("function", "task.function"),
    ("priority", "task.priority"),
    ("attempts", "task.attempts"),
    ("retries", "task.retries"),
    ("result", "task.result"),
    ("error", "task.error"),
    ("errors", "task.errors or []"),
    ("paused", "task.held"),
    ("labels", "task.labels"),
    ("created_at", "task.created_at"),
    ("due_at", "task.due_at"),
    ("started_at", "task.started_at"),
    ("finished_at", "task.finished_at"),
    ("trace_id", "task.trace_id"),
    ("trace", "stage_views(task.created_at, task.trace)"),
)

#: Fields the view leaves out on purpose: the payload can be large and is not the caller's
#: business once submitted; the rest are internal or shown through ``retries`` and ``due_at``.
NOT_IN_VIEW: Final = frozenset({"seq", "payload", "options", "timeout", "expires_at"})

STORED: Final = tuple(f for f in FIELDS if f.column is not None)
MUTABLE: Final = tuple(f for f in FIELDS if f.mutable)
