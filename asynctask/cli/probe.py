"""The health probe without the command line's packages: ``asynctask health`` asks, decides
and prints from here, and the console script runs it straight from ``cli/entry.py`` (argparse,
no typer, no other command's module), because a probe runs every few seconds for as long as
the daemon does and most of a command's start is importing the command line.

``verdict`` decides from a ``ping`` reply and is a pure function, so each reason is tested
without a daemon in that state. ``probe`` asks: a reply within the deadline, else whether the
home's daemon process is there (starting before its socket is up, or draining after a stop).
``cli/health.py`` is the same command for typer (``--help``, the command table).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from asynctask.errors import EXIT_NO_DAEMON, EXIT_USAGE, AsynctaskError, DaemonUnavailable
from asynctask.model import parse_duration
from asynctask.paths import PID_NAME, resolve_home, resolve_socket

#: Seconds to wait for the daemon's answer, unless ``--timeout`` says otherwise: a probe's
#: own timeout is usually 1 s or more, and a daemon that needs longer to answer a ping is not
#: serving anyone well.
DEFAULT_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``health`` concludes: ``ok``, the exit code and the one line that says why."""

    ok: bool
    code: int
    reason: str


def printable(text: str) -> str:
    """Text from a task or from storage, for a terminal: control characters as escapes, so
    crafted text cannot forge a line (docs/contract.md, "Terminal output"). ``cli/app.py``
    re-exports it for every command."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def verdict(info: Mapping[str, Any], live: bool = False) -> Verdict:
    """The verdict on a ``ping`` reply. Every reason is one line a person can act on."""
    pid = info.get("pid")
    if live:
        return Verdict(True, 0, f"alive: pid {pid}")
    if info.get("stopping"):
        return Verdict(False, EXIT_USAGE, f"stopping: the daemon (pid {pid}) is draining")
    if not info.get("accepting", True):
        return Verdict(False, EXIT_USAGE, f"not accepting tasks yet (pid {pid})")
    if info.get("loading"):
        live_tasks = (info.get("tasks") or {}).get("live")
        loaded = f", {live_tasks} loaded so far" if isinstance(live_tasks, int) else ""
        return Verdict(
            False, EXIT_USAGE, f"loading the stored backlog: nothing is dispatched yet{loaded}"
        )
    storage = info.get("storage") or {"ok": True}  # an older daemon does not say
    if not storage.get("ok", True):
        failing_for = storage.get("failing_for")
        since = f" for {failing_for:.0f}s" if isinstance(failing_for, int | float) else ""
        error = printable(str(storage.get("error")))
        return Verdict(False, EXIT_USAGE, f"storage failing{since}: {error}")
    return Verdict(True, 0, f"serving: pid {pid}, version {info.get('version')}")


def probe(
    socket: Path | None, home: Path | None, seconds: float, live: bool
) -> tuple[Verdict, dict[str, Any] | None]:
    """Ask the daemon and decide; the ``ping`` reply too, when there was one."""
    from asynctask.client import Client  # here: ``verdict``'s tests need no client

    info: dict[str, Any] | None = None
    expired: list[bool] = []
    stuck = Verdict(False, EXIT_NO_DAEMON, f"no answer from the daemon within {seconds:g}s")
    try:
        with _deadline(seconds, expired):
            info = Client(resolve_socket(socket, home), connect_timeout=seconds).ping()
        return verdict(info, live), info
    except TimeoutError:  # connected, but no reply: its loop is stuck (or it is stopped)
        return stuck, None
    except DaemonUnavailable as exc:
        if expired or exc.message.endswith("(timed out)"):  # the client reworded the timeout
            return stuck, None
        pid = home_daemon_pid(home)
        if pid is None:
            return Verdict(False, exc.exit_code, exc.message), None
        # Its socket is not up yet (loading before it serves) or no more (draining).
        reason = f"the daemon (pid {pid}) is not answering: it is starting or stopping"
        return Verdict(live, 0 if live else EXIT_NO_DAEMON, reason), None
    except AsynctaskError as exc:
        return Verdict(False, exc.exit_code, exc.message), None


def report(found: Verdict, info: Mapping[str, Any] | None, as_json: bool) -> tuple[str, bool]:
    """The text to print, and whether it goes to stderr."""
    if as_json:
        daemon = None if info is None else {k: v for k, v in info.items() if k not in ("rid", "ok")}
        body = {"ok": found.ok, "code": found.code, "reason": found.reason, "daemon": daemon}
        return json.dumps(body), False
    if found.ok:
        return found.reason, False
    return f"asynctask: unhealthy: {found.reason}", True


def timeout_of(text: str | None) -> float:
    """``--timeout`` in seconds (``ValueError`` for a bad one); the default when not given."""
    if text is None:
        return DEFAULT_TIMEOUT
    seconds = parse_duration(text)
    return seconds if seconds > 0 else DEFAULT_TIMEOUT


def main(argv: list[str]) -> int:
    """``asynctask health ARGS`` run from the console script; returns the exit code."""
    parser = argparse.ArgumentParser(prog="asynctask health", add_help=False)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--socket", type=Path)
    parser.add_argument("--json", dest="as_json", action="store_true")
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--timeout")
    args = parser.parse_args(argv)  # exit 2 with the usage on a bad flag, as typer's
    try:
        seconds = timeout_of(args.timeout)
    except ValueError as exc:
        sys.stderr.write(f"asynctask: --timeout: {exc}\n")
        return EXIT_USAGE
    found, info = probe(args.socket, args.home, seconds, args.live)
    text, to_stderr = report(found, info, args.as_json)
    (sys.stderr if to_stderr else sys.stdout).write(text + "\n")
    return found.code


@contextmanager
def _deadline(seconds: float, expired: list[bool]) -> Iterator[None]:
    """``TimeoutError`` in this (main) thread after ``seconds``: the blocking client has a
    connect timeout but waits for a reply as long as it takes, and a daemon whose loop is
    stuck must fail the probe, not hang it. The client may turn the ``TimeoutError`` into its
    own "unavailable" error, so ``expired`` records that the deadline passed."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        expired.append(True)
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def home_daemon_pid(home: Path | None) -> int | None:
    """The pid in the home's pid file, if that process is alive (it is removed last)."""
    try:
        pid = int((resolve_home(home) / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has: its parent, say a
    test harness, has not reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: the signal 0 probe (a zombie counts as alive there)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
