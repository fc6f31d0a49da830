"""Confinement: where and how widely a tenant whose tasks break workers may run.

The policy (thresholds, probation, the spare allowance) is in ``sharding.py``; this is the part
of the scheduler that applies it: which shard a tenant's next attempt goes to, which tenants
wait on busy shards, the work-conserving spare pass, and the fault record kept as attempts end.
It shares the ``Board`` with the dispatch pass and keeps only confinement's own state: who
waits on which shard, who is held by confinement alone, which attempts run outside their
tenant's shards, and which fault confinements it reported (``Confined``) and has not yet
reported over (``Released``).
"""

from __future__ import annotations

from asynctask.core.board import Board
from asynctask.core.entities import HELD, SHARDS, TenantState
from asynctask.core.events import Confined, Released
from asynctask.core.sharding import ALWAYS, FAULTS, PROBATION, FaultRecord, shard_set
from asynctask.core.slots import WarmSlots
from asynctask.model import LiveTask


class Confinement:
    def __init__(self, board: Board) -> None:
        self._board = board
        self.shard_waiters: dict[int, dict[TenantState, None]] = {}
        #: Tenants parked by their confinement alone (``HELD``), for the spare pass; entries
        #: of tenants parked otherwise since are dropped there.
        self.held: dict[TenantState, None] = {}
        #: Attempts the spare pass started outside their tenant's own shards (``spread``).
        self.outside: set[int] = set()
        #: Tenants reported ``Confined`` whose release is not reported yet: a fault during a
        #: confinement pushes its end on without a second report.
        self.announced: set[str] = set()

    def reason(self, tenant: TenantState, now: float) -> str | None:
        """Why the tenant is confined now (``always``, ``faults``, ``probation``), or ``None``.

        A confined tenant runs only on its own shards (when there are more shards than it
        owns) and backs off after each attempt that breaks a worker."""
        settings = self._board.settings.sharding
        if settings.confinement == ALWAYS:
            return ALWAYS
        faults = tenant.faults
        if faults is not None and faults.confined_until > now:
            return FAULTS
        if settings.sharded and tenant.clean_ends < settings.probation:
            return PROBATION
        return None

    def confined(self, tenant: TenantState, now: float) -> bool:
        """Whether the tenant may use only its own shards now."""
        return self._board.settings.sharding.sharded and self.reason(tenant, now) is not None

    def slow_started(self, tenant: TenantState, now: float) -> bool:
        """Whether the tenant's concurrency is held to ``1 + clean_successes`` (on probation or
        confined for faults): a tenant that breaks every worker it gets holds one at a time."""
        return self.reason(tenant, now) in (FAULTS, PROBATION)

    def allowance(self, tenant: TenantState, now: float) -> int:
        """How far the spare pass may widen the tenant's bounds (``FaultRecord.spare``)."""
        faults = tenant.faults
        return 0 if faults is None else faults.spare(self._board.settings.sharding, now)

    def shards_of(self, tenant_name: str) -> tuple[int, ...]:
        settings = self._board.settings.sharding
        return shard_set(tenant_name, settings.shards, settings.per_tenant)

    # -- dispatch ---------------------------------------------------------------------------------

    def shard_for(
        self,
        tenant: TenantState,
        free: list[int],
        now: float,
        warm: WarmSlots | None = None,
        spare: bool = False,
    ) -> int:
        """The shard the tenant's next attempt runs on, or -1 (then it waits on its shards).

        A shard where no worker need be replaced comes first (``WarmSlots.shard_of``), where
        the tenant may use it; else an unconfined tenant takes the shard with the most idle
        workers, and a confined one the best of its own. In the spare pass (``spare``) a
        confined tenant whose own shards are all busy may go outside them while fewer than its
        allowance of its attempts run there (``spread``)."""
        home = warm.shard_of(tenant.name) if warm is not None else None
        if not self.confined(tenant, now):
            if home is not None and free[home] > 0:
                return home
            return max(range(len(free)), key=free.__getitem__)
        own = tenant.shards
        if own is None:
            own = tenant.shards = self.shards_of(tenant.name)
        if home is not None and home in own and free[home] > 0:
            return home
        best = max(own, key=free.__getitem__)
        if free[best] > 0:
            return best
        if spare and tenant.spread < self.allowance(tenant, now):
            if home is not None and free[home] > 0:
                return home  # a worker of its own (or a fresh one): nothing to replace
            return max(range(len(free)), key=free.__getitem__)
        for shard in own:
            self.shard_waiters.setdefault(shard, {})[tenant] = None
        return -1

    def wake_shard_waiters(self, free: list[int]) -> None:
        for shard, count in enumerate(free):
            if count <= 0:
                continue
            waiters = self.shard_waiters.pop(shard, None)
            if waiters:
                for tenant in waiters:
                    if tenant.parked == SHARDS:
                        self._board.release_tenant(tenant)

    def spare_pass(self) -> bool:
        """Every eligible tenant was served and workers are still idle: if exactly one tenant
        is held back by its confinement alone (``HELD``: its shards busy, or at its slow-start
        width), let it compete again with those bounds widened to its allowance (True if so;
        ``sharding.py``, "Work conservation").

        A second held tenant is someone waiting, so neither is served beyond its bounds: the
        spare pass never takes a worker another tenant could use now. Tenants held by their
        own limits (pause, concurrency, rate) or backing off after faults wait for no worker.
        ``always`` is strict: never."""
        if not self.held or self._board.settings.sharding.confinement == ALWAYS:
            return False
        held = [tenant for tenant in self.held if tenant.parked in HELD]
        self.held = dict.fromkeys(held)
        if len(held) != 1:
            return False
        self._board.release_tenant(held[0])
        return True

    # -- attempts ending --------------------------------------------------------------------------

    def slot_given_back(self, task: LiveTask, tenant: TenantState) -> None:
        if task.seq in self.outside:
            self.outside.discard(task.seq)
            tenant.spread -= 1

    def clean_end(self, tenant: TenantState, now: float, success: bool) -> None:
        """An attempt ended without breaking its worker (it succeeded, or its task failed);
        the one that completes a new tenant's probation is reported (``Released``)."""
        settings = self._board.settings.sharding
        tenant.clean_ends += 1
        faults = fault_record(tenant)
        if success:
            tenant.clean_successes += 1
            faults.on_success()
        faults.on_clean_end(settings, now)
        # Probation is only in force on a sharded pool in "faults" mode (``reason``).
        if (
            tenant.clean_ends == settings.probation
            and settings.sharded
            and settings.confinement == FAULTS
        ):
            self._board.events.append(Released(tenant.name, PROBATION, self.reason(tenant, now)))

    def fault(self, tenant: TenantState, now: float) -> None:
        """An attempt broke its worker: count it, back a confined tenant off, and report a
        confinement for faults that was not in force yet (``Confined``)."""
        settings = self._board.settings.sharding
        faults = fault_record(tenant)
        faults.on_fault(settings, now)
        tenant.clean_successes = 0
        reason = self.reason(tenant, now)
        if reason is None:
            return
        faults.back_off(settings, now)
        if reason == FAULTS and tenant.name not in self.announced:
            self.announced.add(tenant.name)
            shards = self.shards_of(tenant.name) if settings.sharded else None
            count = faults.recent(settings, now)[1]
            until = faults.confined_until
            self._board.events.append(
                Confined(tenant.name, FAULTS, shards, count, until, until - now)
            )

    def due(self, tenant_name: str, now: float) -> float | None:
        """A reported fault confinement was due to end by ``now``: report its release, or
        return when it ends now that faults since pushed it on (None: nothing to wait for)."""
        if tenant_name not in self.announced:
            return None
        tenant = self._board.tenant(tenant_name, now)
        reason = self.reason(tenant, now)
        if reason == FAULTS and tenant.faults is not None:
            return tenant.faults.confined_until
        self.announced.discard(tenant_name)
        self._board.events.append(Released(tenant_name, FAULTS, reason))
        return None


def fault_record(tenant: TenantState) -> FaultRecord:
    """The tenant's record of recent attempts (every ending counts toward the ratio)."""
    if tenant.faults is None:
        tenant.faults = FaultRecord()
    return tenant.faults
