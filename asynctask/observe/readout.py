"""``stats`` and ``metrics``: the counters of ``observe.metrics`` joined with the scheduler's
current state (the rows ``asynctask queues`` shows), for one caller's view.

Pure: the daemon passes in the metrics, the queue report, the pool's numbers and the recent
failures; nothing here reads a clock or the scheduler itself.
"""

from __future__ import annotations

import functools
import heapq
import operator
from collections.abc import Awaitable, Callable, Collection, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

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

_T = TypeVar("_T")


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


#: Rows of each section (tenants, queues, functions) ``stats`` shows unless asked for fewer or
#: more; the rest are summed in ``more``. ``MAX_TOP`` is the most a request may ask for.
DEFAULT_TOP: Final = 50
MAX_TOP: Final = 1000
#: Items handled between two ``yield``s of a readout's steps: about a millisecond of work.
CHUNK: Final = 500
#: Series summed into one row between two ``yield``s (``Rollup.add`` costs ~10 us).
ROLLUP_CHUNK: Final = 100

#: One tenant, queue or function the scheduler knows: its group (``(tenant,)``, ``(tenant,
#: queue)`` or ``(function,)``), backlog (``queued`` for a function), running, and how to
#: build its full report row should it be shown (``core/report.py``; a row costs microseconds, so
#: only the shown ones are built).
Entry = tuple[tuple[str, ...], int, int, Callable[[], dict[str, Any]]]
#: Per section (``tenants``, ``queues``, ``functions``), a callable that iterates its entries
#: anew: a readout passes over them twice (rank, then build the shown rows) instead of keeping
#: 20,000 of them alive in between.
Entries = Mapping[str, Callable[[], Iterable[Entry]]]
#: A readout in steps: each ``yield`` ends a chunk of work (the daemon lets the event loop run
#: there); the generator's return value is the readout.
Steps = Generator[None, None, _T]


@dataclass(frozen=True, slots=True)
class Page:
    """Which rows a ``stats`` readout shows: the ``top`` of each section by load (backlog plus
    running, then the activity of the last hour), and with ``queue`` only the queues of that
    name (the detail of one queue, whatever its rank)."""

    top: int = DEFAULT_TOP
    queue: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.top <= MAX_TOP:
            raise ValueError(f"top must be between 1 and {MAX_TOP}, not {self.top}")


def finish(steps: Steps[_T]) -> _T:
    """Run a readout's steps to the end at once (tests, and callers without an event loop)."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return cast("_T", stop.value)


async def drive(steps: Steps[_T], pause: Callable[[], Awaitable[object]]) -> _T:
    """Run a readout's steps, awaiting ``pause()`` (the daemon's ``asyncio.sleep(0)``) after
    each, so no step holds the event loop for more than a chunk's work."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return cast("_T", stop.value)
        await pause()


def _empty_more() -> dict[str, Any]:
    more: dict[str, Any] = {"rows": 0, "backlog": 0, "running": 0}
    for name in COUNTERS:
        more[f"{name}_total"] = 0
    return more


def _id(group: tuple[str, ...]) -> str:
    """A group as one string (names have no NUL): strings are not tracked by the garbage
    collector, and 20,000 tuples kept alive through a readout made CPython run a full
    collection of the daemon's heap in the middle of it (300 ms)."""
    return "\0".join(group)


class _Section:
    """What a readout gathers about one section's groups before choosing the rows to show:
    plain ints and strings by group id, nothing the collector tracks per group."""

    __slots__ = ("activity", "load", "loads")

    def __init__(self) -> None:
        self.load: dict[str, int] = {}  # backlog plus running, for the entities the scheduler has
        self.loads: dict[str, tuple[int, int]] = {}
        self.activity: dict[str, int] = {}  # the sum of the series' totals

    def top(self, n: int) -> list[str]:
        load, activity = self.load, self.activity
        ids = load.keys() | activity.keys()
        return heapq.nlargest(n, ids, key=lambda i: (load.get(i, 0), activity.get(i, 0), i))


def _series_keys(
    metrics: Metrics, tenants: Collection[str] | None, kind: str, page: Page
) -> list[Key]:
    return [
        key
        for key in metrics.series_keys()
        if (tenants is None or key[0] in tenants)
        and (kind != "queues" or page.queue is None or key[1] == page.queue)
    ]


def _entries(entries: Entries, kind: str, page: Page) -> Iterable[Entry]:
    """A section's entries, with ``page.queue`` applied to the queues (the scheduler's side
    applies it already; rows passed in whole may not)."""
    if kind != "queues" or page.queue is None:
        return entries[kind]()
    return (entry for entry in entries[kind]() if entry[0][1] == page.queue)


