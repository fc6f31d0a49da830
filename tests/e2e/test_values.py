"""Inside a task, through a real daemon and its workers: argument and result types, a result
that cannot be encoded, hostile values, logging captured per attempt, and worker hooks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import msgpack

from asynctask.protocol import encode_frame
from asynctask.protocol.values import DATETIME
from tests.e2e.conftest import DaemonProcess, poll
from tests.e2e.rawsocket import connect, read_frame
from tests.e2e.tasks_values import Reading

VALUES = "tests.e2e.tasks_values"
OFFSET = timezone(timedelta(hours=5, minutes=30))


def test_arguments_and_results_keep_their_types(daemon: DaemonProcess) -> None:
    client = daemon.client()
    args = (
        datetime(2026, 12, 7, 10, 30, tzinfo=OFFSET),
        datetime(2026, 12, 7, 10, 30),
        date(2026, 12, 7),
        time(23, 59, 59, 999999),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        Decimal("0.10"),
        (1, (2, 3)),
        {1, 2},
        frozenset({"a"}),
        b"\x00\xff",
    )
    handle = client.submit(f"{VALUES}:typed", *args, kwargs={"when": (date(2026, 1, 1),)})
    back, kwargs, seen = handle.result(timeout=30)
    assert back == args
    assert [type(value) for value in back] == [type(value) for value in args]
    assert back[0].utcoffset() == timedelta(hours=5, minutes=30)
    assert kwargs == {"when": (date(2026, 1, 1),)}
    assert seen == [
        "datetime", "datetime", "date", "time", "UUID", "Decimal", "tuple", "set",
        "frozenset", "bytes",
    ]  # fmt: skip
    reading = Reading("t1", datetime(2026, 12, 7, tzinfo=UTC), Decimal("1.5"))
    later = client.submit(f"{VALUES}:later", reading)
    assert later.result(timeout=30) == Reading(
        "t1", reading.taken, Decimal("3.0"), frozenset({"doubled"})
    )

    # The command line shows them tagged; the daemon kept the bytes as the worker made them.
    shown = json.loads(daemon.cli("result", handle.id, "--json").stdout)["result"]
    assert shown[0][:2] == [
        {"$datetime": "2026-12-07T10:30:00+05:30"},
        {"$datetime": "2026-12-07T10:30:00"},
    ]
    assert shown[0][5:9] == [
        {"$decimal": "0.10"},
        [1, [2, 3]],
        {"$set": [1, 2]},
        {"$frozenset": ["a"]},
    ]
    status = json.loads(daemon.cli("status", later.id, "--json").stdout)
    assert status["result"] == {
        "$dataclass": f"{VALUES}:Reading",
        "fields": {
            "sensor": "t1",
            "taken": {"$datetime": "2026-12-07T00:00:00+00:00"},
            "value": {"$decimal": "3.0"},
            "tags": {"$frozenset": ["doubled"]},
        },
    }
    listed = json.loads(daemon.cli("list", "--function", f"{VALUES}:later", "--json").stdout)
    assert listed[0]["result"] == status["result"]


def test_a_destination_gets_the_typed_result(daemon: DaemonProcess) -> None:
    client = daemon.client()
    when = datetime(2026, 12, 7, 8, 0, tzinfo=OFFSET)
    handle = client.submit(
        f"{VALUES}:typed", when, Decimal("2.50"), on_success="tests.e2e.tasks:remember"
    )
    handle.result(timeout=30)
    told = client.result(f"{handle.id}:on_success:1", timeout=30)
    assert told["result"] == ((when, Decimal("2.50")), {}, ["datetime", "Decimal"])
    assert told["result"][0][0].utcoffset() == timedelta(hours=5, minutes=30)


def test_an_unencodable_result_fails_once_saying_where(daemon: DaemonProcess) -> None:
    status = daemon.client().submit(f"{VALUES}:unencodable_inside", retries=3).wait(timeout=30)
    assert status.state.value == "failed"
    assert status.error is not None
    assert status.error["kind"] == "bad_result"
    assert "result['items'][2]['handle'] has type" in status.error["message"]
    assert status.attempts == 1  # not retried: the function ran to its end once


def test_hostile_argument_values_fail_the_attempt_not_the_worker(daemon: DaemonProcess) -> None:
    client = daemon.client()
    payloads = {
        "unknown": msgpack.packb([[msgpack.ExtType(42, b"x")], {}]),
        "truncated": msgpack.packb([[msgpack.ExtType(DATETIME, b"2026-99")], {}]),
        "deep": b"\x92\x91" + b"\x91" * 100_000 + b"\x01\x80",
        "class": msgpack.packb([[msgpack.ExtType(9, msgpack.packb(["antigravity:X", {}]))], {}]),
    }
    ids = {}
    with connect(daemon) as sock:
        sock.sendall(encode_frame({"op": "hello", "rid": 0, "version": 1}))
        assert read_frame(sock)["ok"] is True
        for rid, (name, payload) in enumerate(payloads.items(), 1):
            task = {"function": f"{VALUES}:typed", "payload": payload, "retries": 0}
            sock.sendall(encode_frame({"op": "submit", "rid": rid, "tasks": [task]}))
            reply = read_frame(sock)
            assert reply["ok"] is True, reply  # the daemon stores what it never decodes
            ids[name] = reply["tasks"][0]["id"]
    messages = {}
    for name, task_id in ids.items():
        status = client.wait(task_id, timeout=30)
        assert status.state.value == "failed"
        assert status.error is not None
        messages[name] = status.error["message"]
    assert "unknown ext type 42" in messages["unknown"]
    assert "a malformed datetime value" in messages["truncated"]
    assert "not a value asynctask encoded" in messages["deep"]
    assert "module 'antigravity' is not imported here" in messages["class"]
    assert client.submit("tests.e2e.tasks:add", 1, 2).result(timeout=30) == 3
    assert daemon.proc is not None
    assert client.ping()["pid"] == daemon.proc.pid  # the daemon never decoded them


def test_logging_is_captured_per_attempt_at_info(daemon: DaemonProcess) -> None:
    client = daemon.client(tenant="acme")
    handle = client.submit(f"{VALUES}:logs", 0)
    assert handle.result(timeout=30) == "logged"
    shown = daemon.cli("logs", handle.id, "--tenant", "acme")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "printed line" in text
    assert f"INFO {VALUES}: info line 1" in text
    assert f"WARNING {VALUES}: warning line" in text
    assert f"ERROR {VALUES}: error line" in text
    assert 'raise ValueError("with a traceback")' in text  # the exception's traceback
    assert "debug line" not in text
    # The task logger's fields, formatted by the task's own handler.
    assert f"tagged {handle.id} acme 1: from the adapter" in text


def test_the_log_level_is_configurable_and_bounded_by_max_log_bytes(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon('[workers]\nlog_level = "debug"\nmax_log_bytes = "4K"\n').start()
    client = daemon.client()
    handle = client.submit(f"{VALUES}:logs", 500)
    handle.result(timeout=30)
    text = daemon.cli("logs", handle.id).stdout
    assert f"DEBUG {VALUES}: debug line" in text
    assert "flood 00000" in text
    assert "flood 00499" not in text  # past max_log_bytes: dropped, and a marker says so
    assert "[asynctask: output truncated:" in text
    assert len(text.encode()) < 4096 + 512


def test_worker_hooks_run_in_a_real_worker(daemon: DaemonProcess, tmp_path: Path) -> None:
    client = daemon.client()
    trace = tmp_path / "trace.txt"
    handle = client.submit(
        "tests.e2e.tasks_hooks:work", 21, labels={"trace": str(trace), "before": "raise"},
        retries=1,
    )  # fmt: skip
    assert handle.result(timeout=30) == 42
    status = handle.status()
    assert status.attempts == 2
    assert status.errors[0]["kind"] == "hook"
    assert "before_attempt hook tests.e2e.tasks_hooks:before raised" in status.errors[0]["message"]
    lines = poll(lambda: trace.read_text().splitlines() if trace.exists() else None)
    assert lines[:2] == ["before 1 started=1", "after 1 ConnectionError"]
    assert lines[2].startswith("before 2 started=")
    assert lines[3:] == ["task", "after 2 ok"]
