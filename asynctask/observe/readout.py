"""``stats`` and ``metrics``: the counters of ``observe.metrics`` joined with the scheduler's
current state (the rows ``asynctask queues`` shows), for one caller's view.

Pure: the daemon passes in the metrics, the queue report, the pool's numbers and the recent
failures; nothing here reads a clock or the scheduler itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from asynctask.observe.metrics import (
    BACKLOG,
    BUCKETS,
    COUNTERS,
    MINUTES,
    RUNNING,
    Key,
    Metrics,
    Rollup,
)
from asynctask.observe.prometheus import Family, Labels


def _entity(kind: str, row: dict[str, Any]) -> Key:
    if kind == "tenants":
        return ("tenant", row["tenant"], "")
    if kind == "queues":
        return ("queue", row["tenant"], row["queue"])
    return ("function", row["function"], "")


def _group(kind: str, key: Key) -> tuple[str, ...]:
    tenant, queue, function = key
    if kind == "tenants":
        return (tenant,)
    if kind == "queues":
        return (tenant, queue)
    return (function,)


_ROW_KEYS = {"tenants": ("tenant",), "queues": ("tenant", "queue"), "functions": ("function",)}


def stats(
    metrics: Metrics,
    report: dict[str, Any],
    workers: dict[str, Any],
    failures: Iterable[dict[str, Any]],
    now: float,
    tenants: Collection[str] | None,
) -> dict[str, Any]:
    """The ``stats`` reply: per tenant, queue and function, the per-minute counters (oldest
    minute first, the current one last), current and per-minute backlog and running, recent
    queue-wait and run-time percentiles, and the scheduler's limits; only ``tenants``' series
    (``None``: all)."""
    keys = [k for k in metrics.series_keys() if tenants is None or k[0] in tenants]
    reply: dict[str, Any] = {"now": now, "minutes": MINUTES}
    for kind, names in _ROW_KEYS.items():
        rollups: dict[tuple[str, ...], Rollup] = {}
        for key in keys:
            series = metrics.series(key, now)
            if series is None:
                continue
            group = _group(kind, key)
            rollup = rollups.get(group)
            if rollup is None:
                rollup = rollups[group] = Rollup(now)
            rollup.add(series)
        rows: dict[tuple[str, ...], dict[str, Any]] = {}
        for row in report.get(kind, ()):
            rows[tuple(row[name] for name in names)] = dict(row)
        for group in rollups:
            if group not in rows:
                rows[group] = dict(zip(names, group, strict=True))
        out = []
        for group, row in sorted(rows.items()):
            rollup = rollups.get(group) or Rollup(now)
            for index, name in enumerate(COUNTERS):
                row[name] = rollup.per_minute(index)
                row[f"{name}_total"] = rollup.totals[index]
            if "backlog" not in row and "queued" in row:
                row["backlog"] = row["queued"]
            row.setdefault("backlog", None)
            row.setdefault("running", None)
            row.setdefault("paused", False)
            ring = metrics.gauges(_entity(kind, row))
            row["backlog_per_minute"] = ring.per_minute(BACKLOG, now) if ring else [0] * MINUTES
            row["running_per_minute"] = ring.per_minute(RUNNING, now) if ring else [0] * MINUTES
            row["queue_wait"] = rollup.recent("wait") | {
                "sum": rollup.wait_sum,
                "total": rollup.wait_count,
            }
            row["run_time"] = rollup.recent("run") | {
                "sum": rollup.run_sum,
                "total": rollup.run_count,
            }
            out.append(row)
        reply[kind] = out
    reply["workers"] = workers
    reply["failures"] = [f for f in failures if tenants is None or f.get("tenant") in tenants]
    return reply


def _labels(key: Key) -> Labels:
    return (("tenant", key[0]), ("queue", key[1]), ("function", key[2]))


_COUNTER_HELP = {
    "submitted": "Tasks accepted.",
    "completed": "Tasks that ended succeeded.",
    "failed": "Tasks that ended failed (dead-lettered).",
    "expired": "Tasks whose TTL ran out before they ran.",
    "cancelled": "Tasks cancelled.",
    "refused": "Submits refused by back pressure (tasks).",
    "retried": "Failed attempts that were retried.",
}


#: The scheduler's gauges per report section: (row field, metric name, help).
_GAUGES: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, str, str], ...]], ...] = (
    (
        "queues",
        ("tenant", "queue"),
        (
            ("backlog", "asynctask_queue_backlog", "Tasks queued or scheduled, per queue."),
            ("running", "asynctask_queue_running", "Attempts running, per queue."),
            ("paused", "asynctask_queue_paused", "1 when the queue or its tenant is paused."),
            ("tokens", "asynctask_queue_tokens", "Rate-limit tokens left, per queue."),
        ),
    ),
    (
        "tenants",
        ("tenant",),
        (
            ("backlog", "asynctask_tenant_backlog", "Tasks queued or scheduled."),
            ("running", "asynctask_tenant_running", "Attempts running."),
            ("tokens", "asynctask_tenant_tokens", "Rate-limit tokens left."),
        ),
    ),
    (
        "functions",
        ("function",),
        (
            ("queued", "asynctask_function_queued", "Tasks queued, per function."),
            ("running", "asynctask_function_running", "Attempts running."),
            ("aimd_limit", "asynctask_function_aimd_limit", "Current AIMD concurrency limit."),
            ("tokens", "asynctask_function_tokens", "Rate-limit tokens left."),
        ),
    ),
)


def exposition(
    metrics: Metrics,
    report: dict[str, Any],
    workers: dict[str, Any],
    extra: dict[str, float],
    now: float,
) -> list[Family]:
    """Every metric family, for the Prometheus text format (an admin's view: all tenants)."""
    keys = sorted(metrics.series_keys())
    families: list[Family] = []
    for index, name in enumerate(COUNTERS):
        family = Family(f"asynctask_tasks_{name}_total", "counter", _COUNTER_HELP[name])
        for key in keys:
            series = metrics.series(key, now)
            if series is not None:
                family.add(_labels(key), series.totals[index])
        families.append(family)
    for attr, name, text in (
        ("wait", "asynctask_queue_wait_seconds", "From eligible to dispatched, per attempt."),
        ("run", "asynctask_run_time_seconds", "From start in the worker to end, per attempt."),
    ):
        family = Family(name, "histogram", text)
        for key in keys:
            series = metrics.series(key, now)
            if series is not None:
                histogram = getattr(series, attr)
                family.add_histogram(_labels(key), BUCKETS, histogram.buckets, histogram.sum)
        families.append(family)
    for kind, label_names, gauges in _GAUGES:
        for field_name, name, text in gauges:
            family = Family(name, "gauge", text)
            for row in report.get(kind, ()):
                value = row.get(field_name)
                if value is not None:
                    family.add(tuple((key, row[key]) for key in label_names), value)
            families.append(family)
    pool = Family("asynctask_workers", "gauge", "Worker slots by state.")
    for state in ("idle", "busy"):
        pool.add((("state", state),), workers.get(state, 0))
    families.append(pool)
    for name in ("size", "target", "max"):
        family = Family(f"asynctask_workers_{name}", "gauge", f"Worker pool {name}.")
        family.add((), workers.get(name, 0))
        families.append(family)
    for name, value in sorted(extra.items()):
        kind = "counter" if name.endswith("_total") else "gauge"
        family = Family(f"asynctask_{name}", kind, name.replace("_", " ").capitalize() + ".")
        family.add((), value)
        families.append(family)
    return families
