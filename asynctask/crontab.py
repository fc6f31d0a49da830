"""The daemon's cron entries: which are due, and what each slot submits.

An entry is a tenant's named schedule (``core/cron.py``) plus the task to submit at each slot.
Entries live in the store (``crons`` table) and in a heap by next slot here; the daemon asks
``due(now)`` on every step and arms its timer for ``next_at()``, so waiting entries cost
nothing. Each slot is submitted with the ID ``cron:<name>:<slot>`` (``core.cron.slot_id``), so
de-duplication by ID makes a slot run once even when a restart fires it again.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from asynctask import protocol
from asynctask.core.cron import CronSchedule, slot_id
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


class CronTable:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], CronEntry] = {}
        self._heap: list[tuple[float, str, str, int]] = []
        self._next: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def load(self, entry: CronEntry, now: float) -> list[float]:
        """Take an entry stored before a restart; returns the missed slots to fire now."""
        since = entry.last_slot if entry.last_slot is not None else entry.created_at
        missed = entry.schedule.missed(since, now, entry.catch_up)
        self._put(entry, now)
        return missed

    def add(self, entry: CronEntry, now: float) -> None:
        """Create or replace an entry; its first slot is the first after ``now``."""
        old = self._entries.get((entry.tenant, entry.name))
        if old is not None:
            entry.generation = old.generation + 1
        self._put(entry, now)

    def remove(self, tenant: str, name: str) -> bool:
        self._next.pop((tenant, name), None)
        return self._entries.pop((tenant, name), None) is not None  # heap entries go stale

    def entries(self, tenants: frozenset[str] | None) -> list[dict[str, Any]]:
        return [
            entry.view(self._next.get(key))
            for key, entry in sorted(self._entries.items())
            if tenants is None or entry.tenant in tenants
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
            self._schedule(entry, max(slot, now))
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

    def _put(self, entry: CronEntry, now: float) -> None:
        self._entries[(entry.tenant, entry.name)] = entry
        self._schedule(entry, now)

    def _schedule(self, entry: CronEntry, after: float) -> None:
        slot = entry.schedule.next_after(after)
        self._next[(entry.tenant, entry.name)] = slot
        heapq.heappush(self._heap, (slot, entry.tenant, entry.name, entry.generation))
