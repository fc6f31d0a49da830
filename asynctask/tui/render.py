"""One frame of ``top`` from one ``stats`` snapshot: pure functions, no I/O, no clock.

The snapshot's per-minute series run oldest first and their last entry is the current, partial
minute. A count for "the last minute" that only changed once a minute would make a live view
look frozen, so each rate is a sliding 60-second estimate: the partial minute plus the share of
the previous minute that still lies inside the window (the usual sliding-window counter). The
sparkline shows the complete minutes and ends with that same estimate, so its last cell moves
with the number beside it.

The frame fits the terminal: every table is one title line, one header line and its rows
(``box=None``, cells never wrap), so the height budget is exact. When rows do not fit, failures
give way first, then functions and tenants, and the queue table scrolls around the highlight.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from asynctask.tui.nodes import nodes_line
from asynctask.tui.view import HELP, Snapshot, ViewState, current, visible, visible_queues

BLOCKS = "▁▂▃▄▅▆▇█"
SECONDS_PER_MINUTE = 60.0
FIXED_LINES = 3  # header, workers line, footer
MIN_ROWS = 3  # what tenants and functions keep before the queue table starts to scroll


def sparkline(values: Sequence[float]) -> str:
    """One block character per value, scaled to the largest; zero is a blank, and any
    non-zero value shows at least the lowest block so a trickle is not mistaken for nothing."""
    top = max(values, default=0)
    if top <= 0:
        return " " * len(values)
    cells = []
    for value in values:
        if value <= 0:
            cells.append(" ")
        else:
            level = min(len(BLOCKS), max(1, math.ceil(value / top * len(BLOCKS))))
            cells.append(BLOCKS[level - 1])
    return "".join(cells)


def per_minute(series: Sequence[float], now: float) -> float:
    """Events in the last 60 s: the partial minute plus the unexpired share of the one before
    (minutes are aligned on the epoch, as the daemon buckets them)."""
    if not series:
        return 0.0
    elapsed = (now % SECONDS_PER_MINUTE) / SECONDS_PER_MINUTE
    previous = series[-2] if len(series) > 1 else 0
    return float(series[-1]) + float(previous) * (1.0 - elapsed)


def window(series: Sequence[float], now: float, minutes: int) -> list[float]:
    """The last ``minutes`` cells of a sparkline: complete minutes, then the sliding estimate."""
    if minutes <= 0:
        return []
    complete = [float(v) for v in series[-minutes:-1]] if minutes > 1 else []
    return [*complete, per_minute(series, now)]


def count(value: float | None) -> str:
    """A count that stays narrow: 950, 12.3k, 4.1M; ``-`` when the daemon has no figure (a
    function known only from its counters has no current backlog)."""
    if value is None:
        return "-"
    if value < 10_000:
        return str(round(value))
    if value < 1_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.1f}M"


def duration(seconds: float | None) -> str:
    """A queue wait or a run time in the unit that reads best; ``-`` when nothing was measured."""
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return f"{seconds * 1_000_000:.0f}µs"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _limit(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


@dataclass(frozen=True, slots=True)
class Layout:
    """How much room a frame has: ``height`` None means unbounded (``--once``); a frame that is
    not ``interactive`` (``--once``) leaves out the key help."""

    width: int = 160
    height: int | None = None
    interactive: bool = True

    @property
    def spark_minutes(self) -> int:
        """Sparkline length: as much history as the width allows without squeezing names."""
        if self.width >= 170:
            return 15
        if self.width >= 140:
            return 10
        if self.width >= 120:
            return 5
        return 0


METRIC_COLUMNS = ("STATE", "BACKLOG", "RUNNING", "SUBMITTED/m", "COMPLETED/m", "FAILED/m",
                  "WAIT p50", "WAIT p99", "LIMIT", "RATE")  # fmt: skip


def metric_cells(row: Mapping[str, Any], now: float, minutes: int) -> list[str]:
    """The columns every table shares, in ``METRIC_COLUMNS`` order."""
    rates = []
    for name in ("submitted", "completed", "failed"):
        series = row.get(name) or []
        spark = sparkline(window(series, now, minutes))
        rates.append(f"{count(per_minute(series, now)):>6} {spark}".rstrip())
    wait = row.get("queue_wait") or {}
    return [
        "paused" if row.get("paused") else "",
        count(row.get("backlog")),
        count(row.get("running")),
        *rates,
        duration(wait.get("p50")),
        duration(wait.get("p99")),
        _limit(row.get("concurrency")),
        _limit(row.get("rate")),
    ]


def _table(title: str, names: Sequence[str], shown: int, total: int) -> Table:
    caption = title if shown == total else f"{title} ({shown} of {total})"
    table = Table(box=None, pad_edge=False, title=caption, title_justify="left",
                  title_style="bold", header_style="bold")  # fmt: skip
    for name in names:
        numeric = name not in ("", "TENANT", "QUEUE", "FUNCTION", "STATE", "ERROR", "WHERE")
        right = numeric and "/m" not in name
        table.add_column(
            name, no_wrap=True, overflow="ellipsis", justify="right" if right else "left"
        )
    return table


def _scroll(total: int, index: int, size: int) -> range:
    """The slice of ``total`` rows of length ``size`` that keeps row ``index`` in view."""
    size = max(1, min(total, size))
    start = min(max(0, index - size // 2), total - size)
    return range(start, start + size)


@dataclass(frozen=True, slots=True)
class Budget:
    """Rows each table may show."""

    queues: int
    tenants: int
    functions: int
    failures: int


def budget(
    layout: Layout, queues: int, tenants: int, functions: int, failures: int, extra: int = 0
) -> Budget:
    """Fit the tables into the height, less ``extra`` lines (the nodes line). Failures give
    way first (all of them if need be), then functions and tenants down to ``MIN_ROWS``, then
    the queue table scrolls down to one row, and only then do functions and tenants go
    altogether: the queues are what keys act on."""
    want = Budget(queues, tenants, functions, failures)
    height = layout.height
    if height is None:
        return want

    def excess(b: Budget) -> int:
        tables = 2 + b.queues + sum(n + 2 for n in (b.tenants, b.functions, b.failures) if n)
        return FIXED_LINES + extra + tables - height

    steps = (("failures", 0), ("functions", MIN_ROWS), ("tenants", MIN_ROWS), ("queues", 1),
             ("functions", 0), ("tenants", 0))  # fmt: skip
    for name, floor in steps:
        over = excess(want)
        if over <= 0:
            break
        rows = getattr(want, name)
        want = replace(want, **{name: max(min(rows, floor), rows - over)})
    return want


def queue_table(snapshot: Snapshot, state: ViewState, layout: Layout, rows: int) -> Table:
    """The interactive table: the highlighted row is reversed and marked with ``>``."""
    now = float(snapshot["now"])
    queues = visible_queues(snapshot, state.tenant)
    here = current(snapshot, state)
    keys = [(q["tenant"], q["queue"]) for q in queues]
    index = keys.index(here) if here in keys else 0
    shown = _scroll(len(queues), index, rows) if queues else range(0)
    table = _table("queues", ("", "TENANT", "QUEUE", *METRIC_COLUMNS), len(shown), len(queues))
    for i in shown:
        row = queues[i]
        selected = keys[i] == here
        table.add_row(
            ">" if selected else "",
            row["tenant"],
            row["queue"],
            *metric_cells(row, now, layout.spark_minutes),
            style="reverse" if selected else None,
        )
    return table


def tenant_table(snapshot: Snapshot, state: ViewState, layout: Layout, rows: int) -> Table:
    now = float(snapshot["now"])
    tenants = sorted(visible(snapshot.get("tenants", ()), state.tenant), key=lambda r: r["tenant"])
    table = _table("tenants", ("TENANT", *METRIC_COLUMNS), min(rows, len(tenants)), len(tenants))
    for row in tenants[:rows]:
        table.add_row(row["tenant"], *metric_cells(row, now, layout.spark_minutes))
    return table


def function_table(snapshot: Snapshot, layout: Layout, rows: int) -> Table:
    """Functions are shared by every tenant, so the tenant filter does not apply."""
    now = float(snapshot["now"])
    functions = sorted(snapshot.get("functions", ()), key=lambda r: r["function"])
    names = ("FUNCTION", *METRIC_COLUMNS, "AIMD", "RUN p50")
    table = _table("functions", names, min(rows, len(functions)), len(functions))
    for row in functions[:rows]:
        run = row.get("run_time") or {}
        table.add_row(
            row["function"],
            *metric_cells(row, now, layout.spark_minutes),
            _limit(row.get("aimd_limit")),
            duration(run.get("p50")),
        )
    return table


def failure_table(failures: Sequence[Mapping[str, Any]], rows: int) -> Table:
    """The newest failures, one line each: the first line of the error is what tells them apart."""
    names = ("TIME", "WHERE", "FUNCTION", "STATE", "ATTEMPT", "ERROR")
    table = _table("last failures", names, min(rows, len(failures)), len(failures))
    for failure in failures[:rows]:
        finished = failure.get("finished_at")
        when = time.strftime("%H:%M:%S", time.localtime(finished)) if finished else "-"
        message = str(failure.get("message") or "").strip().splitlines()
        kind = failure.get("type") or failure.get("kind") or "error"
        error = f"{kind}: {message[0] if message else ''}"
        table.add_row(
            when,
            f"{failure.get('tenant')}/{failure.get('queue')}",
            str(failure.get("function")),
            str(failure.get("state") or ""),
            str(failure.get("attempts") or ""),
            error,
        )
    return table


def occupied(snapshot: Snapshot) -> list[float]:
    """Per-minute pool occupancy: the pool's own series when the daemon sends one, else the
    tenants' per-minute running peaks added up (an upper bound: peaks need not coincide)."""
    pool = snapshot.get("workers") or {}
    if pool.get("occupied"):
        return [float(v) for v in pool["occupied"]]
    total: list[float] = []
    for row in snapshot.get("tenants", ()):
        series = row.get("running_per_minute") or []
        if len(total) < len(series):
            total = [0.0] * (len(series) - len(total)) + total
        offset = len(total) - len(series)
        for i, value in enumerate(series):
            total[offset + i] += value
    return total


