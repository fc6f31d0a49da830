"""The state the user steers with keys, and the pure key handler.

The highlighted queue is remembered by its ``(tenant, queue)`` name, not by its row number:
rows come and go between snapshots (a queue appears, the filter changes), and the highlight must
stay on the queue the user chose rather than slide onto a neighbour that a ``p`` would then pause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

Snapshot = Mapping[str, Any]
QueueKey = tuple[str, str]

HELP = "↑↓/jk select  p pause  r resume  space toggle  t tenant  q quit"


@dataclass(frozen=True, slots=True)
class ViewState:
    """``tenant``: the filter (None: every tenant); ``selected``: the highlighted queue;
    ``message``: the status line (the outcome of the last action)."""

    tenant: str | None = None
    selected: QueueKey | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    """Something the loop must do for the user: pause or resume a queue, or quit."""

    kind: Literal["pause", "resume", "quit"]
    tenant: str = ""
    queue: str = ""


QUIT = Action("quit")


def tenants_of(snapshot: Snapshot) -> list[str]:
    """Every tenant the snapshot names, sorted: the cycle ``t`` walks through."""
    names = {row["tenant"] for row in snapshot.get("tenants", ())}
    names.update(row["tenant"] for row in snapshot.get("queues", ()))
    return sorted(names)


def visible(rows: Sequence[Mapping[str, Any]], tenant: str | None) -> list[Mapping[str, Any]]:
    """The rows the tenant filter lets through (rows without a tenant always pass)."""
    if tenant is None:
        return list(rows)
    return [row for row in rows if row.get("tenant", tenant) == tenant]


def visible_queues(snapshot: Snapshot, tenant: str | None) -> list[Mapping[str, Any]]:
    """The queue rows on screen, in the order the cursor moves through them."""
    rows = visible(snapshot.get("queues", ()), tenant)
    return sorted(rows, key=lambda row: (row["tenant"], row["queue"]))


def current(snapshot: Snapshot, state: ViewState) -> QueueKey | None:
    """The queue the highlight is on: the chosen one if still shown, else the first row."""
    keys = [(row["tenant"], row["queue"]) for row in visible_queues(snapshot, state.tenant)]
    if state.selected in keys:
        return state.selected
    return keys[0] if keys else None


def _move(snapshot: Snapshot, state: ViewState, delta: int) -> ViewState:
    keys = [(row["tenant"], row["queue"]) for row in visible_queues(snapshot, state.tenant)]
    if not keys:
        return replace(state, selected=None)
    here = current(snapshot, state)
    index = keys.index(here) if here in keys else 0
    return replace(state, selected=keys[max(0, min(len(keys) - 1, index + delta))])


def _next_tenant(snapshot: Snapshot, state: ViewState) -> ViewState:
    """all -> each tenant in turn -> all."""
    names = tenants_of(snapshot)
    if state.tenant is None:
        tenant = names[0] if names else None
    elif state.tenant in names and names.index(state.tenant) + 1 < len(names):
        tenant = names[names.index(state.tenant) + 1]
    else:
        tenant = None
    moved = replace(state, tenant=tenant)
    return replace(moved, selected=current(snapshot, moved))


def _pause_action(snapshot: Snapshot, state: ViewState, key: str) -> Action | None:
    here = current(snapshot, state)
    if here is None:
        return None
    if key == " ":
        row = next(
            row for row in snapshot.get("queues", ()) if (row["tenant"], row["queue"]) == here
        )
        key = "r" if row["paused"] else "p"
    return Action("pause" if key == "p" else "resume", *here)


def on_key(snapshot: Snapshot, state: ViewState, key: str) -> tuple[ViewState, Action | None]:
    """The new state after ``key``, and what the loop must do (None: just redraw)."""
    if key in ("q", "Q", "eof"):
        return state, QUIT
    if key in ("up", "k"):
        return _move(snapshot, state, -1), None
    if key in ("down", "j"):
        return _move(snapshot, state, +1), None
    if key == "t":
        return _next_tenant(snapshot, state), None
    if key in ("p", "r", " "):
        return state, _pause_action(snapshot, state, key)
    return state, None
