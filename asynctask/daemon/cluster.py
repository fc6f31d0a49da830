"""Several daemons on one PostgreSQL database: the lease loop, and what it changes in memory
(docs/scale-out.md, "Several daemons").

The core decides (``core/leases.py``: ``plan``, ``Holdings``, ``held``); this service reads
the table, performs the actions in order and keeps the daemon's memory to the partitions it
holds:

* ``Take`` granted: the partition's live tasks are loaded (``PgCluster.take_in``); one that
  was ``running`` is an attempt of a daemon that died or lost the lease, so it counts as
  interrupted and is retried, as after a local crash.
* ``HandOver``: its waiting tasks leave memory and nothing of it is dispatched any more; its
  running attempts finish and their ends are stored (still held). ``Release`` follows once
  none runs, or ``drain`` has passed (the rest are stopped and count as interrupted on the
  taker). Its writes are flushed before the release, so the taker loads them.
* ``Stop`` (the lease lapsed or another daemon took it): its tasks leave memory at once and
  its running attempts are stopped. The fence (``pgwriter``) refuses whatever of it was still
  being written.

Per-function limits are split evenly: with ``N`` live daemons each enforces ``1 / N`` of every
function's rate, burst and concurrency (``core.limits.shared``), re-read at every plan.

Between plans the loop reads the inbox of the partitions it dispatches: tasks submitted on
another daemon, noted there by the writer and announced by a notification. Every ``wait``,
``status`` and ``list`` of another daemon's task answers from the database.

The safety rule of ``core/leases.py`` is applied where it matters: ``dispatching`` (what the
step may start, what a submit keeps in memory) and ``fence`` (what the writer conditions a
batch on) both read the clock at the call, never a cached plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

from asynctask.core.leases import (
    HandOver,
    Holdings,
    LeaseSettings,
    Release,
    Renew,
    Stop,
    Take,
    held,
    leave,
    live_nodes,
    plan,
)
from asynctask.core.leases import (
    dispatching as dispatching_of,
)
from asynctask.core.partitions import partition_of
from asynctask.core.scheduler import Action
from asynctask.daemon.crontab import CronEntry, UnusableCron
from asynctask.daemon.views import check_recovered, task_from_row
from asynctask.errors import StorageError
from asynctask.model import LiveTask, TaskState
from asynctask.server.loglimit import LogLimiter, held_back
from asynctask.store import SkippedRow, StoreError, pgschema
from asynctask.store.pgcluster import PgCluster
from asynctask.store.pgleases import PgLeases
from asynctask.store.pgwriter import Fence

if TYPE_CHECKING:
    from asynctask.config import Config
    from asynctask.daemon.root import Daemon
    from asynctask.store.postgres import PostgresStore

log = logging.getLogger("asynctask.daemon")

#: Rounds between two deletions of the heartbeat rows of nodes that have been gone for
#: ``PRUNE_AFTER`` leases (``PgLeases.prune``).
PRUNE_EVERY = 100
PRUNE_AFTER = 30
#: The shortest pause between two reads of the inbox, however many notifications arrive.
INBOX_PAUSE = 0.01


def lease_settings(config: Config) -> LeaseSettings:
    """``[store] partitions`` and ``lease``; a handover drains for ``[daemon] drain``."""
    store = config.store
    return LeaseSettings.for_lease(store.lease, store.partitions, drain=config.daemon.drain)


def new_node_id() -> str:
    """This daemon's ID for its life: host, pid and a random part (a restart is a new node,
    whose predecessor's leases simply lapse)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Cluster:
    """The lease loop of one daemon (see the module docstring). Built by ``Cluster.open``."""

    def __init__(
        self,
        daemon: Daemon,
        store: PostgresStore,
        leases: PgLeases,
        pg: PgCluster,
        settings: LeaseSettings,
    ) -> None:
        self._daemon = daemon
        self._store = store
        self.leases = leases
        self._pg = pg
        self.settings = settings
        self.me = leases.me
        self.holdings = Holdings(self.me)
        self._partition_cache: dict[str, int] = {}
        #: The start journal of this home as the daemon's last life left it (``store/starts.py``):
        #: an attempt begun before its "running" write committed, applied as its task loads.
        self.earlier_starts: dict[int, int] = {}
        #: Partitions whose tasks are in memory (taken in, not dropped since).
        self._serving: set[int] = set()
        self._wake = asyncio.Event()
        self._rounds = 0
        self._taking_in = asyncio.Lock()  # the loop's and a request's (``catch_up``)
        self._inbox_due = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._limiter = LogLimiter(10.0)
        self._seq = 0
        self._seq_end = 0
        self._next_block: int | None = None
        self._refill: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, daemon: Daemon, store: PostgresStore) -> Cluster:
        settings = lease_settings(daemon.config)
        pg = await PgCluster.open(store.url, settings.partitions)
        try:
            leases = await PgLeases.open(
                store.url,
                new_node_id(),
                pid=os.getpid(),
                host=socket.gethostname(),
                started_at=time.time(),
            )
        except BaseException:
            await pg.close()
            raise
        cluster = cls(daemon, store, leases, pg, settings)
        try:
            cluster._seq = await pg.seq_block()
        except BaseException:
            await cluster.close()
            raise
        cluster._seq_end = cluster._seq + pgschema.SEQ_BLOCK
        store.fence_writes(cluster.fence)
        return cluster

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="asynctask-leases")

    async def close(self) -> None:
        for task in (self._task, self._refill):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await self.leases.close()
        await self._pg.close()

    # -- what the daemon asks ---------------------------------------------------------------

    def partition(self, tenant: str) -> int:
        part = self._partition_cache.get(tenant)
        if part is None:
            if len(self._partition_cache) > 100_000:
                self._partition_cache.clear()
            part = self._partition_cache[tenant] = partition_of(tenant, self.settings.partitions)
        return part

    def held_now(self) -> dict[int, int]:
        return held(self.holdings, time.time(), self.settings)

    def dispatching(self) -> set[int]:
        """The partitions whose tasks this daemon keeps in memory and may start, now."""
        return dispatching_of(self.holdings, time.time(), self.settings)

    def serves(self, tenant: str) -> bool:
        """Whether a task of ``tenant`` belongs in this daemon's memory now."""
        return self.partition(tenant) in self.dispatching()

    def drop_lapsed(self) -> None:
        """Before each dispatch pass: a partition whose lease ran out by the clock (the loop
        may be late: a paused process, a slow database) leaves memory now."""
        if not self._serving:
            return
        lapsed = self._serving - self.dispatching()
        if lapsed:
            dropped = self._drop(lapsed, stop_running=True)
            log.warning(
                "stopped serving partition(s) %s: their leases ran out before a renewal "
                "landed (%d tasks left memory)", sorted(lapsed), dropped,
                extra={"event": "partition_lost", "partitions": sorted(lapsed)},
            )  # fmt: skip

    async def owner_of(self, tenant: str) -> str | None:
        """The daemon whose lease on ``tenant``'s partition has not run out, by the table."""
        return await self.leases.owner(self.partition(tenant), time.time())

    def fence(self) -> Fence:
        """What the writer conditions a batch on: the leases held now, each of which must
        outlast the margin in the database too (``pgleases.still_held``)."""
        now = time.time()
        return Fence(
            self.me,
            held(self.holdings, now, self.settings),
            now + self.settings.margin,
            self.settings.partitions,
        )

    def next_seq(self) -> int:
        """A task number no daemon of the database hands out again (``PgCluster.seq_block``);
        the next block is drawn in the background while half of this one is left."""
        if self._seq >= self._seq_end:
            if self._next_block is None:
                raise StorageError(
                    "no task numbers left: the database did not answer in time for the next "
                    "block; try again"
                )
            self._seq, self._next_block = self._next_block, None
            self._seq_end = self._seq + pgschema.SEQ_BLOCK
        seq = self._seq
        self._seq += 1
        if (
            self._seq_end - self._seq < pgschema.SEQ_BLOCK // 2
            and self._next_block is None
            and (self._refill is None or self._refill.done())
        ):
            self._refill = asyncio.get_running_loop().create_task(self._draw_block())
        return seq

    async def _draw_block(self) -> None:
        for pause in (0.1, 0.5, 1.0, 2.0, 5.0):
            try:
                self._next_block = await self._pg.seq_block()
                return
            except StoreError as error:
                self._log(f"cannot draw task numbers: {error}")
                await asyncio.sleep(pause)

    async def catch_up(self) -> None:
        """Read the inbox now (a request names a task submitted elsewhere a moment ago)."""
        await self._take_in(())

    def notified(self) -> None:
        self._inbox_due = True
        self._wake.set()

    # -- shutdown ---------------------------------------------------------------------------

    async def leave(self) -> None:
        """The end of a clean stop, after the drain and the last writes: release every lease
        and the heartbeat at once, so the others take the partitions now, not a lease later."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        with contextlib.suppress(StoreError):
            await self._store.flush()
        write = leave(self.holdings, time.time(), self.settings)
        self.holdings.begin(write, time.time())
        try:
            await self.leases.write(write)
        except StoreError as error:
            log.warning("could not release the partitions at the stop (they lapse within "
                        "a lease): %s", error)  # fmt: skip
            return
        log.info("left the cluster: released %d partitions", len(write.leases),
                 extra={"event": "left", "partitions": len(write.leases)})  # fmt: skip

    def begin_stop(self) -> None:
        """The daemon stops: take nothing more and hand nothing over; keep renewing what it
        holds until ``leave``, so its running attempts can end and be stored."""
        self._stopping = True

    # -- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        period = self.settings.heartbeat / 2
        next_plan = 0.0
        while True:
            now = time.monotonic()
            try:
                if now >= next_plan:
                    took = await self._tick()
                    # A first heartbeat makes this node live: plan again at once to take.
                    next_plan = time.monotonic() + (0.0 if took is None else period)
                elif self._inbox_due:
                    self._inbox_due = False
                    await self._take_in(())
            except StoreError as error:
                self._log(f"the lease loop could not reach the database: {error}")
            except Exception:  # never let the loop die: leases would lapse behind our back
                log.exception("the lease loop failed; it goes on")
            self._wake.clear()
            delay = max(0.0, next_plan - time.monotonic())
            if self._inbox_due:
                delay = min(delay, INBOX_PAUSE)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if self._inbox_due:
                await asyncio.sleep(INBOX_PAUSE)

    async def _tick(self) -> bool | None:
        """One plan: read, decide, perform, take in. ``None`` right after this node's first
        heartbeat (plan again at once)."""
        first = self.holdings.beat == float("-inf")
        await self._pg.listen(self.notified)
        table, beats = await self.leases.read()
        now = time.time()
        busy = {self.partition(task.tenant) for task in self._daemon.engine.running.values()}
        actions = plan(table, beats, self.holdings, busy, now, self.settings)
        live = live_nodes(beats, now, self.settings.lease) | {self.me}
        self._daemon.scheduler.share_function_limits(1 / len(live), self._daemon.clock())
        taken: list[int] = []
        for action in actions:
            if self._stopping and isinstance(action, Take | HandOver):
                continue
            try:
                await self._perform(action, taken)
            except StoreError as error:
                self._log(f"lease write {type(action).__name__} failed: {error}")
        self._rounds += 1
        if self._rounds % PRUNE_EVERY == 1:  # nodes killed long ago: their heartbeat rows go
            gone = await self.leases.prune(now - PRUNE_AFTER * self.settings.lease, now)
            if gone:
                log.info("deleted the heartbeat rows of %d node(s) gone for good", gone)
        fresh = await self._take_in(taken)
        await self._follow_pauses()
        await self._follow_crons(fresh)
        if first and self.holdings.beat != float("-inf"):
            return None
        return bool(taken)

    async def _perform(self, action: Any, taken: list[int]) -> None:
        now = time.time()
        match action:
            case Stop(partition):
                self.holdings.begin(action, now)
                dropped = self._drop({partition}, stop_running=True)
                log.warning(
                    "stopped serving partition %d: its lease lapsed or another daemon took it "
                    "(%d tasks left memory)", partition, dropped,
                    extra={"event": "partition_lost", "partition": partition},
                )  # fmt: skip
            case Release(partition):
                self._drop({partition}, stop_running=True)
                with contextlib.suppress(StoreError):
                    await self._store.flush()  # its last writes land while it is held
                self.holdings.begin(action, time.time())
                await self.leases.write(action)
                log.info("handed over partition %d", partition,
                         extra={"event": "partition_released", "partition": partition})  # fmt: skip
            case HandOver(partition):
                self.holdings.begin(action, now)
                self._drop({partition}, stop_running=False)
            case Renew():
                self.holdings.begin(action, now)
                rows = await self.leases.write(action, len(self._daemon.engine.running))
                self.holdings.settle(action, rows)
            case Take(partition):
                rows = await self.leases.write(action)
                self.holdings.settle(action, rows)
                if partition in self.holdings.grants:
                    taken.append(partition)

    def _drop(self, partitions: set[int], stop_running: bool) -> int:
        """Let the tasks of ``partitions`` go from memory (see the module docstring). Running
        ones stay when ``stop_running`` is false (a handover lets them finish)."""
        self._serving -= partitions
        engine = self._daemon.engine
        moved = [t for t in engine.live.values() if self.partition(t.tenant) in partitions]
        return engine.let_go(moved, stop_running)

    def let_go_if_moved(self, task: LiveTask) -> None:
        """After an attempt's outcome: a task now waiting again (a retry) whose partition
        is being handed over leaves memory, so it is not started here again."""
        if task.state in (TaskState.QUEUED, TaskState.SCHEDULED) and not self.serves(task.tenant):
            self._daemon.scheduler.forget([task], self._daemon.clock())
            key = (task.tenant, task.id)
            if self._daemon.engine.live.get(key) is task:
                del self._daemon.engine.live[key]

    async def _take_in(self, taken: list[int] | tuple[()]) -> set[int]:
        """Load the live tasks of every partition dispatched but not loaded yet (just
        ``taken``, or whose load failed before), and the inbox of the others. Returns the
        partitions loaded whole."""
        async with self._taking_in:
            return await self._take_in_now(taken)

    async def _take_in_now(self, taken: list[int] | tuple[()]) -> set[int]:
        serving = self.dispatching()
        held_now = self.held_now()
        wanted = {p: e for p, e in held_now.items() if p in serving}
        if not wanted:
            return set()
        skipped: list[SkippedRow] = []
        now = time.time()
        whole = set(wanted) - self._serving
        ok, rows = await self._pg.take_in(
            self.me, wanted, now + self.settings.margin, whole, skipped
        )
        # Lost meanwhile (the loop's own awaits): a later drop_lapsed or Stop lets go.
        self._serving |= ok & whole
        for bad in skipped[:20]:
            log.error("skipped %s", bad, extra={"event": "row_skipped"})
        daemon = self._daemon
        engine = daemon.engine
        clock_now = daemon.clock()
        interrupted: list[Action] = []
        loaded = 0
        for row in rows:
            key = (row.tenant, row.id)
            present = engine.live.get(key)
            if present is not None and present.seq == row.seq:
                continue
            if self.partition(row.tenant) not in ok:
                continue
            try:
                task = task_from_row(row)
                check_recovered(task)
                daemon.intake.declare_limits(task.function, task.options.get("limits"), clock_now)
            except Exception as error:  # a row this version cannot run: left in the store
                log.error("skipped task seq=%d: %s", row.seq, error,
                          extra={"event": "row_skipped"})  # fmt: skip
                continue
            engine.live[key] = task
            loaded += 1
            begun = self.earlier_starts.pop(task.seq, 0)
            if begun > task.attempts:  # began here before "running" committed, then a crash
                task.attempts = begun
                task.state = TaskState.RUNNING
            if task.state is TaskState.RUNNING:
                reason = "the daemon running the attempt stopped or lost its lease"
                interrupted.append(daemon.scheduler.interrupted(task, reason, clock_now))
            else:
                daemon.scheduler.add(task, clock_now)
        engine.perform(interrupted)
        if ok & whole:
            fresh = sorted(ok & whole)
            log.info(
                "serving %d more partition(s) %s: loaded %d live tasks, %d of them "
                "interrupted attempts", len(fresh), fresh, loaded, len(interrupted),
                extra={"event": "partitions_taken", "partitions": fresh,
                       "live": loaded, "interrupted": len(interrupted)},
            )  # fmt: skip
        if loaded:
            engine.wake()
        return ok & whole

    async def _follow_pauses(self) -> None:
        """Pauses are stored and shared: one set on another daemon reaches this one here,
        within a heartbeat."""
        stored = set(await self._store.load_pauses())
        scheduler = self._daemon.scheduler
        current = set(scheduler.paused_targets())
        for target in stored - current:
            scheduler.pause(target)
        resumed = current - stored
        for target in resumed:
            scheduler.resume(target)
        if resumed:
            self._daemon.engine.wake()

    async def _follow_crons(self, fresh: set[int]) -> None:
        """Cron entries are stored and shared: every daemon lists them all, and only the
        daemon serving an entry's tenant fires it (``Engine.step``). An entry added, changed
        or removed on another daemon is followed here; one of a partition just taken is
        loaded from its stored last slot, so the slots missed while no daemon served it are
        fired as its ``catch_up`` says."""
        daemon = self._daemon
        crons = daemon.crons
        now = daemon.clock()
        stored = {(tenant, name): blob for tenant, name, blob in await self._store.load_crons()}
        for key in crons.keys() - set(stored):
            crons.remove(*key)
        for (tenant, name), blob in stored.items():
            current = crons.get(tenant, name)
            moved_here = self.partition(tenant) in fresh
            if current is not None and not moved_here:
                try:
                    if current.same_schedule(CronEntry.from_definition(tenant, name, blob)):
                        continue
                except Exception:
                    pass
            elif current is None and crons.has(tenant, name):
                continue  # set aside already
            try:
                missed = crons.load_stored(tenant, name, blob, now)
            except UnusableCron as error:
                self._log(f"cron {tenant}/{name} cannot be used: {error}")
                continue
            if self.serves(tenant):
                for entry, slot in missed:
                    daemon.cron.fire(entry, slot)
        daemon.engine.wake()

    def _log(self, message: str) -> None:
        held_count = self._limiter.allow("cluster")
        if held_count is not None:
            log.error("%s%s", message, held_back(held_count), extra={"event": "cluster_error"})
