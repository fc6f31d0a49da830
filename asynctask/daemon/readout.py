"""What the daemon says about itself: ``ping`` (readiness, storage health), ``queues``,
``stats`` and the Prometheus text, and the gauge sampler behind their per-minute peaks.

Read-only over the daemon's state; each readout is built in chunks with the loop running in
between, so its cost is what it shows and no client waits behind it (docs/contract.md,
"Robustness")."""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from asynctask import __version__
from asynctask.core.report import report_entries
from asynctask.observe.metrics import MINUTES, RUNNING
from asynctask.observe.prometheus import render_steps
from asynctask.observe.readout import DEFAULT_TOP as READOUT_TOP
from asynctask.observe.readout import Page as ReadoutPage
from asynctask.observe.readout import drive as drive_readout
from asynctask.observe.readout import exposition_steps, stats_steps

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon


#: The gauges of the whole pool: queued tasks and busy slots.
POOL_ENTITY = ("pool", "", "")


def url_host(address: tuple[str, int]) -> tuple[str, int]:
    host, port = address
    return (f"[{host}]" if ":" in host else host), port


#: Seconds between samples of the backlog and running gauges.
GAUGE_SAMPLE = 5.0

#: Entries walked between two yields to the loop (gauge samples, ``queues`` rows).
SAMPLE_CHUNK = 500


#: Rows of each section of ``queues`` (the rest are counted in ``more``).
QUEUES_SHOWN = 10_000


#: How often ``LoopWatch`` ticks, and the window its maxima cover.
LOOP_TICK = 0.01
LOOP_WINDOW = 60.0
#: Ticks held at least this long are kept (the newest ``SLOW_KEPT``) for ``ping``.
SLOW_TICK = 0.005
SLOW_KEPT = 64


class LoopWatch:
    """How long the event loop was held: the promise is that no request holds it for more than
    50 ms (docs/contract.md, "Robustness"), and this is the daemon's own measure of it.

    A timer due every ``LOOP_TICK`` fires late by however long the loop was busy before it.
    Lateness alone also counts time the process waited for a CPU while other processes ran (a
    client's round trip measures that too), so each tick also reads the loop thread's CPU time:
    ``held`` is the lateness the loop spent running, ``late`` all of it. Maxima over the last
    ``LOOP_WINDOW`` seconds (the current and the previous window), and the newest ticks that
    were held over ``SLOW_TICK`` as ``[monotonic time, held ms, late ms]``, so that a check can
    pick those of its own time span."""

    def __init__(self) -> None:
        self.slow: deque[list[float]] = deque(maxlen=SLOW_KEPT)
        self._held = [0.0, 0.0]
        self._late = [0.0, 0.0]
        self._window_started = 0.0

    def maxima(self) -> dict[str, Any]:
        return {
            "held_max_ms": round(max(self._held) * 1000, 1),
            "late_max_ms": round(max(self._late) * 1000, 1),
            "slow": list(self.slow),
        }

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._window_started = loop.time()
        while True:
            due = loop.time() + LOOP_TICK
            cpu = time.thread_time()
            await asyncio.sleep(LOOP_TICK)
            now = loop.time()
            late = max(0.0, now - due)
            held = min(late, max(0.0, time.thread_time() - cpu))
            if now - self._window_started >= LOOP_WINDOW:
                self._window_started = now
                self._held = [self._held[1], 0.0]
                self._late = [self._late[1], 0.0]
            if held >= SLOW_TICK:
                self.slow.append([round(now, 3), round(held * 1000, 1), round(late * 1000, 1)])
            self._held[1] = max(self._held[1], held)
            self._late[1] = max(self._late[1], late)


