"""``asynctask nodes`` as text: the rows and lines a person reads, from hand-made replies."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from asynctask.cli.nodestable import node_rows, partitions_cell, render_nodes, summary


def _node(node: str, partitions: list[int] | None, **fields: Any) -> dict[str, Any]:
    return {
        "node": node, "host": "box", "pid": 7, "started_at": 1.0, "heartbeat_at": 99.0,
        "age": 1.25, "running": 0, "partitions": partitions, "me": False, **fields,
    }  # fmt: skip


CLUSTER = {
    "cluster": True,
    "me": "n2",
    "partitions": 16,
    "lease": 10.0,
    "nodes": [
        _node("n1", [0, 1, 2, 3, 4, 5, 6, 7, 12], running=5, age=0.4),
        _node("n2", [8, 9, 11], host="other", pid=4242, me=True, age=42.0),
    ],
    "unowned": [10, 13, 14, 15],
}


def test_each_node_is_a_row_with_partitions_as_runs_and_this_daemon_marked() -> None:
    assert node_rows(CLUSTER) == [
        ["n1", "box", "7", "9: 0-7,12", "0.4s ago", "5", ""],
        ["n2", "other", "4242", "3: 8-9,11", "42s ago", "0", "(this daemon)"],
    ]


def test_the_summary_counts_live_daemons_and_lists_unowned_partitions() -> None:
    assert summary(CLUSTER) == [
        "cluster: 2 live daemons, 16 partitions, lease 10s",
        "unowned: 4 (10,13-15), no live daemon holds them",
    ]
    balanced = {**CLUSTER, "unowned": []}
    assert summary(balanced)[-1] == "unowned: none"


def test_a_daemon_without_a_live_heartbeat_says_so() -> None:
    alone = {**CLUSTER, "me": "n3", "nodes": [_node("n1", [0])]}
    assert "this daemon (n3) has no live heartbeat yet" in summary(alone)


def test_sqlite_is_one_daemon_holding_all_the_work() -> None:
    local = {
        "cluster": False, "me": "local", "partitions": None, "lease": None, "unowned": [],
        "nodes": [_node("local", None, me=True, age=0.0, running=2)],
    }  # fmt: skip
    assert summary(local) == ["not a cluster: this daemon runs all the work"]
    assert node_rows(local) == [["local", "box", "7", "all", "0.0s ago", "2", "(this daemon)"]]


def test_partition_cells() -> None:
    assert partitions_cell(None) == "all"
    assert partitions_cell([]) == "0"
    assert partitions_cell([5]) == "1: 5"


def test_stored_names_are_printed_as_text_never_as_markup_or_control_codes() -> None:
    sneaky = {**CLUSTER, "nodes": [_node("[bold]x\x1b[2J", [1], host=None, pid=None)]}
    out = io.StringIO()
    render_nodes(sneaky, Console(file=out, width=120, color_system=None))
    text = out.getvalue()
    assert "[bold]x\\x1b[2J" in text
    assert "\x1b" not in text
    row = text.splitlines()[2].split()
    assert row[1:3] == ["-", "-"]  # no host, no pid
