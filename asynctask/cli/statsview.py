"""The text form of ``asynctask stats``: one table per tenants, queues and functions.

Sums over the last ``minutes`` minutes of the per-minute series, the backlog and running now,
and the queue-wait and run-time percentiles of the last five minutes; the rows the daemon
did not send (past ``--top``) as one "N more" line per section. ``--json`` prints the
whole reply instead, per-minute series included.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

_COUNTS = ("submitted", "completed", "failed", "retried", "expired", "refused")
_NAMES = {"tenants": ("tenant",), "queues": ("tenant", "queue"), "functions": ("function",)}


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.1f}ms"
    return f"{value:.2f}s"


def render_stats(stats: dict[str, Any], minutes: int, console: Console) -> None:
    for kind, names in _NAMES.items():
        rows = stats.get(kind) or []
        if not rows:
            continue
        table = Table(
            box=None,
            pad_edge=False,
            title=f"{kind} (counts: last {minutes} min)",
            title_justify="left",
        )
        for name in names:
            table.add_column(name.upper())
        for column in ("PAUSED", "BACKLOG", "RUNNING", *(c.upper() for c in _COUNTS)):
            table.add_column(column, justify="right")
        for column in ("WAIT P50", "WAIT P99", "RUN P50", "RUN P99"):
            table.add_column(column, justify="right")
        for row in rows:
            counts = [str(sum(row[c][-minutes:])) for c in _COUNTS]
            wait, run = row["queue_wait"], row["run_time"]
            table.add_row(
                *(str(row[name]) for name in names),
                "yes" if row.get("paused") else "no",
                "-" if row.get("backlog") is None else str(row["backlog"]),
                "-" if row.get("running") is None else str(row["running"]),
                *counts,
                _ms(wait["p50"]), _ms(wait["p99"]), _ms(run["p50"]), _ms(run["p99"]),
            )  # fmt: skip
        console.print(table)
        hidden = (stats.get("more") or {}).get(kind) or {}
        if hidden.get("rows"):
            console.print(
                f"  {hidden['rows']} more {kind}: backlog {hidden['backlog']}, running "
                f"{hidden['running']} (--top N for more rows, --queue NAME for one queue)"
            )
    workers = stats.get("workers") or {}
    console.print(
        f"workers: {workers.get('size', 0)} (busy {workers.get('busy', 0)}, "
        f"idle {workers.get('idle', 0)}, max {workers.get('max', 0)})"
    )
    failures = stats.get("failures") or []
    if failures:
        console.print("last failures:")
        for f in failures[:10]:
            console.print(
                f"  {f['tenant']}/{f['id']} {f['function']} attempt {f['attempts']} "
                f"{f['kind']} {f['type']}: {f['message']}",
                markup=False,
                highlight=False,
            )
