"""The text form of ``asynctask nodes``: a summary line, then one row per live daemon.

``node_rows`` and ``summary`` are pure functions of the reply (``daemon/nodesview.py`` has its
shape), so the tests check the words without a terminal; ``render_nodes`` only prints them.
Node IDs and hosts come from the database, so they go through ``printable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from asynctask.cli.app import printable
from asynctask.tui.nodes import age, ranges

COLUMNS = ("NODE", "HOST", "PID", "PARTITIONS", "HEARTBEAT", "RUNNING", "")

#: The widest the PARTITIONS cell gets (``--json`` has every number).
PARTITIONS_WIDTH = 60


def _text(value: Any) -> str:
    return "-" if value is None else printable(str(value))


def partitions_cell(held: list[int] | None) -> str:
    """``21: 0-3,7,9-10``: how many, then which; ``all`` when nothing is partitioned (SQLite)."""
    if held is None:
        return "all"
    if not held:
        return "0"
    return f"{len(held)}: {ranges(held)}"


def node_rows(reply: Mapping[str, Any]) -> list[list[str]]:
    """One row of ``COLUMNS`` per node, in the reply's order."""
    return [
        [
            _text(node.get("node")),
            _text(node.get("host")),
            _text(node.get("pid")),
            partitions_cell(node.get("partitions")),
            f"{age(node.get('age'))} ago",
            _text(node.get("running")),
            "(this daemon)" if node.get("me") else "",
        ]
        for node in reply.get("nodes") or ()
    ]


def summary(reply: Mapping[str, Any]) -> list[str]:
    """The lines above the table (what kind of store) and below it (what no node holds)."""
    if not reply.get("cluster"):
        return ["not a cluster: this daemon runs all the work"]
    nodes = reply.get("nodes") or ()
    unowned = list(reply.get("unowned") or ())
    lines = [
        f"cluster: {len(nodes)} live daemon{'s' if len(nodes) != 1 else ''}, "
        f"{reply.get('partitions')} partitions, lease {age(reply.get('lease'))}"
    ]
    if not any(node.get("me") for node in nodes):
        lines.append(f"this daemon ({_text(reply.get('me'))}) has no live heartbeat yet")
    if unowned:
        lines.append(f"unowned: {len(unowned)} ({ranges(unowned)}), no live daemon holds them")
    else:
        lines.append("unowned: none")
    return lines


def render_nodes(reply: Mapping[str, Any], console: Console) -> None:
    head, *tail = summary(reply)
    console.print(head, markup=False, highlight=False)
    table = Table(box=None, pad_edge=False)
    for column in COLUMNS:
        right = column in ("PID", "RUNNING")
        if column == "PARTITIONS":
            table.add_column(column, max_width=PARTITIONS_WIDTH, no_wrap=True, overflow="ellipsis")
        else:
            table.add_column(column, justify="right" if right else "left")
    for row in node_rows(reply):
        table.add_row(*(Text(cell) for cell in row))  # a stored name is never markup
    console.print(table)
    for line in tail:
        console.print(line, markup=False, highlight=False)
