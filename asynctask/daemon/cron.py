"""Periodic tasks: ``cron add``/``list``/``remove``, and the firing of due slots. A slot is
submitted with an ID made from the entry and the slot, so a slot fired twice (a restart in
between) is de-duplicated like any submit."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from asynctask.core.cron import CronSchedule, slot_id
from asynctask.daemon.crontab import CronEntry
from asynctask.daemon.views import Key
from asynctask.errors import UsageError
from asynctask.store import DeleteCron, PutCron

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon

log = logging.getLogger("asynctask.daemon")


class CronService:
    """The cron requests and slot firing of one daemon (see the module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._adding: Counter[Key] = Counter()  # entries being stored count toward max_cron

    def fire(self, entry: CronEntry, slot: float) -> None:
        """Submit one cron slot (its ID makes a repeat a no-op) and record it as fired."""
        submitted = self._daemon.background_task(self._daemon.intake.submit([entry.spec(slot)]))

        def done(task: asyncio.Task[list[dict[str, Any]]]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.warning("cron %s/%s: slot %s not submitted: %s", entry.tenant, entry.name,
                            slot_id(entry.name, slot), task.exception())  # fmt: skip

        submitted.add_done_callback(done)
        self._daemon.store.put(PutCron(entry.tenant, entry.name, entry.definition()))

    async def cron_add(
        self, tenant: str, name: str, schedule: CronSchedule, catch_up: str, task: dict[str, Any]
    ) -> dict[str, Any]:
        now = self._daemon.clock()
        entry = CronEntry(tenant, name, schedule, catch_up, task, created_at=now)
        key = (tenant, name)
        limit = self._daemon.scheduler.settings.tenant(tenant).max_cron
        if (
            not self._daemon.crons.has(tenant, name) and key not in self._adding
        ):  # not a replacement
            adding = sum(1 for owner, _ in self._adding if owner == tenant)
            entries = self._daemon.crons.count(tenant) + adding
            if entries >= limit:
                raise UsageError(
                    f"tenant {tenant!r} has {entries} cron entries, its limit ([tenants] "
                    f"max_cron = {limit}); remove one first (asynctask cron remove NAME)"
                )
        try:
            schedule.first_slot(now)  # checked by the request already; nothing stored if not
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self._adding[key] += 1
        try:
            await self._daemon.store.put(PutCron(tenant, name, entry.definition()))
        finally:
            self._adding[key] -= 1
            if not self._adding[key]:
                del self._adding[key]
        self._daemon.crons.add(entry, now)
        self._daemon.engine.wake()
        log.info("cron %s/%s added: %r", tenant, name, schedule.expr)
        (view,) = [v for v in self._daemon.crons.entries(frozenset({tenant})) if v["name"] == name]
        return view

    def cron_list(self, tenants: frozenset[str] | None) -> list[dict[str, Any]]:
        return self._daemon.crons.entries(tenants)

    async def cron_remove(self, tenant: str, name: str) -> bool:
        if not self._daemon.crons.remove(tenant, name):
            return False
        await self._daemon.store.put(DeleteCron(tenant, name))
        log.info("cron %s/%s removed", tenant, name)
        return True
