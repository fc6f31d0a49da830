"""``top``'s nodes line: drawn only for a cluster, from the last ``nodes`` reply, asked at most
every ``NODES_EVERY`` seconds, and never again of a daemon that has no such op."""

from __future__ import annotations

from typing import Any

import pytest

from asynctask.errors import DaemonUnavailable, UsageError
from asynctask.tui.app import NodesPoll
from asynctask.tui.nodes import age, nodes_line, ranges
from asynctask.tui.render import Layout
from asynctask.tui.view import ViewState
from tests.tui.snapshots import nodes_reply, queue, screen, snapshot


@pytest.mark.parametrize(("parts", "text"), [
    ([], ""), ([3], "3"), ([0, 1, 2, 3, 4, 5, 6, 7, 12], "0-7,12"), ([9, 1, 2, 1], "1-2,9"),
    ([0, 2, 4], "0,2,4"),
])  # fmt: skip
def test_partitions_read_as_runs(parts: list[int], text: str) -> None:
    assert ranges(parts) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (0.0, "0.0s"), (3.25, "3.2s"), (12.4, "12s"), (300.0, "5m"),
])  # fmt: skip
def test_ages_read_in_their_best_unit(seconds: float | None, text: str) -> None:
    assert age(seconds) == text


def test_the_line_counts_live_nodes_and_unowned_partitions_then_each_node() -> None:
    reply = nodes_reply("n1", "n2", me="n2")
    reply["unowned"] = [7]
    assert nodes_line(reply).plain == (
        "nodes 2 live, 1 of 8 partitions unowned:  n1 4p 0r 1.5s  n2* 4p 1r 1.5s"
    )
    assert nodes_line(nodes_reply()).plain == "nodes 0 live, 8 of 8 partitions unowned"


def test_the_frame_has_the_line_for_a_cluster_only() -> None:
    snap, state = snapshot([queue("acme", "a")]), ViewState()
    with_cluster = screen(snap, state, Layout(160, None), nodes_reply("n1", "n2"))
    assert with_cluster[2].startswith("nodes 2 live, 0 of 8 partitions unowned:  n1* 4p")
    assert with_cluster[1].startswith("workers")
    local = {**nodes_reply("local"), "cluster": False}
    assert screen(snap, state, Layout(160, None), local) == screen(snap, state)


class Client:
    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.asked = 0

    def nodes(self) -> dict[str, Any]:
        self.asked += 1
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return dict(reply)


def test_nodes_are_asked_at_most_once_a_period_and_a_lost_daemon_keeps_the_last_reply() -> None:
    first, second = nodes_reply("n1"), nodes_reply("n1", "n2")
    client = Client(first, DaemonUnavailable("gone"), second)
    poll = NodesPoll(every=5.0)
    assert poll.poll(client, 100.0) == first  # type: ignore[arg-type]
    assert poll.poll(client, 104.9) == first  # type: ignore[arg-type]
    assert client.asked == 1
    assert poll.poll(client, 105.0) == first  # type: ignore[arg-type]
    assert poll.poll(client, 110.0) == second  # type: ignore[arg-type]
    assert client.asked == 3


def test_a_daemon_without_the_op_is_not_asked_again() -> None:
    client = Client(UsageError("unknown op 'nodes' (known: ping, ...)"))
    poll = NodesPoll(every=5.0)
    assert poll.poll(client, 100.0) is None  # type: ignore[arg-type]
    assert poll.poll(client, 200.0) is None  # type: ignore[arg-type]
    assert client.asked == 1
