"""What every ``asynctask`` command shares: the typer app, the common options, and the one
way a command fails.

Exit codes (docs/contract.md, "Exit codes"): 0 success; 1 the task ended other than ``succeeded``
(``wait``, ``result``); 2 bad usage or a request the daemon refused; 3 no daemon answering; 4 ``wait
--timeout`` ran out; 5 ``doctor`` found a problem. Errors are one line on stderr, never a traceback:
a command calls ``fail``, or lets ``run_client`` turn the client's ``AsynctaskError`` into its exit
code. The ``*_opt`` parsers below fail the same way (exit 2, naming the flag), so a bad value is
refused before anything is sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from asynctask.cli.probe import printable
from asynctask.client import Client
from asynctask.errors import EXIT_USAGE, AsynctaskError
from asynctask.model import parse_duration, parse_time
from asynctask.paths import resolve_socket

__all__ = ["printable"]  # re-exported: every command escapes task text with it

app = typer.Typer(
    name="asynctask",
    help="A single-machine asynchronous task daemon: durable submits, sandboxed workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Daemon home (database, socket, logs). Env: ASYNCTASK_HOME."),
]


SocketOpt = Annotated[
    Path | None,
    typer.Option(
        "--socket", help="Socket path, overriding <home>/asynctask.sock. Env: ASYNCTASK_SOCKET."
    ),
]


#: Whether this command was given ``--json`` (one command runs per process).
_json_asked = False


def _note_json(value: bool) -> bool:
    """``--json``'s callback: errors are printed as JSON too (``run_client``)."""
    global _json_asked
    _json_asked = bool(value)
    return value


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON instead of text.", callback=_note_json)
]
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant the task belongs to.")]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """End the command: one line on stderr and the exit code, never a traceback."""
    typer.echo(f"asynctask: {message}", err=True)
    raise typer.Exit(code)


def client_for(home: Path | None, socket: Path | None, tenant: str = "default") -> Client:
    """The client of the daemon that ``--socket``/``--home`` (else their environment
    variables, else the per-user home) point at."""
    return Client(resolve_socket(socket, home), tenant=tenant)


def run_client(action: Any) -> Any:
    """Run a client call, turning errors into one line and the exit code (docs/contract.md, "Exit
    codes"); with ``--json``, also ``{"error": {"code", "message"}}`` on stdout, so that a script
    can tell a ``storage`` failure from a ``usage`` one without parsing the message."""
    try:
        return action()
    except AsynctaskError as exc:
        if _json_output():
            typer.echo(json.dumps({"error": exc.to_wire()}))
        fail(exc.message, exc.exit_code)


def _json_output() -> bool:
    """Whether ``--json`` was given (its callback notes it, as typer passes it to commands
    only)."""
    return _json_asked


def os_error(exc: OSError, where: str) -> str:
    """One line for an ``OSError``: the file it names (else ``where``) and why."""
    return f"{exc.filename or where}: {exc.strerror or exc}"


def labels_opt(values: list[str] | None) -> dict[str, str]:
    """``--label k=v`` (repeatable) as a map; a later key wins."""
    labels: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--label needs key=value, got {item!r}")
        labels[key] = value
    return labels


def json_arg(text: str | None, what: str) -> Any:
    """A JSON argument (``ARGS_JSON``, ``--kwargs``) decoded; None when not given."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not valid JSON: {exc}")


def duration_opt(text: str | None, flag: str) -> float | None:
    """A duration option (``500ms``, ``2s``, ``5m``; a bare number is seconds) in seconds."""
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        fail(f"{flag}: {exc}")


def time_opt(text: str | None, flag: str) -> float | None:
    """An ISO 8601 time option (with an offset or ``Z``) as epoch seconds."""
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        fail(f"{flag}: {exc}")
