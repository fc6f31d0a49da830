"""Counters per minute and latency histograms, per (tenant, queue, function).

One ``Series`` per (tenant, queue, function) that has seen an event. It keeps:

* cumulative totals of each counter (what Prometheus scrapes);
* the same counters per minute in a ring of ``MINUTES`` slots (what ``stats`` and ``top``
  show), stored flat (``slot * N_COUNTERS + counter``) so that summing series for a tenant or a
  function is one element-wise pass;
* cumulative queue-wait and run-time histograms, and per-minute bucket counts for the recent
  percentiles;
and, apart from the series, per-minute peaks of the backlog and running gauges of each tenant,
queue and function (the scheduler counts those per entity, not per triple), sampled by the
daemon.

Why a ring with a minute stamp instead of a timer that rolls every series over: a series is
only touched when it has an event, and ``_advance`` clears the minutes it skipped (at most the
whole ring) on its next touch, so an idle daemon does no work at all. Readers advance the
series to the current minute first, so a quiet series reads as zeros, not as an hour-old slot.

Cardinality (issue 14): every key has its own series, which ``stats`` reads, but only the
first ``EXPOSED_PER_TENANT`` keys of each tenant (``EXPOSED_MAX`` in all) are *exposed*, i.e.
given their own labels in the Prometheus text; each key after those also counts into its
tenant's overflow series, which the exposition shows as ``{tenant="t", overflow="true"}``.
This is OpenTelemetry's cardinality limit (the SDK's ``otel.metric.overflow`` series), chosen
over "the top N by activity" because a key's membership never changes: a counter that moved
between its own labels and the overflow would go backwards, which Prometheus reads as a
reset. ``sum by (tenant)`` stays exact; a scrape costs the exposed series, not every key.
Exposure is decided when a key is first counted, so after a restart it follows the order
keys are seen again.

Buckets follow Prometheus' defaults stretched to the task range (1 ms to 30 min); a percentile
is interpolated inside its bucket, as ``histogram_quantile`` does, so it is an estimate within
one bucket's width.
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from typing import Any, Final

#: Minutes of per-minute history kept.
MINUTES: Final = 60
#: Minutes the recent percentiles (``stats``' p50/p99) are computed over.
RECENT_MINUTES: Final = 5

COUNTERS: Final = ("submitted", "completed", "failed", "expired", "cancelled", "refused", "retried")
SUBMITTED, COMPLETED, FAILED, EXPIRED, CANCELLED, REFUSED, RETRIED = range(len(COUNTERS))
N_COUNTERS: Final = len(COUNTERS)

#: Upper bounds (seconds) of the histogram buckets; one more bucket holds everything above.
BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
)
N_BUCKETS: Final = len(BUCKETS) + 1

#: Keys per tenant, and in all, given their own labels in the exposition (see above).
EXPOSED_PER_TENANT: Final = 100
EXPOSED_MAX: Final = 500

GAUGES: Final = ("backlog", "running")
BACKLOG, RUNNING = range(len(GAUGES))

Key = tuple[str, str, str]


class Histogram:
    """Cumulative bucket counts, sum and count, plus bucket counts per minute."""

    __slots__ = ("buckets", "count", "minutes", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * N_BUCKETS
        self.sum = 0.0
        self.count = 0
        #: Shared and all zeros until the first observation: the ring is 1,140 slots (9 KiB),
        #: and a series of a queue whose tasks never ran needs none. Two per series made a
        #: queue name cost 22 KiB, and a tenant creating 20,000 of them 440 MiB.
        self.minutes = _NO_MINUTES


class Series:
    """Everything counted for one (tenant, queue, function)."""

    __slots__ = ("minute", "minutes", "overflow", "run", "totals", "wait")

    def __init__(self, minute: int) -> None:
        self.minute = minute  # the newest minute the ring holds
        self.overflow: Series | None = None  # the tenant's overflow series, when not exposed
        self.totals = [0] * N_COUNTERS
        self.minutes = [0] * (MINUTES * N_COUNTERS)
        self.wait = Histogram()
        self.run = Histogram()


class GaugeRing:
    """Per-minute peaks of one entity's gauges."""

    __slots__ = ("minute", "peaks")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.peaks = [0] * (MINUTES * len(GAUGES))

    def advance(self, minute: int) -> None:
        last = self.minute
        if minute <= last:
            return
        for m in range(minute - min(minute - last, MINUTES) + 1, minute + 1):
            base = (m % MINUTES) * len(GAUGES)
            self.peaks[base : base + len(GAUGES)] = _ZERO_GAUGES
        self.minute = minute

    def per_minute(self, gauge: int, now: float) -> list[int]:
        minute = int(now // 60)
        self.advance(minute)
        column = self.peaks[gauge :: len(GAUGES)]
        start = (minute + 1) % MINUTES
        return column[start:] + column[:start]


def _advance(series: Series, minute: int) -> None:
    """Clear the ring slots of the minutes between the series' newest and ``minute``."""
    last = series.minute
    if minute <= last:
        return
    skipped = min(minute - last, MINUTES)
    for m in range(minute - skipped + 1, minute + 1):
        slot = m % MINUTES
        base = slot * N_COUNTERS
        series.minutes[base : base + N_COUNTERS] = _ZERO_COUNTERS
        hbase = slot * N_BUCKETS
        for histogram in (series.wait, series.run):
            if histogram.minutes is not _NO_MINUTES:
                histogram.minutes[hbase : hbase + N_BUCKETS] = _ZERO_BUCKETS
    series.minute = minute


_ZERO_COUNTERS: Final = [0] * N_COUNTERS
_ZERO_BUCKETS: Final = [0] * N_BUCKETS
_ZERO_GAUGES: Final = [0] * len(GAUGES)
#: The per-minute ring of every histogram not yet observed (read-only: never written).
_NO_MINUTES: Final[list[int]] = [0] * (MINUTES * N_BUCKETS)


def _observe(histogram: Histogram, value: float, slot: int) -> None:
    index = bisect_left(BUCKETS, value)
    histogram.buckets[index] += 1
    if histogram.minutes is _NO_MINUTES:
        histogram.minutes = [0] * (MINUTES * N_BUCKETS)
    histogram.minutes[slot * N_BUCKETS + index] += 1
    histogram.sum += value
    histogram.count += 1


def _observe_total(histogram: Histogram, value: float) -> None:
    """``_observe`` without the per-minute ring: for the overflow series, scraped only."""
    histogram.buckets[bisect_left(BUCKETS, value)] += 1
    histogram.sum += value
    histogram.count += 1


class Metrics:
    """The daemon's counters; every method takes ``now`` (epoch seconds)."""

    __slots__ = (
        "_exposed",
        "_exposed_max",
        "_exposed_per_tenant",
        "_gauges",
        "_overflow",
        "_per_tenant",
        "_series",
    )

    def __init__(
        self, exposed_per_tenant: int = EXPOSED_PER_TENANT, exposed_max: int = EXPOSED_MAX
    ) -> None:
        self._series: dict[Key, Series] = {}
        self._gauges: dict[Key, GaugeRing] = {}
        self._exposed_per_tenant = exposed_per_tenant
        self._exposed_max = exposed_max
        self._exposed: list[Key] = []  # in the order they were first counted
        self._per_tenant: dict[str, int] = {}  # exposed keys per tenant
        self._overflow: dict[str, Series] = {}  # per tenant, once it has a key past the cap

    def __repr__(self) -> str:
        return (
            f"<Metrics series={len(self._series)} exposed={len(self._exposed)} "
            f"overflowing_tenants={len(self._overflow)} gauges={len(self._gauges)}>"
        )

    def _get(self, key: Key, minute: int) -> Series:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Series(minute)
            tenant = key[0]
            count = self._per_tenant.get(tenant, 0)
            if count < self._exposed_per_tenant and len(self._exposed) < self._exposed_max:
                self._per_tenant[tenant] = count + 1
                self._exposed.append(key)
            else:
                overflow = self._overflow.get(tenant)
                if overflow is None:
                    overflow = self._overflow[tenant] = Series(minute)
                series.overflow = overflow
        elif minute != series.minute:
            _advance(series, minute)
        return series

    def count(self, key: Key, counter: int, now: float, n: int = 1) -> None:
        minute = int(now // 60)
        series = self._get(key, minute)
        series.totals[counter] += n
        series.minutes[(minute % MINUTES) * N_COUNTERS + counter] += n
        overflow = series.overflow
        if overflow is not None:
            overflow.totals[counter] += n  # the exposition reads only its totals

    def attempt(self, key: Key, wait: float | None, run: float | None, now: float) -> None:
        """An attempt ended: its queue wait and run time (``None``: unknown, not counted)."""
        minute = int(now // 60)
        series = self._get(key, minute)
        slot = minute % MINUTES
        overflow = series.overflow
        if wait is not None:
            _observe(series.wait, wait, slot)
            if overflow is not None:
                _observe_total(overflow.wait, wait)
        if run is not None:
            _observe(series.run, run, slot)
            if overflow is not None:
                _observe_total(overflow.run, run)

    def exposed(self) -> list[tuple[Key, Series]]:
        """The exposed keys' series, in the order first counted (totals and cumulative
        histograms only: for the exposition, which needs no minute rings)."""
        series = self._series
        return [(key, series[key]) for key in self._exposed]

    def overflow(self) -> list[tuple[str, Series]]:
        """Per tenant that has keys past the cap, the sum of those keys' totals and
        cumulative histograms (its per-minute rings are not kept)."""
        return sorted(self._overflow.items())

    def sample(self, entity: Key, backlog: int, running: int, now: float) -> None:
        """Record an entity's gauges (``entity``: ``("tenant", name, "")``, ``("queue", tenant,
        queue)`` or ``("function", name, "")``); each minute keeps its peak."""
        minute = int(now // 60)
        ring = self._gauges.get(entity)
        if ring is None:
            ring = self._gauges[entity] = GaugeRing(minute)
        else:
            ring.advance(minute)
        base = (minute % MINUTES) * len(GAUGES)
        gauges = ring.peaks
        if backlog > gauges[base + BACKLOG]:
            gauges[base + BACKLOG] = backlog
        if running > gauges[base + RUNNING]:
            gauges[base + RUNNING] = running

    def series_keys(self) -> list[Key]:
        return list(self._series)

    def series(self, key: Key, now: float) -> Series | None:
        """The series of ``key`` advanced to ``now`` (for readers), or ``None``."""
        series = self._series.get(key)
        if series is not None:
            _advance(series, int(now // 60))
        return series

    def gauges(self, entity: Key) -> GaugeRing | None:
        return self._gauges.get(entity)


class Rollup:
    """Several series summed, as of minute ``now``: one tenant's, queue's or function's.

    Only what ``stats`` reads is summed: the per-minute counters, and the histograms' last
    ``RECENT_MINUTES`` minutes (not their whole rings), so a readout costs tens of microseconds
    per series, not milliseconds.
    """

    __slots__ = (
        "current",
        "empty",
        "minutes",
        "run_count",
        "run_recent",
        "run_sum",
        "totals",
        "wait_count",
        "wait_recent",
        "wait_sum",
    )

    def __init__(self, now: float) -> None:
        self.current = int(now // 60)
        self.empty = True
        self.totals = [0] * N_COUNTERS
        self.minutes = [0] * (MINUTES * N_COUNTERS)
        self.wait_recent = [0] * N_BUCKETS
        self.wait_sum = 0.0
        self.wait_count = 0
        self.run_recent = [0] * N_BUCKETS
        self.run_sum = 0.0
        self.run_count = 0

    def add(self, series: Series) -> None:
        """Add a series already advanced to the rollup's minute."""
        add = operator.add
        if self.empty:  # most rows are one series: a copy, not a sum
            self.empty = False
            self.totals = series.totals[:]
            self.minutes = series.minutes[:]
        else:
            self.totals = list(map(add, self.totals, series.totals))
            self.minutes = list(map(add, self.minutes, series.minutes))
        wait, run = series.wait, series.run
        self.wait_sum += wait.sum
        self.wait_count += wait.count
        self.run_sum += run.sum
        self.run_count += run.count
        for m in range(self.current - RECENT_MINUTES + 1, self.current + 1):
            base = (m % MINUTES) * N_BUCKETS
            if wait.count:
                self.wait_recent = list(
                    map(add, self.wait_recent, wait.minutes[base : base + N_BUCKETS])
                )
            if run.count:
                self.run_recent = list(
                    map(add, self.run_recent, run.minutes[base : base + N_BUCKETS])
                )

    def per_minute(self, counter: int) -> list[int]:
        """The counter's value per minute, oldest first; the last is the current minute."""
        column = self.minutes[counter::N_COUNTERS]  # by ring slot
        start = (self.current + 1) % MINUTES  # the oldest minute's slot
        return column[start:] + column[:start]

    def recent(self, which: str) -> dict[str, Any]:
        """Over the last ``RECENT_MINUTES`` minutes: ``count``, and ``p50`` and ``p99`` in
        seconds (``None`` without observations)."""
        buckets = self.wait_recent if which == "wait" else self.run_recent
        return {
            "count": sum(buckets),
            "p50": quantile(buckets, 0.5),
            "p99": quantile(buckets, 0.99),
        }


def quantile(buckets: list[int], q: float) -> float | None:
    """The ``q`` quantile of bucket counts (``BUCKETS`` bounds), interpolated linearly inside
    its bucket; ``None`` with no observations. Values above the last bound read as that bound."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            if index == len(BUCKETS):
                return BUCKETS[-1]
            lower = BUCKETS[index - 1] if index else 0.0
            upper = BUCKETS[index]
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return BUCKETS[-1]
