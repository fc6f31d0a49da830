"""The scheduler's bookkeeping per tenant, queue and function (plain slotted records).

They hold counters, limits and *parking* state; the policy that reads them is in the
scheduler's collaborators (``dispatcher.py``, ``confinement.py``, ``board.py``). An entity that
cannot be served right now is *parked* with a reason and taken out of its heap; whatever can
release it (a finished attempt, a resume, a timer, a new task) wakes it again. ``parked`` is one of:

* ``None`` - eligible (in its heap) or simply idle with nothing to do;
* ``IDLE`` - a tenant none of whose queues can run (it wakes when one of them can);
* ``PAUSED``, ``CONCURRENCY``, ``RATE`` - its own limit holds it;
* ``FUNCTION`` - a queue whose head task's function is paused or at its concurrency limit;
* ``SHARDS`` - a confined tenant none of whose worker shards has an idle worker;
* ``SLOW`` - a confined tenant at its slow-start width (``1 + clean_successes`` running);
* ``FAULT`` - a confined tenant backing off after an attempt that broke a worker.

``SHARDS`` and ``SLOW`` (``HELD``) are the confinement's own bounds on *where* and *how widely*
a tenant runs: a tenant parked on one would start an attempt if it were not confined. While it
is the only such tenant, it still gets idle workers nobody else is waiting for, up to a bound
its record earns (``Confinement.spare_pass``, ``FaultRecord.spare``). ``FAULT`` is not lifted:
a tenant backing off has had nothing but faults since its last success.
"""

from __future__ import annotations

from typing import Final

from asynctask.core.aimd import AimdConfig, AimdLimit
from asynctask.core.bucket import TokenBucket
from asynctask.core.limits import (
    AimdSettings,
    FunctionLimits,
    QueueLimits,
    TenantLimits,
    burst_of,
    shared,
)
from asynctask.core.queues import PriorityFifo
from asynctask.core.sharding import FaultRecord

IDLE: Final = "idle"
PAUSED: Final = "paused"
CONCURRENCY: Final = "concurrency"
RATE: Final = "rate"
FUNCTION: Final = "function"
SHARDS: Final = "shards"
FAULT: Final = "fault"
SLOW: Final = "slow start"
HELD: Final = frozenset({SHARDS, SLOW})


def _aimd(
    limits: FunctionLimits, aimd: AimdSettings, capacity: int, now: float
) -> AimdLimit | None:
    if not limits.aimd:
        return None
    ceiling = max(1, limits.concurrency if limits.concurrency is not None else capacity)
    return AimdLimit(
        AimdConfig(
            max_limit=ceiling,
            increase=aimd.increase,
            decrease=aimd.decrease,
            window=aimd.window,
            min_throttles=aimd.min_throttles,
            throttle_ratio=aimd.throttle_ratio,
            idle_decay=aimd.idle_decay,
        ),
        now,
    )


def _bucket(rate: float | None, burst: float | None, now: float) -> TokenBucket | None:
    return TokenBucket(rate, burst_of(rate, burst), now) if rate is not None else None


class TenantState:
    __slots__ = (
        "backlog",
        "backlog_bytes",
        "bucket",
        "clean_ends",
        "clean_successes",
        "completed",
        "faults",
        "heap_version",
        "in_heap",
        "limits",
        "name",
        "parked",
        "paused",
        "queue_heap",
        "queue_order",
        "queues",
        "refused",
        "reserved",
        "reserved_bytes",
        "run_avg",
        "running",
        "shards",
        "spread",
        "successes",
        "vpass",
        "weight",
    )

    def __init__(self, name: str, limits: TenantLimits, now: float) -> None:
        self.name = name
        self.limits = limits
        self.weight = limits.weight
        self.bucket = _bucket(limits.rate, limits.burst, now)
        self.running = 0
        self.run_avg: float | None = None  # seconds: its attempts' run time, a moving average
        self.backlog = 0  # queued + scheduled
        self.backlog_bytes = 0  # the payload bytes of those tasks (``max_backlog_bytes``)
        self.reserved = 0  # tasks admitted but not added yet (their submit is being stored)
        self.reserved_bytes = 0  # ... and their payload bytes
        self.completed = 0
        self.refused = 0
        self.paused = False
        self.parked: str | None = None
        self.vpass = 0.0
        self.heap_version = 0
        self.in_heap = False
        self.queues: dict[str, QueueState] = {}
        self.queue_heap: list[tuple[float, int, int, QueueState]] = []
        self.queue_order = 0
        self.faults: FaultRecord | None = None  # made when its first attempt ends
        self.shards: tuple[int, ...] | None = None  # its own worker shards, made when needed
        self.spread = 0  # attempts running outside its own shards by the spare pass
        self.successes = 0  # attempts that succeeded
        self.clean_ends = 0  # attempts that ended without breaking their worker (probation)
        self.clean_successes = 0  # ... since its last worker-breaking attempt

    def __repr__(self) -> str:
        return (
            f"<Tenant {self.name} backlog={self.backlog} running={self.running} "
            f"parked={self.parked} pass={self.vpass:.2f}>"
        )


