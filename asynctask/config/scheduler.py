"""``[scheduler]``, ``[aimd]``, ``[tenants.*]``, ``[queues.*]`` and ``[functions.*]``: the
scheduler's settings and each function's submit defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asynctask.config.sections import FunctionDefaults
from asynctask.config.values import (
    _bool,
    _checked_name,
    _choice,
    _duration,
    _get,
    _int,
    _number,
    _only,
    _positive_duration,
    _priority_table,
    _queue_name,
    _rate,
    _section,
    _size,
)
from asynctask.core.limits import (
    AimdSettings,
    FunctionLimits,
    QueueLimits,
    SchedulerSettings,
    TenantLimits,
)
from asynctask.core.sharding import CONFINEMENTS, ShardSettings
from asynctask.errors import ConfigError
from asynctask.model import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    is_function_ref,
    is_name,
)

_SCHEDULER_KEYS = {
    "priority_aging",
    "affinity",
    "reserve",
    "caps",
    "shards",
    "shards_per_tenant",
    "shard_confinement",
    "fault_threshold",
    "fault_ratio",
    "fault_window",
    "fault_backoff",
    "fault_backoff_max",
    "shard_probation",
}


_TENANT_KEYS = {
    "weight", "concurrency", "rate", "burst", "max_backlog", "max_backlog_bytes", "max_queues",
    "max_cron", "functions", "commands", "user",
}  # fmt: skip


_QUEUE_KEYS = {"concurrency", "rate", "burst"}


_FUNCTION_KEYS = {
    "queue", "concurrency", "rate", "burst", "aimd", "retries", "timeout", "priority"
}  # fmt: skip


def _scheduler(
    data: Mapping[str, Any], capacity: int, workers: int
) -> tuple[SchedulerSettings, dict[str, FunctionDefaults]]:
    """The scheduler's settings, and each ``[functions."mod:fn"]``'s submit defaults."""
    scheduler = _section(data, "scheduler")
    _only(scheduler, "scheduler.", _SCHEDULER_KEYS)
    aimd = _aimd(_section(data, "aimd"))
    defaults, tenants = _tenants(_section(data, "tenants"))
    queues = _queues(_section(data, "queues"))
    functions, function_defaults = _functions(_section(data, "functions"))
    settings = SchedulerSettings(
        aging=_get(scheduler, "scheduler.priority_aging", 2.0, _duration),
        affinity=_get(scheduler, "scheduler.affinity", 1.0, _duration),
        reserve=_get(scheduler, "scheduler.reserve", {}, _priority_table("scheduler.reserve")),
        caps=_get(scheduler, "scheduler.caps", {}, _priority_table("scheduler.caps")),
        capacity=capacity,
        tenant_defaults=defaults,
        tenants=tenants,
        queues=queues,
        functions=functions,
        aimd=aimd,
        sharding=_sharding(scheduler, workers),
    )
    return settings, function_defaults


def _aimd(aimd: Mapping[str, Any]) -> AimdSettings:
    """``[aimd]``."""
    a = AimdSettings()
    _only(aimd, "aimd.", {"increase", "decrease", "window", "min_throttles", "throttle_ratio",
                          "idle_decay"})  # fmt: skip
    return AimdSettings(
        increase=_get(aimd, "aimd.increase", a.increase, _number(0.01, 1000)),
        decrease=_get(aimd, "aimd.decrease", a.decrease, _number(0.01, 0.99)),
        window=_get(aimd, "aimd.window", a.window, _duration),
        min_throttles=_get(aimd, "aimd.min_throttles", a.min_throttles, _int(1, 10**6)),
        throttle_ratio=_get(aimd, "aimd.throttle_ratio", a.throttle_ratio, _number(0.0, 1.0)),
        idle_decay=_get(aimd, "aimd.idle_decay", a.idle_decay, _duration),
    )


def _tenants(tenants_raw: Mapping[str, Any]) -> tuple[TenantLimits, dict[str, TenantLimits]]:
    """``[tenants.*]`` (every tenant's defaults) and each ``[tenants.<t>]`` built on them."""
    defaults = TenantLimits()
    if "*" in tenants_raw:
        defaults = _tenant_limits(_section(tenants_raw, "*"), "tenants.*", defaults)
    tenants = {
        name: _tenant_limits(_section(tenants_raw, name), f"tenants.{name}", defaults)
        for name in tenants_raw
        if name != "*" and _checked_name(name, "tenants")
    }
    return defaults, tenants


def _queues(section: Mapping[str, Any]) -> dict[tuple[str, str], QueueLimits]:
    """``[queues."<tenant>/<queue>"]``."""
    queues: dict[tuple[str, str], QueueLimits] = {}
    for key in section:
        tenant, sep, queue = str(key).partition("/")
        if not sep or not is_name(tenant) or not is_name(queue):
            raise ConfigError(f'queues."{key}": name queues as "<tenant>/<queue>"')
        path = f'queues."{key}"'
        raw = _section(section, key)
        _only(raw, f"{path}.", _QUEUE_KEYS)
        rate = _get(raw, f"{path}.rate", None, _rate)
        queues[(tenant, queue)] = QueueLimits(
            concurrency=_get(raw, f"{path}.concurrency", None, _int(1, 10**6)),
            rate=rate,
            burst=_get(raw, f"{path}.burst", None, _number(1, 10**9)),
        )
    return queues


def _functions(
    section: Mapping[str, Any],
) -> tuple[dict[str, FunctionLimits], dict[str, FunctionDefaults]]:
    """``[functions."mod:fn"]``: each function's limits, and its submit defaults."""
    functions: dict[str, FunctionLimits] = {}
    function_defaults: dict[str, FunctionDefaults] = {}
    for name in section:
        path = f'functions."{name}"'
        if not is_function_ref(name):
            raise ConfigError(f"{path}: name functions as package.module:function")
        raw = _section(section, name)
        _only(raw, f"{path}.", _FUNCTION_KEYS)
        functions[name] = FunctionLimits(
            concurrency=_get(raw, f"{path}.concurrency", None, _int(1, 10**6)),
            rate=_get(raw, f"{path}.rate", None, _rate),
            burst=_get(raw, f"{path}.burst", None, _number(1, 10**9)),
            aimd=_get(raw, f"{path}.aimd", True, _bool),
        )
        function_defaults[name] = FunctionDefaults(
            queue=_get(raw, f"{path}.queue", None, _queue_name),
            retries=_get(raw, f"{path}.retries", None, _int(0, 1000)),
            timeout=_get(raw, f"{path}.timeout", None, _duration),
            priority=_get(raw, f"{path}.priority", None, _int(PRIORITY_MIN, PRIORITY_MAX)),
        )
    return functions, function_defaults


def _sharding(scheduler: Mapping[str, Any], workers: int) -> ShardSettings:
    """``[scheduler]`` shard keys; ``shards = 0`` (the default) means one shard per worker."""
    d = ShardSettings()
    shards = _get(scheduler, "scheduler.shards", 0, _int(0, 1024)) or workers
    if shards > workers:
        raise ConfigError(
            f"scheduler.shards ({shards}) cannot exceed workers.min_workers ({workers}): "
            "every shard needs a worker"
        )
    return ShardSettings(
        shards=shards,
        per_tenant=_get(scheduler, "scheduler.shards_per_tenant", d.per_tenant, _int(1, 1024)),
        confinement=_get(
            scheduler, "scheduler.shard_confinement", d.confinement, _choice(*CONFINEMENTS)
        ),
        fault_threshold=_get(
            scheduler, "scheduler.fault_threshold", d.fault_threshold, _int(1, 10**6)
        ),
        fault_ratio=_get(scheduler, "scheduler.fault_ratio", d.fault_ratio, _number(0.0, 1.0)),
        fault_window=_get(scheduler, "scheduler.fault_window", d.fault_window, _positive_duration),
        fault_backoff=_get(scheduler, "scheduler.fault_backoff", d.fault_backoff, _duration),
        fault_backoff_max=_get(
            scheduler, "scheduler.fault_backoff_max", d.fault_backoff_max, _duration
        ),
        probation=_get(scheduler, "scheduler.shard_probation", d.probation, _int(0, 10**9)),
    )


def _tenant_limits(raw: Mapping[str, Any], path: str, base: TenantLimits) -> TenantLimits:
    _only(raw, f"{path}.", _TENANT_KEYS)
    return TenantLimits(
        weight=_get(raw, f"{path}.weight", base.weight, _number(0.001, 10**6)),
        concurrency=_get(raw, f"{path}.concurrency", base.concurrency, _int(1, 10**6)),
        rate=_get(raw, f"{path}.rate", base.rate, _rate),
        burst=_get(raw, f"{path}.burst", base.burst, _number(1, 10**9)),
        max_backlog=_get(raw, f"{path}.max_backlog", base.max_backlog, _int(1, 10**9)),
        max_backlog_bytes=_get(raw, f"{path}.max_backlog_bytes", base.max_backlog_bytes, _size(1)),
        max_queues=_get(raw, f"{path}.max_queues", base.max_queues, _int(1, 10**6)),
        max_cron=_get(raw, f"{path}.max_cron", base.max_cron, _int(0, 10**6)),
    )
