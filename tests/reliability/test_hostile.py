"""Hostile clients at a reduced scale (benchmarks/reliability/hostile.py; `make soak` runs the
full one): the daemon survives each pattern with bounded memory, and a separate client pinging
every 10 ms measures how long the event loop stalls. docs/contract.md ("Robustness") promises
50 ms; the tests allow 200 ms because the machine's own jitter (2 cores, shared) is in the
figure."""

from __future__ import annotations

import pytest

from benchmarks.reliability import hostile

STALL_MS = 200.0


@pytest.fixture(scope="module")
def connections() -> dict[str, hostile.Pattern]:
    patterns = ("unread_replies", "pre_handshake", "idle_half_sent")
    return {r.name: r for r in hostile.run(0.5, patterns)}


@pytest.fixture(scope="module")
def queues() -> dict[str, hostile.Pattern]:
    return {r.name: r for r in hostile.run(0.25, ("queue_names", "queue_reports"))}


def test_connection_patterns_leave_memory_bounded(connections: dict[str, hostile.Pattern]) -> None:
    assert set(connections) == {"unread_replies", "pre_handshake", "idle_half_sent"}
    for result in connections.values():
        assert result.daemon_alive, result.row()
        assert result.pings > 0, result.row()
        assert result.rss_peak - result.rss_before < 64, result.row()
    pre = connections["pre_handshake"].figures
    assert pre["oversize_closed"] == pre["oversize"], connections["pre_handshake"].row()


def test_patterns_without_work_do_not_stall_the_loop(
    connections: dict[str, hostile.Pattern],
) -> None:
    for name in ("pre_handshake", "idle_half_sent"):
        assert connections[name].stall_max_ms < STALL_MS, connections[name].row()


def test_unread_replies_do_not_stall_the_loop(connections: dict[str, hostile.Pattern]) -> None:
    assert connections["unread_replies"].stall_max_ms < STALL_MS, connections[
        "unread_replies"
    ].row()


def test_max_queues_refuses_the_bounded_tenant(queues: dict[str, hostile.Pattern]) -> None:
    names = queues["queue_names"]
    assert names.daemon_alive, names.row()
    assert names.figures["refused"] == 1000, names.row()  # 2,000 asked, 1,000 allowed


def test_stats_with_many_queues_does_not_stall_the_loop(
    queues: dict[str, hostile.Pattern],
) -> None:
    reports = queues["queue_reports"]
    assert reports.daemon_alive, reports.row()
    assert reports.stall_max_ms < STALL_MS, reports.row()


@pytest.mark.slow
def test_stats_answers_with_20000_queues() -> None:
    (names, reports) = hostile.run(1.0, ("queue_names", "queue_reports"))
    assert names.figures["queues"] == 20_000, names.row()
    assert "stats_failed" not in reports.figures, reports.row()
