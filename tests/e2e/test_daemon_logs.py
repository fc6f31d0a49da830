"""The daemon's own log, read from a real daemon's stderr: JSON lines with event fields, or
text with the same fields as k=v."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asynctask.errors import SubmitThrottled, TaskNotSucceeded
from tests.e2e.conftest import ROOT, DaemonProcess, poll

TS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the log, each of which must be one JSON object with the fixed keys."""
    entries = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        assert isinstance(entry, dict)
        assert {"ts", "level", "logger", "msg"} <= entry.keys(), line
        entries.append(entry)
    return entries


def by_event(entries: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [entry for entry in entries if entry.get("event") == event]


def test_json_log_lines_carry_start_up_kills_aimd_and_refusals(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    config = '[daemon]\nlog_format = "json"\n\n[tenants.small]\nmax_backlog = 2\n'
    daemon = make_daemon(config).start()
    small = daemon.client(tenant="small")
    small.submit("tests.e2e.tasks:add", 1, 2, delay="1h")
    small.submit("tests.e2e.tasks:add", 1, 2, delay="1h")
    for _ in range(3):  # refused three times in a row: logged once
        with pytest.raises(SubmitThrottled):
            small.submit("tests.e2e.tasks:add", 1, 2)
    client = daemon.client()
    hung = client.submit("tests.e2e.tasks:sleep", 30, timeout="300ms", retries=0)
    hog = client.submit("tests.executor.tasks_for_tests:hog_memory", 2048, memory="256M")
    flag = tmp_path / "overloaded"
    flag.touch()
    throttle = "tests.e2e.tasks:throttle_while"
    throttled = [client.submit(throttle, str(flag), retries=0) for _ in range(3)]
    for handle in [hung, hog, *throttled]:
        with pytest.raises(TaskNotSucceeded):
            handle.result(timeout=30)
    poll(lambda: by_event(json_lines(daemon.log), "aimd"))
    assert daemon.stop() == 0
    entries = json_lines(daemon.log)

    (started,) = by_event(entries, "started")
    assert started["level"] == "info"
    assert started["logger"] == "asynctask.daemon"
    assert daemon.proc is not None
    assert started["pid"] == daemon.proc.pid
    assert started["socket"] == str(daemon.socket)
    assert started["workers"] == 2
    assert started["recovered"] == 0
    assert 0 <= started["seconds"] < 30
    assert all(re.match(TS, entry["ts"]) for entry in entries)

    (refused,) = by_event(entries, "refused")
    assert refused["level"] == "warning"
    assert refused["tenant"] == "small"
    assert (refused["tasks"], refused["backlog"], refused["max_backlog"]) == (1, 2, 2)
    assert refused["retry_after"] > 0

    (timeout,) = by_event(entries, "timeout")
    assert (timeout["id"], timeout["tenant"], timeout["kind"]) == (hung.id, "default", "timeout")
    assert timeout["function"] == "tests.e2e.tasks:sleep"

    (killed,) = by_event(entries, "limit_kill")
    assert (killed["id"], killed["kind"], killed["level"]) == (hog.id, "memory_limit", "warning")
    assert killed["pid"] > 0

    (cut,) = by_event(entries, "aimd")
    assert cut["function"] == "tests.e2e.tasks:throttle_while"
    assert (cut["reason"], cut["previous"], cut["limit"]) == ("cut", 8, 4)

    assert by_event(entries, "stopping")
    assert by_event(entries, "stopped")


def test_text_log_keeps_its_sentences_and_appends_the_fields(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon().start()
    assert daemon.stop() == 0
    (line,) = [line for line in daemon.log.read_text().splitlines() if "serving on" in line]
    assert line.split()[1:3] == ["INFO", "asynctask.daemon:"]
    assert daemon.proc is not None
    assert f" event=started pid={daemon.proc.pid} " in line
    assert f"socket={daemon.socket}" in line


def test_log_format_flag_overrides_the_config_and_survives_detach(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "asynctask.toml").write_text('[daemon]\nlog_format = "text"\n')
    env = {**os.environ, "ASYNCTASK_HOME": str(home), "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "asynctask", *args]
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    try:
        assert run("daemon", "--detach", "--log-format", "json").returncode == 0
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0, stopped.stderr
    entries = json_lines(home / "logs" / "daemon.log")
    assert by_event(entries, "started")
    bad = run("daemon", "--log-format", "yaml")
    assert bad.returncode == 2
    assert "--log-format" in bad.stderr
