"""Traffic-control settings the scheduler enforces: plain frozen values, validated by ``config``.

``None`` means "no limit". A rate without a burst gets one second's worth of burst (at least 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from asynctask.core.sharding import ShardSettings


@dataclass(frozen=True, slots=True)
class TenantLimits:
    weight: float = 1.0
    concurrency: int | None = None
    rate: float | None = None
    burst: float | None = None
    max_backlog: int = 100_000
    max_backlog_bytes: int = 256 * 1024 * 1024  # payload bytes of its waiting tasks
    max_queues: int = 1000  # queue names it may have at once
    max_cron: int = 100  # cron entries it may have


@dataclass(frozen=True, slots=True)
class QueueLimits:
    concurrency: int | None = None
    rate: float | None = None
    burst: float | None = None


@dataclass(frozen=True, slots=True)
class FunctionLimits:
    concurrency: int | None = None
    rate: float | None = None
    burst: float | None = None
    aimd: bool = True


@dataclass(frozen=True, slots=True)
class AimdSettings:
    increase: float = 1.0
    decrease: float = 0.5
    window: float = 10.0
    min_throttles: int = 3
    throttle_ratio: float = 0.1
    idle_decay: float = 30.0


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """Everything the core needs to know from the configuration."""

    aging: float = 2.0  # seconds of waiting worth one priority level
    # seconds of its own typical attempts a tenant with an idle worker of its own may run ahead
    # of its fair share rather than have another tenant's worker replaced
    # (``Dispatcher._warm_instead``)
    affinity: float = 1.0
    reserve: Mapping[int, int] = field(default_factory=dict)  # priority >= p: n slots kept free
    caps: Mapping[int, int] = field(default_factory=dict)  # priority <= p: at most n running
    capacity: int = 8  # the most attempts that can run at once (the pool's maximum)
    tenant_defaults: TenantLimits = field(default_factory=TenantLimits)
    tenants: Mapping[str, TenantLimits] = field(default_factory=dict)
    queues: Mapping[tuple[str, str], QueueLimits] = field(default_factory=dict)
    functions: Mapping[str, FunctionLimits] = field(default_factory=dict)
    aimd: AimdSettings = field(default_factory=AimdSettings)
    sharding: ShardSettings = field(default_factory=ShardSettings)

    def tenant(self, name: str) -> TenantLimits:
        return self.tenants.get(name, self.tenant_defaults)

    def queue(self, tenant: str, name: str) -> QueueLimits:
        return self.queues.get((tenant, name), _NO_QUEUE_LIMITS)

    def function(self, name: str) -> FunctionLimits:
        return self.functions.get(name, _NO_FUNCTION_LIMITS)


_NO_QUEUE_LIMITS = QueueLimits()
_NO_FUNCTION_LIMITS = FunctionLimits()


def burst_of(rate: float | None, burst: float | None) -> float:
    if burst is not None:
        return burst
    return max(1.0, rate or 1.0)


def shared(limits: FunctionLimits, share: float) -> FunctionLimits:
    """One daemon's part of a function's budget when ``1 / share`` daemons share a database
    (docs/scale-out.md, "Per-function limits"): rate and burst scale exactly, so the cluster's
    rate stays the configured one; a concurrency limit scales down but never below 1, so one
    lower than the number of daemons is exceeded (each may run one)."""
    if share >= 1.0:
        return limits
    return FunctionLimits(
        concurrency=None
        if limits.concurrency is None
        else max(1, int(limits.concurrency * share + 1e-9)),
        rate=None if limits.rate is None else limits.rate * share,
        burst=None
        if limits.rate is None and limits.burst is None
        else max(1.0, burst_of(limits.rate, limits.burst) * share),
        aimd=limits.aimd,
    )
