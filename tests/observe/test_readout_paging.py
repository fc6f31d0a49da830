"""Paging and capping of the readouts (issue 14): ``stats`` shows the top rows of each section
with the rest summed, ``metrics`` caps series per tenant with an overflow series, and every
readout is steps whose number grows with the work while each step stays small."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from asynctask.observe.metrics import COMPLETED, SUBMITTED, Metrics
from asynctask.observe.prometheus import render
from asynctask.observe.readout import CHUNK, Page, exposition, stats, stats_steps

T0 = 1_800_000_000.0


def _report(queues: int, busy: int) -> dict[str, list[dict[str, object]]]:
    """One tenant ``t`` with ``queues`` queues; the first ``busy`` have a backlog of 10."""
    rows = [
        {"tenant": "t", "queue": f"q{i:04d}", "backlog": 10 if i < busy else 0, "running": 0}
        for i in range(queues)
    ]
    return {
        "tenants": [{"tenant": "t", "backlog": 10 * busy, "running": 0}],
        "queues": rows,
        "functions": [],
    }


def test_stats_shows_the_busiest_rows_and_sums_the_rest() -> None:
    metrics = Metrics()
    for i in range(300):
        metrics.count(("t", f"q{i:04d}", "m:f"), SUBMITTED, T0)
    reply = stats(metrics, _report(300, busy=5), {}, [], T0, None, Page(top=20))
    queues = reply["queues"]
    assert len(queues) == 20
    assert [q["queue"] for q in queues] == sorted(q["queue"] for q in queues)
    assert {f"q{i:04d}" for i in range(5)} <= {q["queue"] for q in queues}  # the busy ones
    more = reply["more"]["queues"]
    assert more["rows"] == 280
    assert more["backlog"] == 0  # all backlog is in the shown rows
    assert more["submitted_total"] == 280
    assert sum(q["submitted_total"] for q in queues) + more["submitted_total"] == 300
    (tenant,) = reply["tenants"]
    assert tenant["submitted_total"] == 300  # a shown tenant sums every one of its series
    assert reply["more"]["tenants"]["rows"] == 0


def test_a_queue_filter_shows_that_queue_whatever_its_rank() -> None:
    metrics = Metrics()
    for i in range(100):
        metrics.count(("t", f"q{i:04d}", "m:f"), SUBMITTED, T0)
    reply = stats(metrics, _report(100, busy=50), {}, [], T0, None, Page(top=1, queue="q0099"))
    (row,) = reply["queues"]
    assert row["queue"] == "q0099"
    assert row["submitted_total"] == 1
    assert reply["more"]["queues"]["rows"] == 0


def test_stats_steps_stay_small_as_the_queues_grow() -> None:
    metrics = Metrics()
    report = _report(5 * CHUNK, busy=0)
    for row in report["queues"]:
        metrics.count(("t", str(row["queue"]), "m:f"), SUBMITTED, T0)
    from asynctask.observe.readout import entries_of

    steps = stats_steps(metrics, entries_of(report), {}, [], T0, None, Page())
    count = sum(1 for _ in steps)
    assert count >= 10  # the passes over 2,500 queues yield every CHUNK


def test_metrics_expose_each_tenants_first_series_and_overflow_the_rest() -> None:
    metrics = Metrics(exposed_per_tenant=3, exposed_max=5)
    for i in range(10):
        metrics.count(("a", f"q{i}", "m:f"), SUBMITTED, T0, n=2)
        metrics.attempt(("a", f"q{i}", "m:f"), 0.01, 0.1, T0)
    for i in range(4):
        metrics.count(("b", f"q{i}", "m:f"), COMPLETED, T0)
    text = render(exposition(metrics, {}, {}, {}, T0))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    submitted = families["asynctask_tasks_submitted"].samples
    own = [s for s in submitted if "overflow" not in s.labels]
    over = {s.labels["tenant"]: s.value for s in submitted if "overflow" in s.labels}
    assert {s.labels["queue"] for s in own if s.labels["tenant"] == "a"} == {"q0", "q1", "q2"}
    assert over["a"] == 14  # 7 series past a's cap, 2 each
    assert sum(s.value for s in submitted if s.labels["tenant"] == "a") == 20  # sums stay exact
    completed = families["asynctask_tasks_completed"].samples
    assert {s.labels.get("queue") for s in completed if s.labels["tenant"] == "b"} == {
        "q0",
        "q1",
        None,  # b got 2 before the global cap of 5; the other 2 overflow
    }
    wait = families["asynctask_queue_wait_seconds"].samples
    counts = [s for s in wait if s.name.endswith("_count") and "overflow" in s.labels]
    assert {s.labels["tenant"]: s.value for s in counts}["a"] == 7
    assert "<Metrics series=14 exposed=5 overflowing_tenants=2" in repr(metrics)


def test_metrics_gauges_cover_the_busiest_queues_and_count_the_rest() -> None:
    text = render(exposition(Metrics(), _report(1000, busy=3), {}, {}, T0))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    backlog = families["asynctask_queue_backlog"].samples
    assert len(backlog) == 200
    assert {f"q{i:04d}" for i in range(3)} <= {s.labels["queue"] for s in backlog}
    hidden = {
        s.labels["section"]: s.value for s in families["asynctask_readout_hidden_rows"].samples
    }
    assert hidden == {"queues": 800, "tenants": 0, "functions": 0}
