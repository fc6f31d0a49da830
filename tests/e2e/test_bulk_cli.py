"""``wait ID...`` and ``submit --from-file`` against a real daemon: outputs, exit codes, the
all-or-nothing check of the file, and the progress bar (only on a terminal)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, DaemonProcess

ADD = "tests.e2e.tasks:add"


def cli(
    daemon: DaemonProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The command with pipes for stdin, stdout and stderr: not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "asynctask", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ASYNCTASK_HOME": str(daemon.home), "PYTHONPATH": str(ROOT)},
    )


def on_terminal(daemon: DaemonProcess, *args: str, timeout: float = 120) -> tuple[int, str]:
    """The command with stdout and stderr on a pseudo-terminal, as a person runs it: its exit
    code and everything it drew (escape sequences included)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "ASYNCTASK_HOME": str(daemon.home), "PYTHONPATH": str(ROOT)}
    env.pop("NO_COLOR", None)
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "asynctask", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    drawn = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the last holder of the terminal has closed it
                break
            if not chunk:
                break
            drawn += chunk
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), drawn.decode(
            "utf-8", "replace"
        )
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()


def jsonl(path: Path, lines: list[dict[str, object] | str]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


# -- wait ID... --------------------------------------------------------------------------------


def test_wait_for_many_prints_a_line_each_and_exits_by_the_worst(daemon: DaemonProcess) -> None:
    client = daemon.client()
    good = [client.submit(ADD, i, i).id for i in range(3)]
    done = cli(daemon, "wait", *good)
    assert done.returncode == 0
    assert done.stdout.splitlines() == [f"{task_id} succeeded" for task_id in good]
    assert done.stderr == ""  # not a terminal: no progress bar

    bad = client.submit("tests.e2e.tasks:give_up", "no").id
    mixed = cli(daemon, "wait", good[0], bad, good[1], "--json")
    assert mixed.returncode == 1
    tasks = json.loads(mixed.stdout)
    assert [(t["id"], t["state"]) for t in tasks] == [
        (good[0], "succeeded"), (bad, "failed"), (good[1], "succeeded"),
    ]  # fmt: skip
    assert tasks[1]["error"]["message"] == "no"
    assert mixed.stderr == ""
    text = cli(daemon, "wait", bad, good[2])
    assert text.stdout.splitlines()[0] == f"{bad} failed asynctask.errors.Fail: no"


def test_wait_for_many_reads_ids_from_stdin(daemon: DaemonProcess) -> None:
    client = daemon.client(tenant="acme")
    ids = [client.submit(ADD, i, 1).id for i in range(50)]
    piped = cli(daemon, "wait", "-", "--tenant", "acme", "--json", stdin="\n".join(ids) + "\n")
    assert piped.returncode == 0, piped.stderr
    assert [t["result"] for t in json.loads(piped.stdout)] == [i + 1 for i in range(50)]
    # One ID through stdin is still the many-IDs form: an array, not one task object.
    one = cli(daemon, "wait", "-", "--tenant", "acme", "--json", stdin=ids[0])
    assert isinstance(json.loads(one.stdout), list)


def test_wait_for_many_times_out_with_4_and_shows_what_is_still_going(
    daemon: DaemonProcess,
) -> None:
    client = daemon.client()
    quick = client.submit(ADD, 1, 2).id
    slow = client.submit("tests.e2e.tasks:sleep", 30).id
    began = time.monotonic()
    late = cli(daemon, "wait", quick, slow, "--timeout", "500ms", "--json")
    assert time.monotonic() - began < 20
    assert late.returncode == 4
    states = {t["id"]: t["state"] for t in json.loads(late.stdout)}
    assert states[quick] == "succeeded"
    assert states[slow] in ("queued", "running")
    # A failure already known outranks the timeout: waiting longer cannot make it succeed.
    failed = client.submit("tests.e2e.tasks:give_up", "no")
    failed.wait(timeout=20)
    assert cli(daemon, "wait", failed.id, slow, "--timeout", "200ms").returncode == 1


def test_wait_with_one_id_is_unchanged_and_unknown_ids_are_not_found(
    daemon: DaemonProcess,
) -> None:
    task_id = daemon.client().submit(ADD, 2, 2).id
    single = cli(daemon, "wait", task_id, "--json")
    assert single.returncode == 0
    assert json.loads(single.stdout)["result"] == 4  # one object, as before
    missing = cli(daemon, "wait", task_id, "no-such-task")
    assert missing.returncode == 2
    assert "no-such-task" in missing.stderr
    assert cli(daemon, "wait", task_id, "bad id").returncode == 2


# -- submit --from-file ------------------------------------------------------------------------


def test_submit_from_file_submits_every_line_with_its_options(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    lines: list[dict[str, object] | str] = [{"function": ADD, "args": [i, i]} for i in range(20)]
    lines[3] = {
        "function": ADD,
        "args": [1],
        "kwargs": {"b": 2},
        "id": "line-4",
        "tenant": "acme",
        "priority": 9,
        "labels": {"kind": "own"},
        "retries": 0,
    }
    lines[5] = ""  # blank lines are skipped
    source = jsonl(tmp_path / "tasks.jsonl", lines)
    result = cli(daemon, "submit", "--from-file", str(source), "--label", "batch=b1")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    ids = result.stdout.split()
    assert len(ids) == 19
    assert ids[3] == "line-4"
    own = daemon.client(tenant="acme").status("line-4")
    assert (own.priority, own.retries, own.labels) == (9, 0, {"batch": "b1", "kind": "own"})
    assert daemon.client(tenant="acme").result("line-4", timeout=20) == 3
    other = daemon.client().status(ids[0])
    assert other.labels == {"batch": "b1"}
    assert daemon.client().result(ids[-1], timeout=20) == 38


def test_submit_from_stdin_in_batches_with_json_and_wait(daemon: DaemonProcess) -> None:
    count = 2_500  # three submit_many requests
    text = "".join(json.dumps({"function": ADD, "args": [i, 1]}) + "\n" for i in range(count))
    result = cli(daemon, "submit", "--from-file", "-", "--json", stdin=text)
    assert result.returncode == 0, result.stderr
    ids = json.loads(result.stdout)
    assert len(set(ids)) == count
    waited = cli(daemon, "wait", "-", "--json", stdin="\n".join(ids))
    assert [t["result"] for t in json.loads(waited.stdout)] == [i + 1 for i in range(count)]
    both = cli(daemon, "submit", "--from-file", "-", "--wait", stdin=text[: text.index("\n") + 1])
    assert both.returncode == 0
    assert both.stdout.split()[1] == "succeeded"


@pytest.mark.parametrize(
    ("bad", "complaint"),
    [
        ('{"function": "tests.e2e.tasks:add", "args": [1,', "not JSON"),
        ('["tests.e2e.tasks:add"]', "JSON object"),
        ('{"function": "tests.e2e.tasks:add", "priority": 12}', "priority"),
        ('{"function": "no-colon"}', "function"),
        ('{"function": "tests.e2e.tasks:add", "delay": "soon"}', "delay"),
        ('{"function": "tests.e2e.tasks:add", "colour": "red"}', "colour"),
        ('{"function": "tests.e2e.tasks:add", "labels": {"k": 1}}', "labels"),
        ('{"function": "tests.e2e.tasks:add", "id": "has space"}', "ID"),
    ],
)
def test_a_bad_line_refuses_the_whole_file_by_its_number(
    daemon: DaemonProcess, tmp_path: Path, bad: str, complaint: str
) -> None:
    good: dict[str, object] = {"function": ADD, "args": [1, 1]}
    source = jsonl(tmp_path / "tasks.jsonl", [good] * 1500 + [bad] + [good])
    result = cli(daemon, "submit", "--from-file", str(source))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "tasks.jsonl line 1501: " in result.stderr
    assert complaint in result.stderr
    assert "nothing submitted" in result.stderr
    assert daemon.client().list(limit=10) == []


def test_usage_errors_of_from_file(daemon: DaemonProcess, tmp_path: Path) -> None:
    source = jsonl(tmp_path / "t.jsonl", [{"function": ADD, "args": [1, 2]}])
    assert cli(daemon, "submit", ADD, "--from-file", str(source)).returncode == 2
    assert cli(daemon, "submit", "--from-file", str(source), "--id", "x").returncode == 2
    missing = cli(daemon, "submit", "--from-file", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    assert cli(daemon, "submit").returncode == 2  # neither FUNC nor --from-file


def test_a_refusal_midway_prints_what_was_submitted_and_where_it_stopped(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    daemon = make_daemon("[tenants.small]\nmax_backlog = 1500\n").start()
    lines: list[dict[str, object] | str] = [
        {"function": ADD, "args": [i, i], "tenant": "small", "delay": "1h"} for i in range(2500)
    ]
    result = cli(daemon, "submit", "--from-file", str(jsonl(tmp_path / "t.jsonl", lines)))
    assert result.returncode == 2
    assert len(result.stdout.split()) == 1000  # the first batch went in
    assert "submitted 1000 of 2500 tasks (lines 1-1000)" in result.stderr
    assert "line 1001 and those after it were not: throttled" in result.stderr


# -- the progress bar --------------------------------------------------------------------------


def test_a_terminal_gets_a_progress_bar_and_json_does_not(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    source = jsonl(tmp_path / "t.jsonl", [{"function": ADD, "args": [i, 0]} for i in range(1200)])
    code, drawn = on_terminal(daemon, "submit", "--from-file", str(source), "--wait")
    assert code == 0, [line for line in drawn.splitlines() if "succeeded" not in line][-20:]
    assert "submitting" in drawn
    assert "1200/1200" in drawn
    assert "100%" in drawn
    assert "waiting" in drawn
    assert drawn.count(" succeeded") == 1200

    ids = re.findall(r"([0-9A-Z]{26}) succeeded", drawn)
    assert len(ids) == 1200
    code, drawn = on_terminal(daemon, "wait", *ids[:300])
    assert code == 0
    assert "300/300" in drawn

    code, drawn = on_terminal(daemon, "submit", "--from-file", str(source), "--json")
    assert code == 0
    assert "submitting" not in drawn
    assert "%" not in drawn
    assert len(json.loads(drawn)) == 1200