def workers_line(snapshot: Snapshot, layout: Layout) -> Text:
    """Pool size and how much of it is busy now, then the occupancy of the last minutes."""
    pool = snapshot.get("workers") or {}
    size, busy = pool.get("size", 0), pool.get("busy", 0)
    share = f"{busy / size:.0%}" if size else "-"
    text = (
        f"workers {size}: {busy} busy, {pool.get('idle', 0)} idle, {share} occupied "
        f"(target {pool.get('target', '-')}, max {pool.get('max', '-')})"
    )
    minutes = layout.spark_minutes
    spark = sparkline(occupied(snapshot)[-minutes:]) if minutes else ""
    if spark.strip():
        text += f"   running per minute {spark}"
    return Text(text, no_wrap=True, overflow="ellipsis")


def header_line(snapshot: Snapshot, state: ViewState, source: str) -> Text:
    when = time.strftime("%H:%M:%S", time.localtime(float(snapshot["now"])))
    tenant = state.tenant if state.tenant is not None else "all"
    return Text(f"asynctask top  {source}  {when}  tenant: {tenant}", style="bold", no_wrap=True,
                overflow="ellipsis")  # fmt: skip


def footer_line(state: ViewState) -> Text:
    text = Text(HELP, style="dim", no_wrap=True, overflow="ellipsis")
    if state.message:
        text.append(f"   {state.message}", style="bold")
    return text


