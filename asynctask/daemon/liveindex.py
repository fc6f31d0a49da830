"""The daemon's live tasks by (tenant, ID), stored per tenant.

A plain ``dict`` keyed by ``(tenant, id)`` tuples costs a 56-byte tuple per task for as long
as the task lives, about an eighth of a queued task's memory; one dict of IDs per tenant keeps
only the ID strings the tasks hold anyway. Callers still speak in ``(tenant, id)`` keys.
"""

from __future__ import annotations

from collections.abc import Iterator

from asynctask.model import LiveTask

Key = tuple[str, str]


class LiveIndex:
    __slots__ = ("_by_tenant", "_count")

    def __init__(self) -> None:
        self._by_tenant: dict[str, dict[str, LiveTask]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: Key) -> bool:
        tasks = self._by_tenant.get(key[0])
        return tasks is not None and key[1] in tasks

    def get(self, key: Key) -> LiveTask | None:
        tasks = self._by_tenant.get(key[0])
        return None if tasks is None else tasks.get(key[1])

    def __getitem__(self, key: Key) -> LiveTask:
        return self._by_tenant[key[0]][key[1]]

    def __setitem__(self, key: Key, task: LiveTask) -> None:
        tasks = self._by_tenant.get(key[0])
        if tasks is None:
            tasks = self._by_tenant[key[0]] = {}
        if key[1] not in tasks:
            self._count += 1
        tasks[key[1]] = task

    def __delitem__(self, key: Key) -> None:
        if self.pop(key, None) is None:
            raise KeyError(key)

    def pop(self, key: Key, default: LiveTask | None = None) -> LiveTask | None:
        tasks = self._by_tenant.get(key[0])
        if tasks is None or key[1] not in tasks:
            return default
        self._count -= 1
        task = tasks.pop(key[1])
        if not tasks:
            del self._by_tenant[key[0]]
        return task

    def values(self) -> Iterator[LiveTask]:
        for tasks in list(self._by_tenant.values()):
            yield from list(tasks.values())
