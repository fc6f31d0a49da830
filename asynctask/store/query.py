"""``TaskFilter`` to one parameterized ``SELECT``; no user text is ever spliced into SQL.

Two filters need care:

* **ID prefix.** ``LIKE`` would treat ``%`` and ``_`` in the prefix as wildcards and ``GLOB``
  ``*``, ``?`` and ``[``. A half-open range ``id >= prefix AND id < successor(prefix)`` has no
  special characters at all and walks the (tenant, id) index. SQLite's default BINARY collation
  compares UTF-8 bytes, which orders strings like Python compares code points, so the successor
  is computed in Python: the prefix with its last character incremented.
* **Labels.** ``json_extract`` takes the key inside a JSON path, where a key holding ``"`` or
  ``\\`` cannot be written (SQLite's path syntax has no escapes) and a non-ASCII key must match
  its stored escape. Label keys are free text (up to 128 characters), so each wanted label is an
  ``EXISTS`` over ``json_each(labels)``, which decodes keys and values and takes both as
  parameters.
"""

from __future__ import annotations

from typing import Any, Final

from asynctask.store import plan
from asynctask.store.rows import TaskFilter

_MAX_CODE_POINT: Final = 0x10FFFF
_SURROGATES: Final = range(0xD800, 0xE000)

_LABEL_MATCH: Final = (
    "EXISTS (SELECT 1 FROM json_each(tasks.labels) WHERE json_each.key = ? "
    "AND json_each.value = ? AND json_each.type = 'text')"
)


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``.

    ``None`` when there is none (the prefix is only U+10FFFF characters, or empty): then the
    range has no upper bound.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code in _SURROGATES:  # not encodable in UTF-8; the next character after them
            code = _SURROGATES.stop
        if code <= _MAX_CODE_POINT:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def list_sql(
    f: TaskFilter,
    limit: int,
    prefix_is_narrow: bool = False,
    narrow_label: tuple[str, str] | None = None,
) -> tuple[str, list[Any]]:
    """The query and parameters of ``list_tasks``: newest first (``created_at``, then ``seq``),
    at most ``limit`` rows, along the index ``plan.choose`` picks. ``prefix_is_narrow``: the
    answer of ``prefix_probe_sql``; ``narrow_label``: the label ``label_probe_sql`` found rare.

    A walk of ``task_labels`` compares the times and the cursor on the label rows (``l.``,
    equal to the task's for every joined pair), so they bound the walk itself.
    """
    plan_ = plan.choose(f, prefix_is_narrow, narrow_label)
    at = "l." if plan_.by_label else ""
    where: list[str] = []
    params: list[Any] = []
    if f.tenants is not None:
        where.append(f"tenant IN ({', '.join('?' for _ in f.tenants)})")
        params.extend(f.tenants)
    if f.states:
        where.append(f"state IN ({', '.join('?' for _ in f.states)})")
        params.extend(state.value for state in f.states)
    if f.queue is not None:
        where.append("queue = ?")
        params.append(f.queue)
    if f.function is not None:
        where.append("function = ?")
        params.append(f.function)
    if f.id_prefix:
        where.append("id >= ?")
        params.append(f.id_prefix)
        upper = prefix_successor(f.id_prefix)
        if upper is not None:
            where.append("id < ?")
            params.append(upper)
    if f.since is not None:
        where.append(f"{at}created_at >= ?")
        params.append(f.since)
    if f.until is not None:
        where.append(f"{at}created_at < ?")
        params.append(f.until)
    for key, value in f.labels.items():
        if narrow_label == (key, value):
            continue  # the walked label
        where.append(_LABEL_MATCH)
        params.extend((key, value))
    if f.trace_id is not None:
        where.append("trace_id = ?")
        params.append(f.trace_id)
    if f.before is not None:
        # The walk's range is ``created_at <= ?``; the OR only sorts out ties on created_at.
        created_at, seq = f.before
        where.append(f"{at}created_at <= ? AND ({at}created_at < ? OR {at}seq < ?)")
        params.extend((created_at, created_at, seq))
    return plan_.sql(where, params, limit)


def label_probe_sql(key: str, value: str) -> tuple[str, list[Any]]:
    """How many tasks (up to ``plan.NARROW_LABEL_ROWS``) carry the label ``key=value``."""
    return (
        "SELECT count(*) FROM (SELECT 1 FROM task_labels WHERE key = ? AND value = ? LIMIT ?)",
        [key, value, plan.NARROW_LABEL_ROWS],
    )


#: Rows of an ID prefix's range up to which ``list_tasks`` reads the range and sorts it
#: (``plan`` rule 2): about a millisecond of index reads, and a sort of as many rows.
NARROW_PREFIX_ROWS: Final = 2_000


def prefix_probe_sql(f: TaskFilter) -> tuple[str, list[Any]] | None:
    """How many rows (up to ``NARROW_PREFIX_ROWS``) the tenants' ID-prefix ranges hold, or
    ``None`` when ``f`` has no tenants and prefix (then ``plan`` does not need to know)."""
    if not f.id_prefix or not f.tenants:
        return None
    conditions = [f"tenant IN ({', '.join('?' for _ in f.tenants)})", "id >= ?"]
    params: list[Any] = [*f.tenants, f.id_prefix]
    upper = prefix_successor(f.id_prefix)
    if upper is not None:
        conditions.append("id < ?")
        params.append(upper)
    sql = (
        "SELECT count(*) FROM (SELECT 1 FROM tasks INDEXED BY tasks_tenant_id "
        f"WHERE {' AND '.join(conditions)} LIMIT ?)"
    )
    return sql, [*params, NARROW_PREFIX_ROWS]
