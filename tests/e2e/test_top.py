"""``asynctask top`` in a real pseudo-terminal against a real daemon, read through ``pyte``.

The pty is the terminal the process sees (a size, cbreak mode, Ctrl-C as SIGINT); ``pyte``
replays what it draws into a screen of characters we can search. The parent keeps the pty's
slave end open, so after the process exits we can still read back the terminal modes it left.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pyte
import pytest

from tests.e2e.conftest import ROOT, poll

COLUMNS, ROWS = 160, 50


def _take_terminal() -> None:
    """In the child: make the pty on stdin its controlling terminal, so Ctrl-C is a SIGINT."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, home: Path, *args: str) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.modes = termios.tcgetattr(self.slave)
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.output = b""
        env = {**os.environ, "ASYNCTASK_HOME": str(home), "PYTHONPATH": str(ROOT),
               "TERM": "xterm-256color"}  # fmt: skip
        for name in ("COLUMNS", "LINES", "NO_COLOR"):
            env.pop(name, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "asynctask", "top", *args],
            cwd=ROOT,
            env=env,
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            start_new_session=True,
            preexec_fn=_take_terminal,  # runs before exec, in the child only
        )

    def pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            data = os.read(self.master, 1 << 16)
            self.output += data
            self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, what: Callable[[str], object], timeout: float = 20) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.05)
            found = what(self.text())
            if found:
                return found
        raise AssertionError(f"screen never showed {what}:\n{self.text()}")

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def exit_code(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump(0.05)
        code = self.proc.wait(1)
        self.pump(0)  # the last bytes it wrote
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)
        os.close(self.slave)

    def restored(self) -> bool:
        """The modes are what they were before, the cursor is visible, the main screen back."""
        return (
            termios.tcgetattr(self.slave) == self.modes
            and not self.screen.cursor.hidden
            and self.output.rfind(b"\x1b[?1049l") > self.output.rfind(b"\x1b[?1049h") >= 0
        )


@pytest.fixture
def terminals():
    opened: list[Terminal] = []

    def open_terminal(home: Path, *args: str) -> Terminal:
        opened.append(Terminal(home, *args))
        return opened[-1]

    yield open_terminal
    for terminal in opened:
        terminal.close()


def queue_row(
    tenant: str, queue: str, backlog: int, paused: bool = False
) -> Callable[[str], object]:
    state = r"paused\s+" if paused else ""
    pattern = re.compile(rf"^[> ]\s+{tenant}\s+{queue}\s+{state}{backlog}\s+0\s", re.MULTILINE)
    return lambda text: pattern.search(text)


def is_paused(daemon, tenant: str, queue: str) -> bool:
    rows = daemon.client().queues()["queues"]
    return any(r["paused"] for r in rows if (r["tenant"], r["queue"]) == (tenant, queue))


def test_top_shows_the_queues_and_a_pause_key_pauses_the_highlighted_one(daemon, terminals) -> None:
    acme, beta = daemon.client(tenant="acme"), daemon.client(tenant="beta")
    # Delayed tasks: a backlog that stays put while we look at it.
    for client, queue, n in ((acme, "emails", 3), (acme, "reports", 7), (beta, None, 2)):
        client.submit_many(
            {"func": "tests.e2e.tasks:add", "args": [i, 1], "delay": "1h", "queue": queue}
            for i in range(n)
        )
    top = terminals(daemon.home, "--interval", "200ms")
    top.wait_for(queue_row("acme", "emails", 3))
    top.wait_for(queue_row("acme", "reports", 7))
    top.wait_for(queue_row("beta", "beta", 2))
    assert top.wait_for(lambda text: re.search(r"^>\s+acme\s+emails\s", text, re.MULTILINE))

    top.press(b"j")  # down to acme/reports
    top.wait_for(lambda text: re.search(r"^>\s+acme\s+reports\s", text, re.MULTILINE))
    top.press(b"p")
    poll(lambda: is_paused(daemon, "acme", "reports"))
    assert not is_paused(daemon, "acme", "emails")
    top.wait_for(queue_row("acme", "reports", 7, paused=True))
    top.wait_for(lambda text: "paused acme/reports" in text)

    top.press(b" ")  # toggles it back
    poll(lambda: not is_paused(daemon, "acme", "reports"))
    top.wait_for(queue_row("acme", "reports", 7))

    top.press(b"t")  # the first tenant alone
    top.wait_for(lambda text: "tenant: acme" in text and " beta " not in text)

    top.press(b"q")
    assert top.exit_code() == 0
    assert top.restored()


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_top_gives_the_terminal_back(daemon, terminals, how) -> None:
    top = terminals(daemon.home)
    top.wait_for(lambda text: "asynctask top" in text and "queues" in text)
    if how == "ctrl-c":
        top.press(b"\x03")  # the pty's line discipline turns it into SIGINT
    else:
        top.proc.send_signal(signal.SIGTERM)
    assert top.exit_code() == (130 if how == "ctrl-c" else 143)
    assert top.restored()


def test_top_without_a_terminal_refuses_and_once_prints_a_frame(daemon) -> None:
    daemon.client(tenant="acme").submit("tests.e2e.tasks:add", 1, 1, delay="1h", queue="nightly")
    refused = daemon.cli("top")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "asynctask: top needs a terminal on stdin and stdout; use --once to print one frame"
    )
    once = daemon.cli("top", "--once", "--tenant", "acme")
    assert once.returncode == 0, once.stderr
    assert queue_row("acme", "nightly", 1)(once.stdout)
    assert "tenant: acme" in once.stdout


def test_top_with_no_daemon_says_so_in_one_line(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asynctask", "top", "--once", "--home", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stderr.startswith("asynctask: no daemon answering")
    assert len(result.stderr.splitlines()) == 1