def _gather(
    metrics: Metrics,
    entries: Entries,
    now: float,
    tenants: Collection[str] | None,
    page: Page,
) -> Steps[dict[str, _Section]]:
    """Every visible group's load and activity: one cheap pass over the series and the
    entries, in chunks; no row is built here."""
    sections = {kind: _Section() for kind in _ROW_KEYS}
    for kind, section in sections.items():
        keys = _series_keys(metrics, tenants, kind, page)
        activity = section.activity
        for start in range(0, len(keys), CHUNK):
            for key in keys[start : start + CHUNK]:
                series = metrics.series(key, now)
                if series is not None:
                    ident = _id(_group(kind, key))
                    activity[ident] = activity.get(ident, 0) + sum(series.totals)
            yield
        load = section.load
        for count, (group, backlog, running, _) in enumerate(_entries(entries, kind, page), 1):
            load[_id(group)] = backlog + running
            if count % CHUNK == 0:
                yield
        yield
    return sections


def stats_steps(
    metrics: Metrics,
    entries: Entries,
    workers: dict[str, Any],
    failures: Iterable[dict[str, Any]],
    now: float,
    tenants: Collection[str] | None,
    page: Page = Page(),
) -> Steps[dict[str, Any]]:
    """The ``stats`` reply, in steps: per tenant, queue and function, the per-minute counters
    (oldest minute first, the current one last), current and per-minute backlog and running,
    recent queue-wait and run-time percentiles, and the scheduler's limits; only ``tenants``'
    series (``None``: all).

    Each section shows its ``page.top`` rows by load (backlog plus running, then activity;
    sorted by name); ``more[section]`` sums the rest (``rows``, ``backlog``, ``running``, the
    ``*_total`` counters). Choosing them is a few passes over the groups (microseconds each,
    yielding every ``CHUNK``); only the shown rows get their per-minute series, rings and
    percentiles, which is where a row's cost is. So a reply's size is bounded by ``top``
    whatever exists. The shown rows' gauges are sampled first, so their peaks include now.
    """
    sections = yield from _gather(metrics, entries, now, tenants, page)
    reply: dict[str, Any] = {"now": now, "minutes": MINUTES}
    more: dict[str, dict[str, Any]] = {}
    for kind, names in _ROW_KEYS.items():
        section = sections[kind]
        shown = set(section.top(page.top))
        yield
        hidden = _empty_more()
        rows: dict[str, dict[str, Any]] = {}
        keys: dict[str, list[Key]] = {group: [] for group in shown}
        for count, (group, backlog, running, make_row) in enumerate(
            _entries(entries, kind, page), 1
        ):
            ident = _id(group)
            if ident in shown:
                row = rows[ident] = make_row()
                metrics.sample(_entity(kind, row), backlog, running, now)
            else:
                hidden["backlog"] += backlog
                hidden["running"] += running
            if count % CHUNK == 0:
                yield
        totals = [0] * len(COUNTERS)
        for count, key in enumerate(_series_keys(metrics, tenants, kind, page), 1):
            ident = _id(_group(kind, key))
            if ident in shown:
                keys[ident].append(key)
            else:
                series = metrics.series(key, now)
                if series is not None:
                    totals = list(map(operator.add, totals, series.totals))
            if count % CHUNK == 0:
                yield
        hidden["rows"] = len(section.load.keys() | section.activity.keys()) - len(shown)
        for name, value in zip(COUNTERS, totals, strict=True):
            hidden[f"{name}_total"] = value
        more[kind] = hidden
        out = []
        for ident in sorted(shown):
            row = rows.get(ident) or dict(zip(names, ident.split("\0"), strict=True))
            out.append((yield from _stats_row(kind, row, metrics, keys[ident], now)))
        reply[kind] = out
        yield
    reply["more"] = more
    reply["workers"] = workers
    reply["failures"] = [f for f in failures if tenants is None or f.get("tenant") in tenants]
    return reply


def _stats_row(
    kind: str, row: dict[str, Any], metrics: Metrics, keys: list[Key], now: float
) -> Steps[dict[str, Any]]:
    """A shown row's counters and percentiles: the sum of its series, ``ROLLUP_CHUNK`` at a
    time (a tenant's row sums every one of its queues' series: 20,000 take 0.3 s)."""
    rollup = Rollup(now)
    for index, key in enumerate(keys, 1):
        series = metrics.series(key, now)
        if series is not None:
            rollup.add(series)
        if index % ROLLUP_CHUNK == 0:
            yield
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
    row["queue_wait"] = rollup.recent("wait") | {"sum": rollup.wait_sum, "total": rollup.wait_count}
    row["run_time"] = rollup.recent("run") | {"sum": rollup.run_sum, "total": rollup.run_count}
    return row