def frame(
    snapshot: Snapshot,
    state: ViewState,
    layout: Layout,
    source: str = "",
    nodes: Snapshot | None = None,
) -> RenderableType:
    """The whole screen for one snapshot; ``nodes``, the last ``nodes`` reply, adds the nodes
    line under the workers line when the daemon is one of a cluster."""
    queues = len(visible_queues(snapshot, state.tenant))
    tenants = len(visible(snapshot.get("tenants", ()), state.tenant))
    failures = visible(snapshot.get("failures", ()), state.tenant)
    functions = len(snapshot.get("functions", ()))
    cluster = nodes is not None and bool(nodes.get("cluster"))
    if layout.height is not None and layout.height < FIXED_LINES + 1 + 3:
        cluster = False  # the nodes line gives way to a queue table of one row (3 lines)
    fit = budget(layout, queues, tenants, functions, len(failures), extra=int(cluster))
    parts: list[RenderableType] = [
        header_line(snapshot, state, source),
        workers_line(snapshot, layout),
    ]
    if nodes is not None and cluster:
        parts.append(nodes_line(nodes))
    parts.append(queue_table(snapshot, state, layout, fit.queues))
    if fit.tenants:
        parts.append(tenant_table(snapshot, state, layout, fit.tenants))
    if fit.functions:
        parts.append(function_table(snapshot, layout, fit.functions))
    if fit.failures:
        parts.append(failure_table(failures, fit.failures))
    if layout.interactive:
        parts.append(footer_line(state))
    return Group(*parts)
