"""stats, metrics, the /metrics listener, stage traces and trace IDs, against a real daemon."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from asynctask.errors import SubmitThrottled
from tests.e2e.conftest import poll


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by name, parsed with Prometheus' own parser (which rejects bad syntax)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _row(rows: list[dict], **match: str) -> dict:
    (row,) = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return row


def test_stats_and_metrics_count_what_was_done(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client(tenant="acme")
    good = [{"func": "tests.e2e.tasks:add", "args": [i, 1]} for i in range(45)]
    bad = [{"func": "tests.e2e.tasks:boom", "args": ["no"], "retries": 0} for _ in range(5)]
    handles = client.submit_many(good + bad)
    for handle in handles:
        handle.wait(timeout=30)

    stats = client.stats()
    tenant = _row(stats["tenants"], tenant="acme")
    assert (tenant["submitted_total"], tenant["completed_total"], tenant["failed_total"]) == (
        50,
        45,
        5,
    )
    assert sum(tenant["submitted"]) == 50  # all within the last hour's per-minute series
    assert len(tenant["submitted"]) == stats["minutes"] == 60
    assert tenant["submitted"][-1] + tenant["submitted"][-2] == 50  # this minute (or the last)
    assert tenant["backlog"] == 0
    assert tenant["running"] == 0
    assert tenant["queue_wait"]["total"] == 50  # one per attempt
    assert tenant["run_time"]["total"] == 50
    assert tenant["run_time"]["p50"] is not None
    assert len(stats["workers"]["occupied"]) == 60
    assert max(stats["workers"]["occupied"][-2:]) >= 1  # the peak while the 50 ran
    add = _row(stats["functions"], function="tests.e2e.tasks:add")
    boom = _row(stats["functions"], function="tests.e2e.tasks:boom")
    assert (add["completed_total"], add["failed_total"]) == (45, 0)
    assert (boom["completed_total"], boom["failed_total"]) == (0, 5)
    queue = _row(stats["queues"], tenant="acme", queue="acme")
    assert queue["submitted_total"] == 50
    assert len(stats["failures"]) == 5
    assert {f["function"] for f in stats["failures"]} == {"tests.e2e.tasks:boom"}
    assert all(f["message"] == "no" for f in stats["failures"])

    cli = daemon.cli("stats", "--json")
    assert cli.returncode == 0, cli.stderr
    assert _row(json.loads(cli.stdout)["tenants"], tenant="acme")["failed_total"] == 5
    text = daemon.cli("stats")
    assert text.returncode == 0, text.stderr
    assert "acme" in text.stdout
    assert "RuntimeError" in text.stdout or "no" in text.stdout  # the failures list

    metrics = daemon.cli("metrics")
    assert metrics.returncode == 0, metrics.stderr
    samples = _samples(metrics.stdout)
    by_function = {
        labels["function"]: value for labels, value in samples["asynctask_tasks_completed_total"]
    }
    assert by_function == {"tests.e2e.tasks:add": 45.0, "tests.e2e.tasks:boom": 0.0}
    failed = {
        labels["function"]: value for labels, value in samples["asynctask_tasks_failed_total"]
    }
    assert failed["tests.e2e.tasks:boom"] == 5.0
    counts = samples["asynctask_run_time_seconds_count"]
    assert sum(value for _, value in counts) == 50.0
    infinite = [
        v for labels, v in samples["asynctask_run_time_seconds_bucket"] if labels["le"] == "+Inf"
    ]
    assert sum(infinite) == 50.0
    backlog = {labels["queue"]: v for labels, v in samples["asynctask_queue_backlog"]}
    assert backlog["acme"] == 0.0


def test_refused_and_expired_are_counted_and_backlog_is_sampled(make_daemon) -> None:
    daemon = make_daemon("[tenants.small]\nmax_backlog = 3\n").start()
    client = daemon.client(tenant="small")
    assert client.pause(tenant="small") == 1
    client.submit_many([{"func": "tests.e2e.tasks:add", "args": [1, 2], "ttl": 0.3}] * 3)
    with pytest.raises(SubmitThrottled):
        client.submit_many([{"func": "tests.e2e.tasks:add", "args": [1, 2]}] * 2)

    def expired() -> dict | None:
        row = _row(client.stats()["tenants"], tenant="small")
        return row if row["expired_total"] == 3 else None

    row = poll(expired, timeout=10)
    assert row["refused_total"] == 2
    assert row["submitted_total"] == 3
    assert row["paused"] is True
    assert max(row["backlog_per_minute"][-2:]) == 3  # the peak while they waited
    assert row["backlog"] == 0


def test_status_shows_each_attempts_stage_times_in_order(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    handle = client.submit("tests.e2e.tasks:fail_before", 2, retries=2, delay=0.2)
    done = handle.wait(timeout=30)
    assert done.succeeded
    assert [entry["attempt"] for entry in done.trace] == [1, 2]
    for entry in done.trace:
        stages = [entry[s] for s in ("submitted", "eligible", "dispatched", "started", "finished")]
        assert all(stage is not None for stage in stages)
        assert stages == sorted(stages), entry
        assert entry["queue_wait"] == pytest.approx(entry["dispatched"] - entry["eligible"])
        assert entry["run_time"] == pytest.approx(entry["finished"] - entry["started"])
    first, second = done.trace
    assert first["eligible"] - first["submitted"] >= 0.19  # the delay
    assert second["eligible"] >= first["finished"]  # the retry became due after the failure

    cli = daemon.cli("status", handle.id)
    assert cli.returncode == 0, cli.stderr
    lines = [line for line in cli.stdout.splitlines() if line.startswith("trace ")]
    assert len(lines) == 2
    assert "queue wait" in lines[0]
    assert "run" in lines[0]
    as_json = json.loads(daemon.cli("status", handle.id, "--json").stdout)
    assert [e["attempt"] for e in as_json["trace"]] == [1, 2]
    assert as_json["trace"][0]["started"].endswith("Z")

    daemon.stop()  # stored: the trace outlives a restart
    daemon.start()
    again = daemon.client().status(handle.id)
    assert again.trace == done.trace


def test_trace_id_is_stored_and_filterable(make_daemon) -> None:
    daemon = make_daemon().start()
    client = daemon.client()
    traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    mine = [client.submit("tests.e2e.tasks:add", i, 1, trace_id=traced).id for i in range(3)]
    client.submit("tests.e2e.tasks:add", 9, 9)
    client.submit("tests.e2e.tasks:add", 9, 9, trace_id="other")
    listed = daemon.cli("list", "--trace-id", traced, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["id"] for r in rows) == sorted(mine)
    assert {r["trace_id"] for r in rows} == {traced}
    bad = daemon.cli("submit", "tests.e2e.tasks:add", "[1, 2]", "--trace-id", "a\tb")
    assert bad.returncode == 2
    assert "trace_id" in bad.stderr
    assert len(client.list(limit=100)) == 5  # the refused submit stored nothing


def test_metrics_http_listener_serves_prometheus_text_on_loopback(make_daemon) -> None:
    daemon = make_daemon('[metrics]\nhttp = "127.0.0.1:0"\n').start()
    client = daemon.client()
    client.submit("tests.e2e.tasks:add", 1, 2).wait(timeout=30)
    url = client.ping()["metrics_url"]
    assert url.startswith("http://127.0.0.1:")
    # The bearer token the daemon wrote (tests/security/test_metrics_token.py: without it, 401).
    token = (daemon.home / "metrics.token").read_text().strip()
    bearer = {"Authorization": f"Bearer {token}"}
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=bearer), timeout=10
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        samples = _samples(response.read().decode())
    assert samples["asynctask_tasks_completed_total"] == [
        ({"tenant": "default", "queue": "default", "function": "tests.e2e.tasks:add"}, 1.0)
    ]
    other = urllib.request.Request(url.replace("/metrics", "/other"), headers=bearer)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(other, timeout=10)
    assert missing.value.code == 404
    missing.value.close()
    assert daemon.client().ping()["pid"] == daemon.proc.pid  # still serving


def test_a_non_loopback_metrics_address_is_a_config_error(make_daemon) -> None:
    daemon = make_daemon('[metrics]\nhttp = "0.0.0.0:9464"\n')
    with pytest.raises(AssertionError, match="loopback only"):
        daemon.start()


def test_spans_are_exported_per_attempt_when_configured(make_daemon) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed")
    daemon = make_daemon('[tracing]\nopentelemetry = "console"\n').start()
    client = daemon.client()
    traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    handle = client.submit("tests.e2e.tasks:add", 1, 2, trace_id=traced)
    handle.wait(timeout=30)
    assert daemon.stop() == 0  # the provider flushes its batch at shutdown
    lines = Path(daemon.home, "logs", "spans.jsonl").read_text().splitlines()
    spans = [json.loads(line) for line in lines]
    (span,) = spans
    assert span["name"] == "asynctask tests.e2e.tasks:add"
    assert span["context"]["trace_id"] == "0x4bf92f3577b34da6a3ce929d0e0e4736"
    assert span["parent_id"] == "0x00f067aa0ba902b7"
    assert span["attributes"]["asynctask.task_id"] == handle.id
    assert [event["name"] for event in span["events"]] == ["dispatched", "started"]