def entries_of(
    report: Mapping[str, Iterable[dict[str, Any]]],
) -> dict[str, Callable[[], list[Entry]]]:
    """Entries for rows already built (a ``queue_report``): the full readout of small states."""
    entries: dict[str, Callable[[], list[Entry]]] = {}
    for kind, names in _ROW_KEYS.items():
        backlog = "queued" if kind == "functions" else "backlog"
        listed: list[Entry] = [
            (
                tuple(row[name] for name in names),
                row.get(backlog) or 0,
                row.get("running") or 0,
                functools.partial(dict, row),
            )
            for row in report.get(kind, ())
        ]
        entries[kind] = functools.partial(list, listed)
    return entries


def stats(
    metrics: Metrics,
    report: Mapping[str, Iterable[dict[str, Any]]],
    workers: dict[str, Any],
    failures: Iterable[dict[str, Any]],
    now: float,
    tenants: Collection[str] | None,
    page: Page = Page(),
) -> dict[str, Any]:
    """``stats_steps`` run at once on rows already built."""
    return finish(stats_steps(metrics, entries_of(report), workers, failures, now, tenants, page))


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


#: Rows of each section whose gauges the exposition shows, the busiest first (backlog plus
#: running); ``asynctask_readout_hidden_rows{section=...}`` counts the rest. Gauges may come
#: and go between scrapes, unlike counters, so ranking by load is safe here.
GAUGE_TOP: Final = {"tenants": 500, "queues": 200, "functions": 200}


def _top(entries: Iterable[Entry], n: int) -> Steps[tuple[list[Entry], int]]:
    """The ``n`` entries of most load (in the order met), and how many entries there were."""
    heap: list[tuple[int, int, Entry]] = []
    seen = 0
    for entry in entries:
        item = (entry[1] + entry[2], -seen, entry)  # ties: the first met wins
        if len(heap) < n:
            heapq.heappush(heap, item)
        elif item[:2] > heap[0][:2]:
            heapq.heapreplace(heap, item)
        seen += 1
        if seen % CHUNK == 0:
            yield
    kept = sorted(heap, key=lambda item: -item[1])
    return [item[2] for item in kept], seen


def exposition_steps(
    metrics: Metrics,
    entries: Entries,
    workers: dict[str, Any],
    extra: dict[str, float],
    now: float,
) -> Steps[list[Family]]:
    """Every metric family, for the Prometheus text format (an admin's view: all tenants), in
    steps. Its size is bounded whatever the number of queues: the counters and histograms of
    the exposed keys and one overflow series per tenant (``observe.metrics``), the gauges of
    the ``GAUGE_TOP`` busiest rows of each section."""
    exposed = [(_labels(key), series) for key, series in metrics.exposed()]
    exposed += [((("tenant", t), ("overflow", "true")), s) for t, s in metrics.overflow()]
    families: list[Family] = []
    for index, name in enumerate(COUNTERS):
        family = Family(f"asynctask_tasks_{name}_total", "counter", _COUNTER_HELP[name])
        for labels, series in exposed:
            family.add(labels, series.totals[index])
        families.append(family)
    yield
    for attr, name, text in (
        ("wait", "asynctask_queue_wait_seconds", "From eligible to dispatched, per attempt."),
        ("run", "asynctask_run_time_seconds", "From start in the worker to end, per attempt."),
    ):
        family = Family(name, "histogram", text)
        for labels, series in exposed:
            histogram = getattr(series, attr)
            family.add_histogram(labels, BUCKETS, histogram.buckets, histogram.sum)
        families.append(family)
        yield
    hidden = Family(
        "asynctask_readout_hidden_rows",
        "gauge",
        "Tenants, queues or functions whose gauges are not shown (only the busiest are).",
    )
    for kind, label_names, gauges in _GAUGES:
        shown, seen = yield from _top(entries[kind](), GAUGE_TOP[kind])
        hidden.add((("section", kind),), seen - len(shown))
        rows = [make_row() for _, _, _, make_row in shown]
        rows.sort(key=lambda row: tuple(row[key] for key in label_names))
        for field_name, name, text in gauges:
            family = Family(name, "gauge", text)
            for row in rows:
                value = row.get(field_name)
                if value is not None:
                    family.add(tuple((key, row[key]) for key in label_names), value)
            families.append(family)
        yield
    families.append(hidden)
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


def exposition(
    metrics: Metrics,
    report: Mapping[str, Iterable[dict[str, Any]]],
    workers: dict[str, Any],
    extra: dict[str, float],
    now: float,
) -> list[Family]:
    """``exposition_steps`` run at once on rows already built."""
    return finish(exposition_steps(metrics, entries_of(report), workers, extra, now))
