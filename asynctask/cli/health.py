"""``asynctask health`` for typer (``--help``, the command table): one question for a
supervisor's probe. Ready means: the daemon answers within ``--timeout``, accepts tasks, is
not stopping, has loaded its stored backlog (``loading``: until then nothing is dispatched) and
its store takes writes. ``--live`` asks less: the daemon answers at all, or its process is
there while its socket is not (starting before it serves, or draining after a stop): a
liveness probe must not restart a daemon that is loading a long backlog or letting attempts
finish. A daemon that accepts the connection but does not reply within ``--timeout`` fails
both. The verdict is the exit code (0 ready, 2 answering but not ready, 3 no answer) and one
line; ``--json`` prints the verdict and what it was made from.

The asking and deciding are ``cli/probe.py``'s, which the console script also runs without
typer (``cli/entry.py``): the flags here and there must stay the same (a test runs both).
"""

from __future__ import annotations

from typing import Annotated

import typer

from asynctask.cli.app import HomeOpt, JsonOpt, SocketOpt, fail
from asynctask.cli.probe import probe, report, timeout_of


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
    try:
        seconds = timeout_of(timeout)
    except ValueError as exc:
        fail(f"--timeout: {exc}")
    found, info = probe(socket, home, seconds, live)
    text, to_stderr = report(found, info, as_json)
    typer.echo(text, err=to_stderr)
    raise typer.Exit(found.code)
