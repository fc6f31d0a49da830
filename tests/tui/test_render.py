"""Frames from hand-made snapshots: the numbers a user reads, and a frame that fits its terminal."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.tui.render import (
    Layout,
    budget,
    count,
    duration,
    occupied,
    per_minute,
    sparkline,
    window,
)
from asynctask.tui.view import ViewState
from tests.tui.snapshots import (
    NOW,
    failure,
    function,
    nodes_reply,
    queue,
    screen,
    series,
    snapshot,
    tenant,
)


def line_with(lines: list[str], *words: str) -> str:
    found = [line for line in lines if all(word in line.split() for word in words)]
    assert len(found) == 1, (words, lines)
    return found[0]


@pytest.mark.parametrize(("values", "expected"), [
    ([1, 2, 3, 4, 5, 6, 7, 8], "▁▂▃▄▅▆▇█"),
    ([0, 1, 100], " ▁█"),  # a trickle still shows; nothing is blank
    ([0, 0, 0], "   "),
    ([], ""),
    ([5, 5], "██"),
])  # fmt: skip
def test_sparkline_scales_to_the_largest_value(values, expected) -> None:
    assert sparkline(values) == expected


def test_per_minute_is_a_sliding_sixty_seconds() -> None:
    # 15 s into the current minute: all of it, plus the last 45 s of the previous one.
    assert per_minute(series(40, 10), NOW) == pytest.approx(10 + 40 * 0.75)
    assert per_minute(series(40, 10), NOW - 15) == pytest.approx(50)  # at the minute's start
    assert per_minute([], NOW) == 0


def test_the_sparkline_window_ends_with_the_sliding_estimate() -> None:
    cells = window(series(1, 2, 3, 40, 10), NOW, 3)
    assert cells == [3.0, 40.0, pytest.approx(40.0)]
    assert window(series(5), NOW, 0) == []


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (0.0004, "400µs"), (0.25, "250ms"), (1.5, "1.5s"), (90, "1.5m"), (7200, "2.0h"),
])  # fmt: skip
def test_durations_read_in_their_best_unit(seconds, text) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(("value", "text"), [
    (None, "-"), (7, "7"), (9999, "9999"), (12_345, "12.3k"), (4_100_000, "4.1M"), (2.6, "3"),
])  # fmt: skip
def test_counts_stay_narrow(value, text) -> None:
    assert count(value) == text


SNAP = snapshot(
    queues=[
        queue("acme", "reports", backlog=7, running=2, paused=True,
              queue_wait={"count": 9, "sum": 1.0, "p50": 0.012, "p99": 2.5}),
        queue("acme", "emails", backlog=3, submitted=series(60, 0), concurrency=4, rate=50.0),
        queue("beta", "beta", backlog=1234567),
    ],
    tenants=[tenant("acme", backlog=10, running=2), tenant("beta", backlog=1234567)],
    functions=[function("app.tasks:resize", aimd_limit=2.5, backlog=None, running=None)],
    failures=[
        failure("acme", "reports", "disk full\nTraceback (most recent call last): ..."),
        failure("beta", "beta", "no such user"),
    ],
)  # fmt: skip


def test_a_queue_row_shows_state_backlog_running_rates_waits_and_limits() -> None:
    lines = screen(SNAP, ViewState())
    assert line_with(lines, "reports").split()[1:9] == [
        "reports", "paused", "7", "2", "0", "0", "0", "12ms",
    ]  # fmt: skip
    assert "2.5s" in line_with(lines, "reports")
    emails = line_with(lines, "emails").split()
    assert emails[:6] == [">", "acme", "emails", "3", "0", "45"]  # 60 * 0.75 in the last 60 s
    assert emails[-2:] == ["4", "50"]
    assert any(re.match(r"\s+beta\s+beta\s+1\.2M\s", line) for line in lines)


def test_the_highlighted_row_is_marked_and_only_that_one() -> None:
    lines = screen(SNAP, ViewState(selected=("acme", "reports")))
    assert line_with(lines, "reports").startswith(">")
    assert not line_with(lines, "emails").startswith(">")


def test_functions_show_the_aimd_limit_and_a_dash_for_unknown_backlog() -> None:
    row = line_with(screen(SNAP, ViewState()), "app.tasks:resize").split()
    assert row[1:3] == ["-", "-"]
    assert "2.5" in row


def test_failures_show_the_first_line_of_the_error_newest_first() -> None:
    lines = screen(SNAP, ViewState())
    assert "ValueError: disk full" in line_with(lines, "acme/reports")
    assert not any("Traceback" in line for line in lines)
    assert lines.index(line_with(lines, "acme/reports")) < lines.index(
        line_with(lines, "beta/beta")
    )


def test_the_tenant_filter_hides_other_tenants_queues_tenants_and_failures() -> None:
    text = "\n".join(screen(SNAP, ViewState(tenant="acme")))
    assert "tenant: acme" in text
    assert "beta" not in text
    assert "app.tasks:resize" in text  # functions belong to no tenant


def test_the_workers_line_shows_size_busy_and_occupancy() -> None:
    snap = snapshot([queue("acme", "q")], size=4, busy=3, idle=1, target=4, max=8)
    snap["tenants"] = [tenant("acme", running_per_minute=series(1, 4, 2)),
                       tenant("beta", running_per_minute=series(1))]  # fmt: skip
    assert occupied(snap)[-3:] == [1.0, 4.0, 3.0]
    line = line_with(screen(snap, ViewState()), "workers")
    assert "workers 4: 3 busy, 1 idle, 75% occupied (target 4, max 8)" in line
    assert line.endswith("▂█▆")  # 1/4, 4/4 and 3/4 of eight levels, rounded up


def test_once_frames_leave_out_the_key_help() -> None:
    assert "q quit" in screen(SNAP, ViewState())[-1]
    assert not any("quit" in line for line in screen(SNAP, ViewState(), Layout(160, None, False)))


def test_the_status_line_carries_the_last_message() -> None:
    assert screen(SNAP, ViewState(message="paused acme/emails"))[-1].endswith("paused acme/emails")


def test_an_empty_daemon_renders_headers_only() -> None:
    lines = screen(snapshot([]), ViewState())
    assert lines[2].strip() == "queues"
    assert lines[3].split()[:3] == ["TENANT", "QUEUE", "STATE"]


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(6, 40),
    queues=st.integers(0, 40),
    tenants=st.integers(0, 8),
    functions=st.integers(0, 8),
    failures=st.integers(0, 20),
    selected=st.integers(0, 39),
    cluster=st.booleans(),
)
def test_a_frame_never_overflows_its_terminal_and_keeps_the_highlight_in_view(
    height, queues, tenants, functions, failures, selected, cluster
) -> None:
    snap = snapshot(
        [queue("acme", f"q{i:02}") for i in range(queues)],
        tenants=[tenant(f"t{i}") for i in range(tenants)],
        functions=[function(f"m:f{i}") for i in range(functions)],
        failures=[failure("acme", "q00", f"e{i}") for i in range(failures)],
    )
    state = ViewState(selected=("acme", f"q{selected:02}"))
    nodes = nodes_reply("n1", "n2") if cluster else None
    lines = screen(snap, state, Layout(160, height), nodes)
    assert len(lines) <= height
    if selected < queues:
        assert line_with(lines, f"q{selected:02}").startswith(">")


def test_the_budget_drops_failures_before_anything_else() -> None:
    fit = budget(Layout(160, 3 + 2 + 5 + 2 + 3 + 2 + 3 + 2 + 1), 5, 3, 3, 20)
    assert (fit.queues, fit.tenants, fit.functions, fit.failures) == (5, 3, 3, 1)
    fit = budget(Layout(160, 3 + 2 + 5 + 2 + 3 + 2 + 3 + 1), 5, 3, 3, 20)
    assert fit.failures == 0


def test_a_tall_queue_table_scrolls_and_says_how_many_it_shows() -> None:
    snap = snapshot([queue("acme", f"q{i:02}") for i in range(40)])
    lines = screen(snap, ViewState(selected=("acme", "q20")), Layout(160, 20))
    title = next(line for line in lines if line.startswith("queues"))
    shown = [line for line in lines if re.search(r"\bq\d\d\b", line)]
    assert title.strip() == f"queues ({len(shown)} of 40)"
    assert any(line.startswith(">") and "q20" in line for line in shown)
