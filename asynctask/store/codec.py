"""``TaskRow`` to SQL parameters and back.

Encoding happens in ``Store.put``, on the caller's turn, not in the writer: an op that cannot be
encoded (options msgpack cannot pack, an error dict JSON cannot write) is refused on its own
there, instead of failing the whole batch it would have joined, and the writer's turn stays
short. Decoding runs as the read cursor's ``row_factory``, in aiosqlite's thread while SQLite
steps, and is written for the start-up scan of a million live rows: positional construction,
a dict lookup for the state, and a cache for the few distinct ``options`` and ``labels`` that
most rows share.

``options`` is a msgpack blob (it holds what the daemon packs anyway, bytes included);
``labels`` and ``error`` are JSON text so ``json_each`` can filter on them in SQL. JSON is
written ASCII-only: ``\\u`` escapes keep a lone surrogate from failing the commit, and SQLite's
JSON functions decode them.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, Final

import msgpack

from asynctask.model import TaskState
from asynctask.store.errors import StoreError, describe
from asynctask.store.rows import (
    AssignUid,
    ClearPause,
    DeleteCron,
    DeleteTask,
    InsertTask,
    Op,
    PutCode,
    PutCron,
    ReplaceTask,
    SetPause,
    SkippedRow,
    TaskRow,
    Touch,
    UpdateTask,
)

#: One SQL parameter tuple (positional, in the statement's order).
Params = tuple[Any, ...]

#: What ``decode_row`` raises on a row this code did not write (besides ``ValueError``, which
#: ``errors.map_errors`` already maps): an unknown state, a blob msgpack cannot read.
DECODE_ERRORS: Final = (KeyError, TypeError, IndexError, msgpack.UnpackException)

_STATES: Final = {state.value: state for state in TaskState}
_EMPTY_MAP_MSGPACK: Final[bytes] = msgpack.packb({})
_EMPTY_MAP_JSON: Final = "{}"
_json_loads = json.loads
_CACHE_LIMIT: Final = 1_024
_IMMUTABLE: Final = (str, int, float, bool, bytes, type(None))
_unpackb = msgpack.unpackb
_packb = msgpack.packb
#: Payloads up to this size are shared by ``row_decoder(shared=True)``.
_SMALL_PAYLOAD: Final = 64


def _dump_json(value: dict[str, Any] | list[Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


#: The packed form of recently encoded ``options`` maps, by identity (the map is kept, so its
#: ``id`` cannot be reused while it is here). Most tasks share one interned map
#: (``daemon/interning.py``), so a submit of a hundred tasks packs it once. Maps are read-only
#: once made (a change builds a new one), which is what makes the identity a valid key.
_packed_options: dict[int, tuple[dict[str, Any], bytes]] = {}


def _pack_options(options: dict[str, Any]) -> bytes:
    if not options:
        return _EMPTY_MAP_MSGPACK
    known = _packed_options.get(id(options))
    if known is not None and known[0] is options:
        return known[1]
    packed: bytes = msgpack.packb(options, use_bin_type=True)
    if len(_packed_options) >= _CACHE_LIMIT:
        _packed_options.clear()
    _packed_options[id(options)] = (options, packed)
    return packed


# <generated taskfields:row_params>
def row_params(row: TaskRow) -> Params:
    """The ``INSERT`` parameters of a row, in ``schema.COLUMNS`` order."""
    try:
        options = _pack_options(row.options)
        labels = _dump_json(row.labels) if row.labels else _EMPTY_MAP_JSON
        error = None if row.error is None else _dump_json(row.error)
        errors = None if row.errors is None else _dump_json(row.errors)
        trace = None if row.trace is None else _packb(row.trace)
    except (TypeError, ValueError, OverflowError) as exc:
        raise StoreError(f"cannot encode task {row.tenant}/{row.id}: {exc}") from exc
    return (
        row.seq,
        row.tenant,
        row.id,
        row.function,
        row.queue,
        row.priority,
        row.state.value,
        row.payload,
        options,
        labels,
        row.created_at,
        row.due_at,
        row.attempts,
        row.started_at,
        row.finished_at,
        row.result,
        error,
        errors,
        row.held,
        row.trace_id,
        trace,
    )


# </generated taskfields:row_params>


# <generated taskfields:update_params>
def update_params(op: UpdateTask) -> Params:
    """The ``UPDATE`` parameters of an op, in ``schema.UPDATE`` order."""
    try:
        error = None if op.error is None else _dump_json(op.error)
        errors = None if op.errors is None else _dump_json(op.errors)
        trace = None if op.trace is None else _packb(op.trace)
    except (TypeError, ValueError, OverflowError) as exc:
        raise StoreError(f"cannot encode the error of task seq={op.seq}: {exc}") from exc
    return (
        op.state.value,
        op.due_at,
        op.attempts,
        op.started_at,
        op.finished_at,
        op.result,
        error,
        errors,
        op.held,
        trace,
        op.seq,
    )


# </generated taskfields:update_params>


def encode(op: Op) -> tuple[type[Op], Params]:
    """An op as (its kind, its parameters): what the writer groups into ``executemany`` runs.

    A ``ReplaceTask`` becomes ``(old_seq, new_seq, insert parameters)``.
    """
    if isinstance(op, InsertTask):
        return InsertTask, row_params(op.row)
    if isinstance(op, UpdateTask):
        return UpdateTask, update_params(op)
    if isinstance(op, DeleteTask):
        return DeleteTask, (op.seq,)
    if isinstance(op, ReplaceTask):
        return ReplaceTask, (op.old_seq, op.row.seq, row_params(op.row))
    if isinstance(op, SetPause | ClearPause):
        return type(op), (op.kind, op.tenant, op.name)
    if isinstance(op, PutCron):
        return PutCron, (op.tenant, op.name, op.definition)
    if isinstance(op, DeleteCron):
        return DeleteCron, (op.tenant, op.name)
    if isinstance(op, AssignUid):
        return AssignUid, (op.tenant, op.uid)
    if isinstance(op, PutCode):
        return PutCode, (op.tenant, op.function, op.options)
    if isinstance(op, Touch):
        return Touch, (op.at,)
    raise StoreError(f"not a store operation: {op!r}")


def row_decoder(
    shared: bool = False, skipped: list[SkippedRow] | None = None, check_text: bool = False
) -> Callable[[sqlite3.Cursor, tuple[Any, ...]], TaskRow | None]:
    """A cursor ``row_factory`` turning ``tasks`` rows (``schema.COLUMNS`` order) into ``TaskRow``.

    Make one per query. It remembers the decoded ``options`` and ``labels`` of the first
    ``_CACHE_LIMIT`` distinct blobs it meets, because most tasks of one function carry the same
    ones; a hit costs a dict copy instead of a parse. Only flat maps of immutable values are
    remembered, so the shallow copy each row gets shares nothing mutable with another row.

    ``shared=True`` is for a backlog kept in memory (start-up recovery): equal ``options`` and
    ``labels`` are then the *same* dict, not copies, and equal names and small payloads the
    same object - a million queued tasks repeat a few of each. Such rows are read-only.

    With ``skipped``, a row that cannot be decoded becomes ``None`` and its key and the reason
    are appended there (start-up recovery: one bad row must not stop the daemon); without, its
    error is raised. ``check_text`` refuses text that had to be escaped (read with the
    ``surrogateescape`` text factory because it is not UTF-8).
    """
    options_cache: dict[bytes, dict[str, Any]] = {_EMPTY_MAP_MSGPACK: {}}
    labels_cache: dict[str, dict[str, str]] = {_EMPTY_MAP_JSON: {}}
    payloads: dict[bytes, bytes] = {}
    intern = sys.intern

    def decode(_cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> TaskRow:
        # <generated taskfields:decode_unpack>
        (
            seq,
            tenant,
            task_id,
            function,
            queue,
            priority,
            state,
            payload,
            options_blob,
            labels_text,
            created_at,
            due_at,
            attempts,
            started_at,
            finished_at,
            result,
            error,
            errors,
            held,
            trace_id,
            trace,
        ) = row
        # </generated taskfields:decode_unpack>
        # <generated taskfields:decode_check>
        if not (  # SQLite keeps what it cannot convert ('x' in an INTEGER column) as it is
            type(priority) is int
            and type(created_at) is float
            and (due_at is None or type(due_at) is float)
            and type(attempts) is int
            and (started_at is None or type(started_at) is float)
            and (finished_at is None or type(finished_at) is float)
        ):
            raise TypeError(_mistyped(row))
        # </generated taskfields:decode_check>
        options = options_cache.get(options_blob)
        if options is None:
            options = _unpackb(options_blob, raw=False, strict_map_key=False)
            if len(options_cache) < _CACHE_LIMIT and _is_flat(options):
                options_cache[options_blob] = options if shared else dict(options)
        elif not shared:
            options = dict(options)
        labels = labels_cache.get(labels_text)
        if labels is None:
            labels = _json_loads(labels_text)
            if len(labels_cache) < _CACHE_LIMIT:
                labels_cache[labels_text] = labels if shared else dict(labels)
        elif not shared:
            labels = dict(labels)
        if shared:
            tenant, function, queue = intern(tenant), intern(function), intern(queue)
            if len(payload) <= _SMALL_PAYLOAD:
                payload = payloads.setdefault(payload, payload)
        # <generated taskfields:decode_build>
        return TaskRow(
            seq,
            tenant,
            task_id,
            function,
            queue,
            priority,
            _STATES[state],
            payload,
            options,
            labels,
            created_at,
            due_at,
            attempts,
            started_at,
            finished_at,
            result,
            None if error is None else _json_loads(error),
            None if errors is None else _json_loads(errors),
            bool(held),
            trace_id,
            None if trace is None else _unpackb(trace),
        )
        # </generated taskfields:decode_build>

    if skipped is None:
        return decode

    def decode_or_skip(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> TaskRow | None:
        try:
            if check_text:
                for value in row:
                    if type(value) is str:
                        value.encode()  # UnicodeEncodeError: it held bytes that are not UTF-8
            return decode(cursor, row)
        except Exception as exc:  # whatever a hand-written or foreign row makes decoding raise
            skipped.append(SkippedRow(row[0], row[1], row[2], describe(exc)))
            return None

    return decode_or_skip


def _mistyped(row: tuple[Any, ...]) -> str:
    """Which of a row's number columns holds something else (``decode`` found one)."""
    # <generated taskfields:mistyped>
    columns = (
        ("priority", 5, int, False),
        ("created_at", 10, float, False),
        ("due_at", 11, float, True),
        ("attempts", 12, int, False),
        ("started_at", 13, float, True),
        ("finished_at", 14, float, True),
    )
    # </generated taskfields:mistyped>
    wrong = [
        f"{name} is {row[index]!r}"
        for name, index, kind, optional in columns
        if not ((optional and row[index] is None) or type(row[index]) is kind)
    ]
    return f"not a number: {', '.join(wrong)}"


def _is_flat(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(item, _IMMUTABLE) for item in value.values())
