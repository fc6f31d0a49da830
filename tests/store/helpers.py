"""Rows to store, and the reference answers a store's queries must agree with."""

from __future__ import annotations

import random
from typing import Any

from asynctask.model import TaskState
from asynctask.store import TaskFilter, TaskRow

ALL_STATES = tuple(TaskState)
LIVE = (TaskState.SCHEDULED, TaskState.QUEUED, TaskState.RUNNING)

#: IDs that break naive prefix matching: LIKE wildcards, GLOB classes, escapes, non-ASCII.
TRICKY_IDS = (
    "a%b",
    "a%",
    "ab",
    "a_b",
    "axb",
    "a*c",
    "a?c",
    "abc",
    "[x]1",
    "[x]",
    "x1",
    "back\\slash",
    "back\\",
    "backs",
    "quote'1",
    'dq"1',
    "é-1",
    "e-1",
    "\U0010ffff\U0010ffff",
    "zz",
)


def make_row(seq: int, **fields: Any) -> TaskRow:
    values: dict[str, Any] = {
        "seq": seq,
        "tenant": "default",
        "id": f"task-{seq:06d}",
        "function": "app.tasks:work",
        "queue": "default",
        "priority": 5,
        "state": TaskState.QUEUED,
        "payload": b"\x92\x91\x01\x80",
        "options": {"retries": 3, "timeout": 30.0},
        "labels": {},
        "attempts": 0,
        "result": None,
        "error": None,
        "created_at": 1_700_000_000.0 + seq,
        "due_at": None,
        "started_at": None,
        "finished_at": None,
    }
    values.update(fields)
    return TaskRow(**values)


def seeded_rows(count: int = 300, seed: int = 7) -> list[TaskRow]:
    """A varied history: every state, three tenants, tricky IDs and labels, clustered times."""
    rng = random.Random(seed)
    rows = []
    for seq in range(1, count + 1):
        tenant = rng.choice(("acme", "globex", "default"))
        base_id = TRICKY_IDS[seq % len(TRICKY_IDS)]
        labels = {}
        for key, values in (("env", ("prod", "dev")), ("k.x", ("1", "2")), ('q"k', ("v",))):
            if rng.random() < 0.4:
                labels[key] = rng.choice(values)
        rows.append(
            make_row(
                seq,
                tenant=tenant,
                # unique per tenant: the tricky part first, so prefixes of it match several
                id=f"{base_id}{seq}",
                function=rng.choice(("app:a", "app:b", "other:c")),
                queue=rng.choice((tenant, "exclusive")),
                priority=rng.randint(0, 9),
                state=rng.choice(ALL_STATES),
                labels=labels,
                created_at=1_700_000_000.0 + rng.randint(0, 50) * 10.0,
            )
        )
    return rows


def matches(row: TaskRow, f: TaskFilter) -> bool:
    """The meaning of ``TaskFilter``, written the obvious way."""
    return (
        (f.tenants is None or row.tenant in f.tenants)
        and (not f.states or row.state in f.states)
        and (f.queue is None or row.queue == f.queue)
        and (f.function is None or row.function == f.function)
        and (not f.id_prefix or row.id.startswith(f.id_prefix))
        and (f.since is None or row.created_at >= f.since)
        and (f.until is None or row.created_at < f.until)
        and all(row.labels.get(key) == value for key, value in f.labels.items())
        and (f.before is None or (row.created_at, row.seq) < f.before)
    )


def expected(rows: list[TaskRow], f: TaskFilter, limit: int) -> list[int]:
    """The ``seq``s ``list_tasks(f, limit)`` must return, newest (created_at, seq) first."""
    chosen = sorted((row for row in rows if matches(row, f)), key=page_key, reverse=True)
    return [row.seq for row in chosen[:limit]]


def page_key(row: TaskRow) -> tuple[float, int]:
    """A task's place in history pages, and what a page cursor holds."""
    return row.created_at, row.seq
