"""The live daemons of a cluster in a few characters: ``top``'s nodes line, and the pieces the
``asynctask nodes`` table shares with it (``ranges``, ``age``). Pure functions of one ``nodes``
reply (``daemon/nodesview.py`` has its shape); no I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.text import Text


def ranges(partitions: Iterable[int]) -> str:
    """Partition numbers as compact runs: ``[0, 1, 2, 3, 7, 9, 10]`` -> ``0-3,7,9-10``."""
    runs: list[list[int]] = []
    for p in sorted(set(partitions)):
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def age(seconds: float | None) -> str:
    """How long ago a heartbeat was: ``0.4s``, ``12s``, ``3m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m"


def node_brief(node: Mapping[str, Any]) -> str:
    """One node in a few characters: ``n1* 21p 5r 1.2s`` (``*``: the daemon that answered;
    partitions held, attempts running, heartbeat age)."""
    held = node.get("partitions")
    mark = "*" if node.get("me") else ""
    parts = "all" if held is None else f"{len(held)}p"
    return f"{node.get('node')}{mark} {parts} {node.get('running', 0)}r {age(node.get('age'))}"


def nodes_line(reply: Mapping[str, Any]) -> Text:
    """``top``'s line for a cluster: how many daemons are live and how many partitions none of
    them holds (first, so a narrow terminal keeps them), then each daemon in brief."""
    nodes = list(reply.get("nodes") or ())
    unowned = len(reply.get("unowned") or ())
    text = f"nodes {len(nodes)} live, {unowned} of {reply.get('partitions')} partitions unowned"
    if nodes:
        text += ":  " + "  ".join(node_brief(n) for n in nodes)
    return Text(text, no_wrap=True, overflow="ellipsis")