class Readout:
    """The readouts of one daemon (see the module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._engine = daemon.engine
        self.loop_watch = LoopWatch()

    def ping(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": __version__,
            "uptime": self._daemon.clock() - self._daemon.started_at,
            "accepting": self._daemon.accepting,
            "stopping": self._daemon.stop_requested.is_set(),
            # The stored backlog is still loading (start-up): nothing is dispatched yet and
            # the counts below do not have all of it.
            "loading": self._engine.loading,
            "tasks": {
                "live": len(self._engine.live) + self._engine.cold.stored,
                "running": len(self._engine.running),
                "queued": self._daemon.scheduler.queued,
                "scheduled": self._daemon.scheduler.scheduled,
            },
            "workers": {
                "size": self._daemon.pool.size if self._daemon.pool else 0,
                "idle": self._daemon.pool.idle if self._daemon.pool else 0,
                "busy": self._daemon.pool.busy if self._daemon.pool else 0,
                "target": self._daemon.pool.target if self._daemon.pool else 0,
                "max": self._daemon.pool.max_size if self._daemon.pool else 0,
                "spawns": self._daemon.pool.spawn_stats() if self._daemon.pool else {},
            },
            "metrics_url": None
            if self._daemon.metrics_http is None
            else "http://{}:{}/metrics".format(*url_host(self._daemon.metrics_http.address)),
            "store": {
                "transactions": self._daemon.store.transactions if self._daemon.store else 0,
                "ops_committed": self._daemon.store.ops_committed if self._daemon.store else 0,
                "pending": self._daemon.store.pending if self._daemon.store else 0,
            },
            "storage": self.storage_health(),
            "loop": self.loop_watch.maxima(),
        }

    def storage_health(self) -> dict[str, Any]:
        """Whether the store takes writes: ``ok`` is false from a failed commit until one
        succeeds (a probe retries it), with the error and for how long; ``unstored`` counts
        tasks whose latest change waits to be stored."""
        store, guard = self._daemon.store, self._daemon.guard
        failure = None if store is None else store.failure
        since = None if store is None else store.failing_since
        failing_for = None if since is None else round(asyncio.get_running_loop().time() - since, 3)
        if self._daemon.storage_lost is not None:
            failure = self._daemon.storage_lost.message
        return {
            "ok": failure is None,
            "error": failure,
            "failing_for": failing_for,
            "unstored": 0 if guard is None else guard.unstored,
        }

    async def queues(self, tenants: frozenset[str] | None) -> dict[str, Any]:
        """Every tenant, queue and function row, up to ``QUEUES_SHOWN`` a section (``more``
        counts the rest), built ``SAMPLE_CHUNK`` rows at a time with the loop running in
        between: one tenant's 20,000 queues in one go held every other client."""
        now = self._daemon.clock()
        report: dict[str, Any] = {}
        more: dict[str, int] = {}
        for section, entries in report_entries(self._daemon.scheduler, now, tenants).items():
            rows: list[dict[str, Any]] = []
            hidden = 0
            for count, (_, _, _, row) in enumerate(entries(), 1):
                if len(rows) < QUEUES_SHOWN:
                    rows.append(row())
                else:
                    hidden += 1
                if count % SAMPLE_CHUNK == 0:
                    await asyncio.sleep(0)
            report[section] = rows
            if hidden:
                more[section] = hidden
        if more:
            report["more"] = more
        return report

    async def sample_loop(self) -> None:
        """Per-minute peaks of backlog and running need samples between requests; every
        ``GAUGE_SAMPLE`` seconds costs one pass over the tenants, queues and functions, taken
        ``SAMPLE_CHUNK`` entries at a time with the loop running in between: one pass over a
        tenant's 20,000 queues in one go held every other client for hundreds of ms."""
        kinds = {"tenants": "tenant", "queues": "queue", "functions": "function"}
        while True:
            await asyncio.sleep(GAUGE_SAMPLE)
            now = self._daemon.clock()
            sample = self._daemon.metrics.sample
            for section, entries in report_entries(self._daemon.scheduler, now, None).items():
                kind = kinds[section]
                for count, (key, backlog, running, _) in enumerate(entries(), 1):
                    entity = (kind, key[0], key[1] if len(key) > 1 else "")
                    sample(entity, backlog, running, now)
                    if count % SAMPLE_CHUNK == 0:
                        await asyncio.sleep(0)
            busy = self._daemon.pool.busy if self._daemon.pool else 0
            sample(POOL_ENTITY, self._daemon.scheduler.queued, busy, now)

    def pool_view(self, now: float | None = None) -> dict[str, Any]:
        """The pool now; with ``now``, also its busy slots' peak per minute (``occupied``)."""
        pool = self._daemon.pool
        view: dict[str, Any] = {
            "size": pool.size if pool else 0,
            "idle": pool.idle if pool else 0,
            "busy": pool.busy if pool else 0,
            "target": pool.target if pool else 0,
            "max": pool.max_size if pool else 0,
            "slots": (pool.size if pool else 0) * self._daemon.config.workers.concurrency,
        }
        ring = self._daemon.metrics.gauges(POOL_ENTITY)
        if now is not None:
            view["occupied"] = ring.per_minute(RUNNING, now) if ring else [0] * MINUTES
        return view

    async def stats(
        self,
        tenants: frozenset[str] | None,
        tenant: str | None,
        queue: str | None = None,
        top: int | None = None,
    ) -> dict[str, Any]:
        """The ``stats`` reply, built in chunks with the loop running in between: its cost is
        what it shows (``top`` rows a section, ``queue``'s detail) plus one cheap scan."""
        now = self._daemon.clock()
        visible: frozenset[str] | None = tenants
        if tenant is not None:
            visible = frozenset({tenant}) if tenants is None else tenants & {tenant}
        failures = [f for f in reversed(self._engine.failures)]
        busy = self._daemon.pool.busy if self._daemon.pool else 0
        self._daemon.metrics.sample(POOL_ENTITY, self._daemon.scheduler.queued, busy, now)
        pool = self.pool_view(now)
        page = ReadoutPage(top or READOUT_TOP, queue)
        entries = report_entries(self._daemon.scheduler, now, visible, queue)
        steps = stats_steps(self._daemon.metrics, entries, pool, failures, now, visible, page)
        return await drive_readout(steps, lambda: asyncio.sleep(0))

    async def prometheus(self) -> str:
        """The Prometheus text, built and written in chunks with the loop running in between;
        bounded in size whatever the number of queues (``observe.readout.exposition_steps``)."""
        now = self._daemon.clock()
        busy = self._daemon.pool.busy if self._daemon.pool else 0
        self._daemon.metrics.sample(POOL_ENTITY, self._daemon.scheduler.queued, busy, now)
        extra: dict[str, float] = {
            "uptime_seconds": now - self._daemon.started_at,
            "live_tasks": len(self._engine.live) + self._engine.cold.stored,
            "store_transactions_total": self._daemon.store.transactions
            if self._daemon.store
            else 0,
            "store_ops_total": self._daemon.store.ops_committed if self._daemon.store else 0,
        }
        entries = report_entries(self._daemon.scheduler, now, None)
        steps = exposition_steps(self._daemon.metrics, entries, self.pool_view(), extra, now)
        families = await drive_readout(steps, lambda: asyncio.sleep(0))
        lines: list[str] = []
        for _ in render_steps(families, lines):
            await asyncio.sleep(0)
        return "\n".join(lines)
