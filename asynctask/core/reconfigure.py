"""Giving a running ``Scheduler`` new limits (a re-read config: SIGHUP, ``asynctask reload``).

Only the settings read where they are used change: tenant, queue and function limits, and the
knobs ``dispatch`` reads each time (``affinity``, ``reserve``, ``caps``). Capacity, sharding,
aging and AIMD tuning were built into the entities and heaps and stay as they are.

Why this is safe between two steps: every limit is read at admission or dispatch, never cached
in a decision. An entity parked on a limit is woken by what releases that limit anyway: one
parked on concurrency has attempts running (an attempt ending wakes it), one parked on a rate
has a timer (it fires and re-reads the new bucket). So a raised limit takes effect at the next
attempt end or timer, a lowered one at the next dispatch, and no task is lost or run twice. A
rate bucket or AIMD state whose settings did not change is kept, so a reload does not hand out
a fresh burst.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from asynctask.core.bucket import TokenBucket
from asynctask.core.limits import FunctionLimits, SchedulerSettings, burst_of
from asynctask.core.scheduler import Scheduler


def reconfigure(
    scheduler: Scheduler,
    settings: SchedulerSettings,
    declared: Mapping[str, FunctionLimits],
    now: float,
) -> None:
    """Take the live parts of ``settings``; ``declared`` are the limits functions declared in
    code (a config key, where set, still wins over them)."""
    scheduler.settings = replace(
        scheduler.settings,
        affinity=settings.affinity,
        reserve=settings.reserve,
        caps=settings.caps,
        tenant_defaults=settings.tenant_defaults,
        tenants=settings.tenants,
        queues=settings.queues,
        functions=settings.functions,
    )
    current = scheduler.settings
    for tenant in scheduler.tenants():
        limits = current.tenant(tenant.name)
        if (tenant.limits.rate, tenant.limits.burst) != (limits.rate, limits.burst):
            tenant.bucket = _bucket(limits.rate, limits.burst, now)
        tenant.limits = limits
        tenant.weight = limits.weight
        for queue in tenant.queues.values():
            queue_limits = current.queue(tenant.name, queue.name)
            if (queue.limits.rate, queue.limits.burst) != (queue_limits.rate, queue_limits.burst):
                queue.bucket = _bucket(queue_limits.rate, queue_limits.burst, now)
            queue.limits = queue_limits
    for function in list(scheduler.functions()):
        # merges the config's keys over the declared ones and wakes the function's waiters
        scheduler.declare_function_limits(
            function.name, declared.get(function.name, FunctionLimits()), now
        )


def _bucket(rate: float | None, burst: float | None, now: float) -> TokenBucket | None:
    return TokenBucket(rate, burst_of(rate, burst), now) if rate is not None else None
