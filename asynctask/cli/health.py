"""``asynctask health``: one question for a supervisor's probe, answered fast.

``ping`` answers "is a daemon there?" and prints its numbers; a probe needs a verdict. Ready
means: the daemon answers within ``--timeout``, accepts tasks, is not stopping, has loaded its
stored backlog (``loading``: until then nothing is dispatched) and its store takes writes.
``--live`` asks less: the daemon answers at all, or its process is there while its socket is
not (starting before it serves, or draining after a stop): a liveness probe must not restart a
daemon that is loading a long backlog or letting attempts finish. A daemon that accepts the
connection but does not reply within ``--timeout`` fails both. The verdict is the exit code (0
ready, 2 answering but not ready, 3 no answer) and one line; ``--json`` prints the verdict and
what it was made from.

The decision (``verdict``) is a pure function of the ``ping`` reply, so each reason is tested
without a daemon in that state; the command around it only asks and prints.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Annotated, Any

import typer

from asynctask.cli.app import HomeOpt, JsonOpt, SocketOpt, duration_opt, printable
from asynctask.cli.daemon import _home_daemon_pid
from asynctask.client import Client
from asynctask.errors import EXIT_NO_DAEMON, EXIT_USAGE, AsynctaskError, DaemonUnavailable
from asynctask.paths import resolve_socket

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


def health(
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Liveness only: exit 0 whenever the daemon answers (loading or stopping too).",
        ),
    ] = False,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", help="How long to wait for an answer (default 2s)."),
    ] = None,
) -> None:
    """For probes: exit 0 when the daemon answers and is serving (accepting tasks, not
    stopping, its stored backlog loaded, its store taking writes); 2 with the reason when it
    answers but is not (yet) serving; 3 when none answers within --timeout. --live (liveness):
    exit 0 when it answers, or when the home's daemon process is there but its socket is not
    (starting, or draining after a stop). One line on stdout when healthy, on stderr when
    not; --json prints {"ok", "code", "reason", "daemon"} on stdout either way."""
    seconds = duration_opt(timeout, "--timeout")
    seconds = DEFAULT_TIMEOUT if seconds is None or seconds <= 0 else seconds
    info: dict[str, Any] | None = None
    expired: list[bool] = []
    stuck = Verdict(False, EXIT_NO_DAEMON, f"no answer from the daemon within {seconds:g}s")
    try:
        with _deadline(seconds, expired):
            info = Client(resolve_socket(socket, home), connect_timeout=seconds).ping()
        found = verdict(info, live)
    except TimeoutError:  # connected, but no reply: its loop is stuck (or it is stopped)
        found = stuck
    except DaemonUnavailable as exc:
        pid = _home_daemon_pid(home)
        if expired or exc.message.endswith("(timed out)"):  # the client reworded the timeout
            found = stuck
        elif pid is None:
            found = Verdict(False, exc.exit_code, exc.message)
        else:  # its socket is not up yet (loading before it serves) or no more (draining)
            reason = f"the daemon (pid {pid}) is not answering: it is starting or stopping"
            found = Verdict(live, 0 if live else EXIT_NO_DAEMON, reason)
    except AsynctaskError as exc:
        found = Verdict(False, exc.exit_code, exc.message)
    if as_json:
        daemon = None if info is None else {k: v for k, v in info.items() if k not in ("rid", "ok")}
        typer.echo(
            json.dumps(
                {"ok": found.ok, "code": found.code, "reason": found.reason, "daemon": daemon}
            )
        )
    elif found.ok:
        typer.echo(found.reason)
    else:
        typer.echo(f"asynctask: unhealthy: {found.reason}", err=True)
    raise typer.Exit(found.code)


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
