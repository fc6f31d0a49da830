"""The daemon's cron entries: which are due, and what each slot submits.

An entry is a tenant's named schedule (``core/cron.py``) plus the task to submit at each slot.
Entries live in the store (``crons`` table) and in a heap by next slot here; the daemon asks
``due(now)`` on every step and arms its timer for ``next_at()``, so waiting entries cost
nothing. Each slot is submitted with the ID ``cron:<name>:<slot>`` (``core.cron.slot_id``), so
de-duplication by ID makes a slot run once even when a restart fires it again.

A stored entry that cannot be used (its definition does not decode, or its schedule has no next
slot: written by an older version, or by hand) must not stop the daemon: ``set_aside`` keeps it
out of the heap but listed, with its error and no next slot, so ``cron remove`` can delete it
from the store without anyone editing SQLite.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from asynctask import protocol
from asynctask.core.cron import CronSchedule, slot_id
from asynctask.errors import AsynctaskError
from asynctask.model import SubmitSpec


@dataclass(slots=True)
class CronEntry:
    tenant: str
    name: str
    schedule: CronSchedule
    catch_up: str
    task: dict[str, Any]  # function, payload, and the submit options queue/priority/...
    created_at: float
    last_slot: float | None = None
    generation: int = field(default=0, compare=False)

    def same_schedule(self, other: CronEntry) -> bool:
        """Whether ``other`` is this entry as another daemon stored it, apart from the last
        slot fired (docs/scale-out.md: daemons sharing a database follow each other's
        entries)."""
        return _schedule_key(self) == _schedule_key(other)

    def definition(self) -> bytes:
        return protocol.pack(
            {
                "expr": self.schedule.expr,
                "tz": self.schedule.tz,
                "catch_up": self.catch_up,
                "task": self.task,
                "created_at": self.created_at,
                "last_slot": self.last_slot,
            }
        )

    @classmethod
    def from_definition(cls, tenant: str, name: str, blob: bytes) -> CronEntry:
        raw = protocol.unpack(blob)
        return cls(
            tenant=tenant,
            name=name,
            schedule=CronSchedule(raw["expr"], raw["tz"]),
            catch_up=raw["catch_up"],
            task=raw["task"],
            created_at=raw["created_at"],
            last_slot=raw["last_slot"],
        )

    def spec(self, slot: float) -> SubmitSpec:
        task = self.task
        return SubmitSpec(
            function=task["function"],
            payload=task["payload"],
            tenant=self.tenant,
            id=slot_id(self.name, slot),
            queue=task.get("queue"),
            priority=task.get("priority"),
            retries=task.get("retries"),
            timeout=task.get("timeout"),
            labels={**task.get("labels", {}), "cron": self.name},
            limits=task.get("limits"),
            resources=task.get("resources"),
            defaults=task.get("defaults"),
        )

    def view(self, next_at: float | None) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "name": self.name,
            "expr": self.schedule.expr,
            "tz": self.schedule.tz,
            "catch_up": self.catch_up,
            "function": self.task["function"],
            "last_slot": self.last_slot,
            "next_at": next_at,
        }


def _unusable_view(tenant: str, name: str, blob: bytes, reason: str) -> dict[str, Any]:
    """What ``cron list`` shows of an entry set aside: what can still be read of it."""
    try:
        raw = protocol.unpack(blob)
    except Exception:  # the definition itself is what is broken
        raw = None
    if not isinstance(raw, dict):
        raw = {}
    task = raw.get("task")
    if not isinstance(task, dict):
        task = {}

    def text(value: Any) -> str:
        return value if isinstance(value, str) else "?"

    return {
        "tenant": tenant,
        "name": name,
        "expr": text(raw.get("expr")),
        "tz": text(raw.get("tz")),
        "catch_up": text(raw.get("catch_up")),
        "function": text(task.get("function")),
        "last_slot": None,
        "next_at": None,
        "error": reason,
    }


def describe(exc: BaseException) -> str:
    """An error as one line that is never empty (msgpack's ``FormatError`` has no message)."""
    text = str(exc)
    if isinstance(exc, AsynctaskError | ValueError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _schedule_key(entry: CronEntry) -> tuple[Any, ...]:
    schedule = entry.schedule
    return (schedule.expr, schedule.tz, entry.catch_up, entry.task, entry.created_at)


class CronTable:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], CronEntry] = {}
        self._heap: list[tuple[float, str, str, int]] = []
        self._next: dict[tuple[str, str], float] = {}
        self._unusable: dict[tuple[str, str], dict[str, Any]] = {}  # set aside: their views

    def __len__(self) -> int:
        return len(self._entries)

    def load(self, entry: CronEntry, now: float) -> list[float]:
        """Take an entry stored before a restart; returns the missed slots to fire now.

        ``ValueError`` (nothing taken) when its schedule has no slot after ``now``."""
        first = entry.schedule.first_slot(now, within=math.inf)
        since = entry.last_slot if entry.last_slot is not None else entry.created_at
        missed = entry.schedule.missed(since, now, entry.catch_up)
        old = self._entries.get((entry.tenant, entry.name))
        if old is not None:  # reloaded (a shared store): the old heap entries go stale
            entry.generation = old.generation + 1
        self._put(entry, first)
        return missed

    def load_stored(
        self, tenant: str, name: str, definition: bytes, now: float
    ) -> list[tuple[CronEntry, float]]:
        """``load`` from the store's row: the (entry, missed slot) pairs to fire now. An entry
        that cannot be used is set aside instead, and ``UnusableCron`` says why."""
        try:
            tenant.encode(), name.encode()  # text read escaped: it is not UTF-8
            entry = CronEntry.from_definition(tenant, name, definition)
            return [(entry, slot) for slot in self.load(entry, now)]
        except Exception as exc:  # anything stored by anyone: never fatal at start-up
            reason = describe(exc)
            self._unusable[(tenant, name)] = _unusable_view(tenant, name, definition, reason)
            raise UnusableCron(reason) from exc

    def add(self, entry: CronEntry, now: float) -> None:
        """Create or replace an entry; its first slot is the first after ``now``."""
        first = entry.schedule.next_after(now)  # raises before anything changes
        key = (entry.tenant, entry.name)
        old = self._entries.get(key)
        if old is not None:
            entry.generation = old.generation + 1
        self._unusable.pop(key, None)
        self._put(entry, first)

    def get(self, tenant: str, name: str) -> CronEntry | None:
        return self._entries.get((tenant, name))

    def keys(self) -> set[tuple[str, str]]:
        """Every entry's (tenant, name), usable or set aside."""
        return set(self._entries) | set(self._unusable)

    def has(self, tenant: str, name: str) -> bool:
        """Whether ``tenant`` has an entry ``name``, usable or set aside."""
        return (tenant, name) in self._entries or (tenant, name) in self._unusable

    def count(self, tenant: str) -> int:
        """The entries of ``tenant``, usable or set aside (``[tenants] max_cron`` bounds it).
        A pass over every entry: it is asked only by ``cron add``."""
        keys = itertools.chain(self._entries, self._unusable)
        return sum(1 for owner, _ in keys if owner == tenant)

    def remove(self, tenant: str, name: str) -> bool:
        self._next.pop((tenant, name), None)
        unusable = self._unusable.pop((tenant, name), None) is not None
        return self._entries.pop((tenant, name), None) is not None or unusable  # heap: stale

    def entries(self, tenants: frozenset[str] | None) -> list[dict[str, Any]]:
        views = {key: entry.view(self._next.get(key)) for key, entry in self._entries.items()}
        views.update(self._unusable)
        return [
            view
            for key, view in sorted(views.items())
            if tenants is None or view["tenant"] in tenants
        ]

    def due(self, now: float) -> list[tuple[CronEntry, float]]:
        """Slots that have come, oldest first; each entry moves on to its next slot."""
        fired = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            slot, tenant, name, generation = heapq.heappop(heap)
            entry = self._entries.get((tenant, name))
            if entry is None or entry.generation != generation:
                continue  # removed or replaced
            fired.append((entry, slot))
            entry.last_slot = slot
            try:
                self._schedule(entry, max(slot, now))
            except Exception as exc:  # no slot after this one: it stays listed, never fires
                self._set_aside_live(entry, describe(exc))
        return fired

    def next_at(self) -> float | None:
        heap = self._heap
        while heap:
            slot, tenant, name, generation = heap[0]
            entry = self._entries.get((tenant, name))
            if entry is not None and entry.generation == generation:
                return slot
            heapq.heappop(heap)
        return None

    def _put(self, entry: CronEntry, first: float) -> None:
        self._entries[(entry.tenant, entry.name)] = entry
        self._push(entry, first)

    def _schedule(self, entry: CronEntry, after: float) -> None:
        self._push(entry, entry.schedule.next_after(after))

    def _push(self, entry: CronEntry, slot: float) -> None:
        self._next[(entry.tenant, entry.name)] = slot
        heapq.heappush(self._heap, (slot, entry.tenant, entry.name, entry.generation))

    def _set_aside_live(self, entry: CronEntry, reason: str) -> None:
        key = (entry.tenant, entry.name)
        del self._entries[key]
        self._next.pop(key, None)
        self._unusable[key] = {**entry.view(None), "error": reason}


class UnusableCron(Exception):
    """Raised by ``CronTable.load_stored`` for a stored entry it set aside; the message says
    why. The daemon logs it and starts without that entry."""
