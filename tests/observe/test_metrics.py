"""The per-minute counters and histograms: pure, driven with explicit times."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from asynctask.observe.metrics import (
    BACKLOG,
    BUCKETS,
    COMPLETED,
    MINUTES,
    SUBMITTED,
    Metrics,
    Rollup,
    quantile,
)
from asynctask.observe.prometheus import Family, render
from asynctask.observe.readout import exposition, stats

KEYS = [("a", "a", "m:f"), ("a", "q", "m:g"), ("b", "b", "m:f")]
T0 = 1_800_000_000.0  # a minute boundary: 30,000,000 minutes


events = st.lists(
    st.tuples(
        st.sampled_from(KEYS),
        st.sampled_from([SUBMITTED, COMPLETED]),
        st.floats(min_value=0, max_value=3 * 3600),  # seconds after T0, any order of keys
    ),
    max_size=200,
).map(lambda evs: sorted(evs, key=lambda e: e[2]))  # the daemon's clock only moves forward


@settings(max_examples=200, deadline=None)
@given(events, st.floats(min_value=0, max_value=3600))
def test_per_minute_series_hold_exactly_the_last_hours_events(evs, read_after) -> None:
    metrics = Metrics()
    for key, counter, offset in evs:
        metrics.count(key, counter, T0 + offset)
    now = T0 + (evs[-1][2] if evs else 0.0) + read_after
    current = int(now // 60)
    for tenant in ("a", "b"):
        rollup = Rollup(now)
        for key in KEYS:
            series = metrics.series(key, now)
            if key[0] == tenant and series is not None:
                rollup.add(series)
        for counter in (SUBMITTED, COMPLETED):
            per_minute = rollup.per_minute(counter)
            assert len(per_minute) == MINUTES
            expected = [0] * MINUTES
            for key, c, offset in evs:
                minute = int((T0 + offset) // 60)
                if key[0] == tenant and c == counter and current - minute < MINUTES:
                    expected[MINUTES - 1 - (current - minute)] += 1
            assert per_minute == expected
            total = sum(1 for key, c, _ in evs if key[0] == tenant and c == counter)
            assert rollup.totals[counter] == total  # totals never forget


def test_a_quiet_series_reads_as_zeros_not_as_an_hour_old_slot() -> None:
    metrics = Metrics()
    key = KEYS[0]
    metrics.count(key, SUBMITTED, T0 + 5, n=7)
    later = T0 + 60 * MINUTES + 5  # the same ring slot, one hour on
    rollup = Rollup(later)
    series = metrics.series(key, later)
    assert series is not None
    rollup.add(series)
    assert rollup.per_minute(SUBMITTED) == [0] * MINUTES
    assert rollup.totals[SUBMITTED] == 7


def test_gauges_keep_each_minutes_peak() -> None:
    metrics = Metrics()
    entity = ("queue", "a", "a")
    for offset, backlog in ((1, 5), (20, 9), (40, 2), (61, 4)):
        metrics.sample(entity, backlog, 0, T0 + offset)
    ring = metrics.gauges(entity)
    assert ring is not None
    assert ring.per_minute(BACKLOG, T0 + 61)[-2:] == [9, 4]


def test_quantiles_interpolate_inside_the_bucket() -> None:
    buckets = [0] * (len(BUCKETS) + 1)
    assert quantile(buckets, 0.5) is None
    buckets[BUCKETS.index(0.01)] = 100  # everything in (0.005, 0.01]
    p50 = quantile(buckets, 0.5)
    assert p50 is not None
    assert 0.005 < p50 <= 0.01
    assert quantile(buckets, 0.5) == 0.005 + 0.005 * 0.5
    buckets[-1] = 1_000  # mostly above the last bound
    assert quantile(buckets, 0.99) == BUCKETS[-1]


def test_recent_percentiles_cover_the_last_minutes_only() -> None:
    metrics = Metrics()
    key = KEYS[0]
    for _ in range(50):
        metrics.attempt(key, 0.002, 10.0, T0)  # long ago
    now = T0 + 600
    for _ in range(50):
        metrics.attempt(key, 0.2, 0.02, now)
    rollup = Rollup(now)
    series = metrics.series(key, now)
    assert series is not None
    rollup.add(series)
    wait = rollup.recent("wait")
    assert wait["count"] == 50
    assert 0.1 < wait["p50"] <= 0.25
    assert rollup.wait_count == 100


def test_exposition_parses_and_its_histograms_are_cumulative() -> None:
    metrics = Metrics()
    key = ('ten"ant', "q\\1", "m:f\nx")  # label values that need escaping
    for wait in (0.0005, 0.003, 0.003, 7.0, 5000.0):
        metrics.attempt(key, wait, 0.1, T0)
    metrics.count(key, COMPLETED, T0, n=5)
    report = {
        "tenants": [{"tenant": "t", "backlog": 3, "running": 1, "tokens": 2.5}],
        "queues": [{"tenant": "t", "queue": "q", "backlog": 3, "running": 1, "paused": True,
                    "tokens": None}],
        "functions": [{"function": "m:f", "queued": 3, "running": 1, "aimd_limit": 4.0,
                       "tokens": None}],
    }  # fmt: skip
    workers = {"size": 2, "idle": 1, "busy": 1, "target": 2, "max": 8}
    text = render(exposition(metrics, report, workers, {"uptime_seconds": 1.5}, T0))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    completed = families["asynctask_tasks_completed"]
    assert completed.type == "counter"
    (sample,) = completed.samples
    assert sample.labels == {"tenant": 'ten"ant', "queue": "q\\1", "function": "m:f\nx"}
    assert sample.value == 5
    wait = families["asynctask_queue_wait_seconds"]
    assert wait.type == "histogram"
    buckets = [(s.labels["le"], s.value) for s in wait.samples if s.name.endswith("_bucket")]
    values = [v for _, v in buckets]
    assert values == sorted(values)  # cumulative
    assert buckets[-1] == ("+Inf", 5.0)
    assert dict(buckets)["0.001"] == 1.0
    assert dict(buckets)["0.005"] == 3.0
    assert dict(buckets)["1800"] == 4.0  # 5000 s only in +Inf
    count = [s.value for s in wait.samples if s.name.endswith("_count")]
    assert count == [5.0]
    assert families["asynctask_queue_paused"].samples[0].value == 1.0
    assert families["asynctask_function_aimd_limit"].samples[0].value == 4.0


def test_render_escapes_help_and_writes_special_floats() -> None:
    family = Family("x_ratio", "gauge", "a\\b\nc")
    family.add((), float("inf"))
    family.add((("k", "v"),), float("nan"))
    text = render([family])
    assert "# HELP x_ratio a\\\\b\\nc" in text
    assert "x_ratio +Inf" in text
    assert 'x_ratio{k="v"} NaN' in text
    (parsed,) = text_string_to_metric_families(text)
    assert parsed.samples[0].value == float("inf")


def test_stats_rows_join_counters_with_the_report_and_respect_tenants() -> None:
    metrics = Metrics()
    for key in KEYS:
        metrics.count(key, SUBMITTED, T0, n=2)
    report = {
        "tenants": [{"tenant": "a", "backlog": 4, "running": 1, "paused": False}],
        "queues": [],
        "functions": [],
    }
    reply = stats(metrics, report, {}, [{"tenant": "b", "id": "x"}], T0, frozenset({"a"}))
    assert [row["tenant"] for row in reply["tenants"]] == ["a"]
    (row,) = reply["tenants"]
    assert row["submitted_total"] == 4
    assert row["backlog"] == 4
    assert sorted(row["function"] for row in reply["functions"]) == ["m:f", "m:g"]
    assert reply["failures"] == []  # tenant b's failure is not a's to see


def test_histograms_of_series_never_observed_share_nothing_once_one_is() -> None:
    """A histogram's minute ring is shared (all zeros) until its first observation, so that a
    queue whose tasks never ran costs 4 KiB, not 22 KiB; observing one series and letting the
    minutes roll must leave every other series' percentiles empty."""
    metrics = Metrics()
    for key in KEYS:
        metrics.count(key, SUBMITTED, T0)
    metrics.attempt(KEYS[0], 0.2, 0.02, T0)
    for later in (T0 + 60, T0 + 3 * 60 + 1):  # rolls the rings, zeroing old slots
        metrics.attempt(KEYS[0], 0.2, 0.02, later)
        for key in KEYS[1:]:
            metrics.count(key, SUBMITTED, later)
            series = metrics.series(key, later)
            assert series is not None
            rollup = Rollup(later)
            rollup.add(series)
            assert rollup.recent("wait") == {"count": 0, "p50": None, "p99": None}
            assert rollup.recent("run")["count"] == 0
    observed = metrics.series(KEYS[0], T0 + 3 * 60 + 1)
    assert observed is not None
    rollup = Rollup(T0 + 3 * 60 + 1)
    rollup.add(observed)
    assert rollup.recent("wait")["count"] >= 1
