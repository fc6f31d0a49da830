"""Validation holes found in issue 13's probe: names with a trailing newline, times and
durations so large that reading the task back crashes, limits that kill the worker at start.

Each value is sent raw on the wire (``Client._call``), so the daemon's own checks are what is
tested, not the client's; the command line and the client refuse the same values first.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from asynctask import protocol
from asynctask.config import parse_config
from asynctask.errors import ConfigError, UsageError
from tests.e2e.conftest import DaemonProcess, daemon, make_daemon, poll

__all__ = ["daemon", "make_daemon"]  # the e2e fixtures, shared with this directory

ADD = "tests.e2e.tasks:add"
CENTURY = 100 * 365.25 * 86400


def _spec(**fields: Any) -> dict[str, Any]:
    return {"function": ADD, "payload": protocol.pack([[1, 2], {}]), **fields}


def _submit_raw(daemon: DaemonProcess, **fields: Any) -> dict[str, Any]:
    return daemon.client()._call("submit", tasks=[_spec(**fields)])


@pytest.mark.parametrize(
    "fields",
    [
        {"id": "dup\n"},
        {"tenant": "default\n"},
        {"queue": "q\n"},
        {"function": ADD + "\n"},
        {"on_success": ADD + "\n"},
    ],
    ids=["id", "tenant", "queue", "function", "on_success"],
)
def test_a_trailing_newline_is_not_part_of_a_valid_name(
    daemon: DaemonProcess, fields: dict[str, Any]
) -> None:
    with pytest.raises(UsageError):
        _submit_raw(daemon, **fields)
    assert daemon.client().list(limit=100) == []


def test_dup_and_dup_newline_are_not_two_tasks(daemon: DaemonProcess) -> None:
    client = daemon.client()
    first = client.submit(ADD, 1, 2, task_id="dup")
    with pytest.raises(UsageError, match="task ID"):
        client.submit(ADD, 1, 2, task_id="dup\n")
    refused = daemon.cli("submit", "--id", "dup\n", ADD, "[1, 2]")
    assert refused.returncode == 2, refused.stderr
    assert [t.id for t in client.list(limit=100)] == [first.id]
    with pytest.raises(UsageError):
        client.status("dup\n")


def test_cron_names_and_list_filters_refuse_a_trailing_newline(daemon: DaemonProcess) -> None:
    client = daemon.client()
    task = {"function": ADD, "payload": protocol.pack([[1, 2], {}])}
    with pytest.raises(UsageError, match="cron entry name"):
        client._call("cron_add", name="nightly\n", expr="0 3 * * *", task=task)
    with pytest.raises(UsageError, match="tenant"):
        client._call("list", tenant="default\n")
    assert client.cron_list() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("delay", 1e308),
        ("delay", CENTURY * 1.01),
        ("run_at", 1e308),
        ("run_at", -1e308),
        ("ttl", 1e308),
        ("timeout", 1e308),
        ("delay", math.inf),
        ("timeout", math.nan),
    ],
)
def test_times_past_a_century_are_refused_and_reads_keep_working(
    daemon: DaemonProcess, field: str, value: float
) -> None:
    client = daemon.client()
    kept = client.submit(ADD, 1, 2, delay=3600)  # a normal scheduled task, read back below
    with pytest.raises(UsageError, match=field):
        _submit_raw(daemon, **{field: value})
    assert [t.id for t in client.list(limit=100)] == [kept.id]
    listed = daemon.cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [t["id"] for t in json.loads(listed.stdout)] == [kept.id]
    status = daemon.cli("status", "--json", kept.id)
    assert status.returncode == 0, status.stderr


def test_a_century_is_accepted_and_reads_back(daemon: DaemonProcess) -> None:
    client = daemon.client()
    far = client._call("submit", tasks=[_spec(delay=CENTURY * 0.99, ttl=CENTURY * 0.99)])
    (task,) = far["tasks"]
    status = daemon.cli("status", "--json", task["id"])
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["due_at"].startswith("21")


def test_the_command_line_refuses_a_delay_past_a_century(daemon: DaemonProcess) -> None:
    refused = daemon.cli("submit", "--delay", "99999999999d", ADD, "[1, 2]")
    assert refused.returncode == 2
    assert "delay" in refused.stderr
    assert daemon.client().list(limit=100) == []


def test_a_huge_throttle_hint_does_not_break_status(daemon: DaemonProcess) -> None:
    """Task code chooses ``Throttled.retry_after``: the retry's due time is capped."""
    client = daemon.client()
    handle = client.submit("tests.security.validation_tasks:throttle_forever", 1e308, retries=1)
    poll(lambda: handle.status().state.value == "scheduled" and handle.status().attempts == 1)
    status = daemon.cli("status", "--json", handle.id)
    assert status.returncode == 0, status.stderr
    assert daemon.cli("list", "--json").returncode == 0


@pytest.mark.parametrize(
    ("limit", "value", "words"),
    [
        ("cpu", 1e308, ("cpu", "seconds")),
        ("cpu", math.inf, ("cpu",)),
        ("file_size", 2**63, ("file_size", "1024T")),
        ("memory", 2**63, ("memory", "1024T")),
        ("open_files", 2**40, ("open_files", "1048576")),
        ("processes", 2**63, ("processes", "4194304")),
    ],
)
def test_limits_out_of_range_are_refused_at_submit(
    daemon: DaemonProcess, limit: str, value: float, words: tuple[str, ...]
) -> None:
    client = daemon.client()
    with pytest.raises(UsageError) as raw:
        _submit_raw(daemon, resources={limit: value})
    for word in words:
        assert word in raw.value.message
    with pytest.raises(UsageError, match=limit):
        client.submit(ADD, 1, 2, **{limit: value})
    assert client.list(limit=100) == []


def test_the_command_line_refuses_a_huge_file_size_with_its_range(daemon: DaemonProcess) -> None:
    refused = daemon.cli("submit", "--file-size", str(2**63), ADD, "[1, 2]")
    assert refused.returncode == 2
    assert "file_size" in refused.stderr
    assert "1024T" in refused.stderr
    assert daemon.client().list(limit=100) == []


@pytest.mark.parametrize(
    ("workers", "key"),
    [
        ({"cpu": 1e308}, "cpu"),
        ({"cpu": "99999999999d"}, "cpu"),
        ({"file_size": 2**63}, "file_size"),
        ({"memory": "9999999T"}, "memory"),
        ({"open_files": 2**40}, "open_files"),
        ({"timeout": "99999999999d"}, "timeout"),
    ],
)
def test_limits_out_of_range_are_refused_in_the_config(workers: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_config({"workers": workers})


def test_a_config_with_a_huge_cpu_limit_does_not_start(make_daemon) -> None:
    """It used to start, and die of its first worker with "exited with code 1"."""
    daemon = make_daemon("[workers]\ncpu = 1e308\n")
    with pytest.raises(AssertionError, match=r"workers: limit 'cpu'.*at most"):
        daemon.start()


@pytest.mark.parametrize("hint", [1e308, math.inf])
def test_the_retry_policy_caps_a_throttle_hint_at_a_century(hint: float) -> None:
    import random

    from asynctask.core.retry import RetryPolicy

    assert RetryPolicy().delay(1, random.Random(0), retry_after=hint) == CENTURY
    assert RetryPolicy().delay(1, random.Random(0), retry_after=3600.0) == 3600.0
