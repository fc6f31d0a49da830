"""``asynctask nodes`` against a real daemon on SQLite: not a cluster, one daemon, this one.

(The PostgreSQL cluster's nodes, with several daemons, come with the daemon's lease loop.)"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

from tests.e2e.conftest import DaemonProcess


def test_nodes_json_shows_this_daemon_alone_and_no_cluster(daemon: DaemonProcess) -> None:
    before = time.time()
    result = daemon.cli("nodes", "--json")
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert daemon.proc is not None
    (node,) = reply.pop("nodes")
    assert reply == {
        "cluster": False, "me": "local", "partitions": None, "lease": None, "unowned": [],
    }  # fmt: skip
    assert (node["node"], node["me"]) == ("local", True)
    assert (node["pid"], node["host"]) == (daemon.proc.pid, socket.gethostname())
    assert (node["running"], node["partitions"], node["age"]) == (0, None, 0.0)
    assert node["started_at"] <= node["heartbeat_at"]
    assert abs(node["heartbeat_at"] - before) < 30


def test_nodes_text_marks_this_daemon(daemon: DaemonProcess) -> None:
    result = daemon.cli("nodes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "not a cluster: this daemon runs all the work"
    assert lines[1].split() == ["NODE", "HOST", "PID", "PARTITIONS", "HEARTBEAT", "RUNNING"]
    assert daemon.proc is not None
    assert lines[2].split() == [
        "local", socket.gethostname(), str(daemon.proc.pid), "all", "0.0s", "ago", "0", "(this",
        "daemon)",
    ]  # fmt: skip


def test_nodes_counts_a_running_attempt(daemon: DaemonProcess) -> None:
    client = daemon.client()
    handle = client.submit("tests.e2e.tasks:sleep", 30)
    deadline = time.monotonic() + 20
    while client.status(handle.id).state.value != "running":
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    (node,) = json.loads(daemon.cli("nodes", "--json").stdout)["nodes"]
    assert node["running"] == 1
    client.cancel(task_id=handle.id)


def test_nodes_without_a_daemon_exits_3(make_daemon: Callable[..., DaemonProcess]) -> None:
    absent = make_daemon()  # never started
    result = absent.cli("nodes", "--json")
    assert result.returncode == 3
    assert json.loads(result.stdout)["error"]["code"]