class QueueState:
    __slots__ = (
        "bucket",
        "fifo",
        "heap_key",
        "heap_version",
        "held",
        "in_heap",
        "limits",
        "name",
        "parked",
        "paused",
        "running",
        "scheduled",
        "stored",
        "tenant",
    )

    def __init__(
        self, tenant: TenantState, name: str, limits: QueueLimits, aging: float, now: float
    ) -> None:
        self.tenant = tenant
        self.name = name
        self.limits = limits
        self.bucket = _bucket(limits.rate, limits.burst, now)
        self.fifo = PriorityFifo(aging)
        self.running = 0
        self.scheduled = 0
        self.held = 0  # waiting tasks paused by selector (in neither ``fifo`` nor the timers)
        #: Queued tasks the daemon keeps in the store only, beyond the queue's window
        #: (``Board.add_stored``): counted as queued, not yet in ``fifo``.
        self.stored = 0
        self.paused = False
        self.parked: str | None = None
        self.in_heap = False
        self.heap_version = 0
        self.heap_key = 0.0

    def __repr__(self) -> str:
        return (
            f"<Queue {self.tenant.name}/{self.name} queued={len(self.fifo)} "
            f"stored={self.stored} running={self.running} parked={self.parked}>"
        )


class FunctionState:
    __slots__ = (
        "aimd",
        "bucket",
        "limits",
        "local",
        "name",
        "paused",
        "queued",
        "running",
        "share",
        "waiters",
    )

    def __init__(
        self,
        name: str,
        limits: FunctionLimits,
        aimd: AimdSettings,
        capacity: int,
        now: float,
        share: float = 1.0,
    ) -> None:
        self.name = name
        self.running = 0
        self.queued = 0
        self.paused = False
        self.waiters: dict[QueueState, None] = {}  # insertion-ordered set
        #: The limits as configured or declared, and this daemon's part of them (``share``:
        #: 1 / the daemons sharing a database; ``limits.shared``), which is what is enforced.
        self.limits = limits
        self.share = share
        self.local = local = shared(limits, share)
        self.bucket = _bucket(local.rate, local.burst, now)
        self.aimd = _aimd(local, aimd, capacity, now)

    def configure(
        self,
        limits: FunctionLimits,
        aimd: AimdSettings,
        capacity: int,
        now: float,
        share: float | None = None,
    ) -> None:
        """Take new limits (declared in code) or a new share; a rate bucket or AIMD state
        whose settings did not change is kept, so re-declaring the same limits costs nothing."""
        old = self.local
        self.limits = limits
        if share is not None:
            self.share = share
        self.local = local = shared(limits, self.share)
        if (old.rate, old.burst) != (local.rate, local.burst):
            self.bucket = _bucket(local.rate, local.burst, now)
        if (old.concurrency, old.aimd) != (local.concurrency, local.aimd):
            self.aimd = _aimd(local, aimd, capacity, now)

    def __repr__(self) -> str:
        return (
            f"<Function {self.name} running={self.running}/{self.concurrency_limit()} "
            f"queued={self.queued} waiters={len(self.waiters)}>"
        )

    def concurrency_limit(self) -> int | None:
        """The configured limit, lowered by AIMD while throttling is seen."""
        if self.aimd is not None:
            return self.aimd.limit
        return self.local.concurrency
