"""History retention: finished tasks older than ``history_days``, or past a tenant's own
``history_max``, are deleted in the background, in small transactions, with their attempt
logs. Live tasks are never touched."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from asynctask.config import DAY
from asynctask.store import DeleteTask, StoreError

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon

log = logging.getLogger("asynctask.daemon")

#: Finished tasks history retention deletes in one transaction (see ``History.purge``).
PURGE_BATCH = 500
#: Seconds between retention passes at most (``history_days / 10`` when that is shorter).
PURGE_INTERVAL = 60.0


class History:
    """The retention of one daemon (see the module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._engine = daemon.engine

    async def run(self, days: float, keep: int) -> None:
        """History retention, in the background: delete the finished tasks created more than
        ``days`` ago and, past ``keep`` finished tasks of one tenant (0: no cap), that tenant's
        oldest ones, with their attempt logs. Live tasks are never touched. The cap counts each
        tenant's own tasks, so one tenant's flood never evicts another's results or the
        records that de-duplicate its submits.

        Why batches: a delete transaction holds the one writer, and submits and state changes
        queued behind it wait for its commit. ``PURGE_BATCH`` rows take a few milliseconds
        (5,000 took 65 ms with the history indexes), and each batch waits for its commit
        before the next is read, so the writer serves other transactions in between and a
        purge adds tens of ms to submit->start p99 while it runs (benchmarks/bench_history.py).
        """
        interval = min(days * DAY / 10, PURGE_INTERVAL) if days > 0 else PURGE_INTERVAL
        while self._daemon.accepting:
            try:
                counts = await self._daemon.store.count_finished_by_tenant() if keep > 0 else {}
                for tenant, count in sorted(counts.items()):
                    excess = count - keep  # the count cap: its oldest finished, whatever their age
                    while excess > 0 and self._daemon.accepting:
                        batch = min(excess, PURGE_BATCH)
                        rows = await self._daemon.store.old_finished(math.inf, batch, tenant)
                        deleted = await self._delete(rows)
                        if deleted == 0:
                            break
                        excess -= deleted
                deleted = -1
                while deleted != 0 and days > 0 and self._daemon.accepting:
                    rows = await self._daemon.store.old_finished(
                        self._daemon.clock() - days * DAY, PURGE_BATCH
                    )
                    deleted = await self._delete(rows)
            except StoreError as exc:  # a bad moment for the disk: try again next round
                log.warning("history retention: %s", exc)
            await asyncio.sleep(interval)

    async def _delete(self, rows: list[tuple[int, str, str, int]]) -> int:
        """Delete these finished tasks in one transaction, then their attempt logs (in a
        thread: hundreds of unlinks would hold the loop for milliseconds). Returns how many."""
        chosen = []
        for seq, tenant, task_id, attempts in rows:
            live = self._engine.live.get((tenant, task_id))
            if live is None or live.seq != seq:  # a retried task is live again: keep it
                chosen.append((seq, attempts))
        if not chosen:
            return 0
        with self._daemon.store.one_transaction():
            commits = [self._daemon.store.put(DeleteTask(seq)) for seq, _ in chosen]
        await asyncio.gather(*commits)  # StoreError: nothing of the batch was deleted
        await self._daemon.shared_logs.forget(chosen)
        log.info("history retention: deleted %d finished tasks", len(chosen))
        return len(chosen)
