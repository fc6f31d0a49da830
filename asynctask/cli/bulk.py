"""The bulk side of the command line: ``wait ID...`` and ``submit --from-file FILE``.

Both can take minutes over tens of thousands of tasks, so on a terminal they draw a progress
bar on stderr (``rich.progress``); under ``--json``, or when stderr is not a terminal (a pipe, a
log file, CI), they draw nothing, so scripts see only the results on stdout.

``wait`` over many IDs sends its waits pipelined on one ``AsyncClient`` connection, at most
``WAIT_WINDOW`` at a time: the daemon stops reading a connection with 256 requests in flight,
and a wait stays in flight until its task ends, so a bigger window would hold later requests
unread (and their timeouts unstarted) behind it. Each wait carries the time left until the
``--timeout`` deadline; one that runs out is answered with the task's current status instead.

``submit --from-file`` checks every line before it sends any: each is built into the spec the
client sends, and that spec is checked against the wire schema the daemon checks it with
(``protocol.requests.validate_spec``), so a bad value anywhere refuses the whole file with its line
number and nothing is submitted. Lines then go in batches of ``submit_many`` (each one request,
all or none). What the daemon alone can know - the caller's tenants, back pressure, its
``max_payload`` - can still refuse a batch midway; then the IDs already submitted are printed and
the error names the first line that was not.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import typer

from asynctask.client import AsyncClient, Client, TaskStatus, task_spec
from asynctask.errors import (
    EXIT_TASK_NOT_SUCCEEDED,
    EXIT_WAIT_TIMEOUT,
    AsynctaskError,
    UsageError,
    WaitTimeout,
)
from asynctask.model import is_task_id
from asynctask.protocol import DEFAULT_MAX_FRAME
from asynctask.protocol.requests import validate_spec

#: Waits in flight on the one connection (the daemon pauses reading one at 256).
WAIT_WINDOW: Final = 128
#: Tasks per ``submit_many`` request (the daemon takes up to 10,000).
BATCH_TASKS: Final = 1_000
#: Input bytes per request: msgpack of the same values is smaller than their JSON, so a batch
#: stays well inside the daemon's default 16 MiB frame.
BATCH_BYTES: Final = 4 * 1024 * 1024

#: The keys of a ``--from-file`` line besides the submit options.
_CALL_KEYS: Final = ("function", "args", "kwargs")

Advance = Callable[[int], None]


def progress_enabled(as_json: bool) -> bool:
    """A progress bar only for a person: stderr is a terminal and the output is not JSON."""
    return not as_json and sys.stderr.isatty()


@contextmanager
def progress_bar(enabled: bool, description: str, total: int) -> Iterator[Advance]:
    """Yield ``advance(n)``; with ``enabled``, a bar on stderr ends at ``total``."""
    if not enabled:
        yield _nothing
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda count: progress.advance(task, count)


def _nothing(count: int) -> None:
    return None


# -- wait ------------------------------------------------------------------------------------


def read_ids(arguments: Sequence[str], stdin: IO[str]) -> list[str]:
    """The IDs to wait for, each once, in the order given; ``-`` reads more from ``stdin``
    (separated by white space)."""
    ids: list[str] = []
    for argument in arguments:
        ids.extend(stdin.read().split() if argument == "-" else [argument])
    for task_id in ids:
        if not is_task_id(task_id):
            raise UsageError(f"not a task ID: {task_id!r}")
    if not ids:
        raise UsageError("no task IDs given")
    return list(dict.fromkeys(ids))


def wait_all(
    socket: Path, tasks: Sequence[tuple[str, str]], timeout: float | None, progress: bool
) -> list[TaskStatus]:
    """Wait for every ``(tenant, id)``; a task still going at the deadline is returned as it
    is then. A task the caller cannot see raises ``NotFound`` at once, waiting for no more."""
    with progress_bar(progress, "waiting", len(tasks)) as advance:
        return asyncio.run(_wait_all(socket, tasks, timeout, advance))


async def _wait_all(
    socket: Path, tasks: Sequence[tuple[str, str]], timeout: float | None, advance: Advance
) -> list[TaskStatus]:
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    found: dict[tuple[str, str], TaskStatus] = {}
    todo = iter(tasks)
    async with AsyncClient(socket) as client:

        async def waiter() -> None:
            for tenant, task_id in todo:  # shared: each waiter takes the next task
                left = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    status = await client.wait(task_id, tenant, left)
                except WaitTimeout:
                    status = await client.status(task_id, tenant)
                found[(tenant, task_id)] = status
                advance(1)

        waiters = [asyncio.create_task(waiter()) for _ in range(min(WAIT_WINDOW, len(tasks)))]
        try:
            await asyncio.gather(*waiters)
        finally:
            for pending in waiters:
                pending.cancel()
    return [found[key] for key in tasks]


def echo_statuses(statuses: Sequence[TaskStatus], as_json: bool) -> int:
    """Print one line per task (a JSON array with ``as_json``); returns the exit code: 0 all
    succeeded, 1 one ended otherwise (whatever the rest did), 4 one had not ended in time."""
    if as_json:
        typer.echo(json.dumps([status.to_json() for status in statuses]))
    else:
        for status in statuses:
            line = f"{status.id} {status.state.value}"
            if status.error and not status.succeeded:
                message = " ".join(str(status.error.get("message")).split())  # one line
                line += f" {status.error.get('type')}: {message}"
            typer.echo(line)
    if any(status.done and not status.succeeded for status in statuses):
        return EXIT_TASK_NOT_SUCCEEDED
    if not all(status.done for status in statuses):
        return EXIT_WAIT_TIMEOUT
    return 0


# -- submit --from-file ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One checked line of a ``--from-file`` input: the ``submit_many`` call it makes."""

    number: int
    call: dict[str, Any]
    size: int  # bytes of its JSON, for batching


def read_calls(source: str, stdin: IO[str], defaults: dict[str, Any], tenant: str) -> list[Line]:
    """Check every line of ``source`` (``-``: stdin) and return their calls; the first bad
    line raises ``UsageError`` naming it. Blank lines are skipped. ``defaults`` are submit
    options for every line (the command line's); a line's own keys win, its labels are added
    to theirs."""
    name = "stdin" if source == "-" else source
    try:
        handle = stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    lines: list[Line] = []
    try:
        for number, text in enumerate(handle, 1):
            text = text.strip()
            if not text:
                continue
            try:
                call = _call_of(text, defaults)
                validate_spec(task_spec(call, tenant), DEFAULT_MAX_FRAME)
            except UsageError as exc:
                raise UsageError(
                    f"{name} line {number}: {exc.message}; nothing submitted"
                ) from None
            lines.append(Line(number, call, len(text)))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not UTF-8 text: {exc}; nothing submitted") from None
    finally:
        if handle is not stdin:
            handle.close()
    return lines


def _call_of(text: str, defaults: dict[str, Any]) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(raw, dict):
        raise UsageError('each line must be a JSON object: {"function": "module:function", ...}')
    if "func" in raw:
        raise UsageError('unknown key "func" (the function goes in "function")')
    function = raw.get("function")
    if not isinstance(function, str):
        raise UsageError('"function" must be a string, "package.module:function"')
    args = raw.get("args", [])
    if not isinstance(args, list):
        raise UsageError('"args" must be a JSON array')
    kwargs = raw.get("kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise UsageError('"kwargs" must be a JSON object')
    options = {key: value for key, value in raw.items() if key not in _CALL_KEYS}
    if "id" in options:
        if "task_id" in options:
            raise UsageError('give "id" or "task_id", not both')
        options["task_id"] = options.pop("id")
    labels = options.get("labels")
    if isinstance(labels, dict) and defaults.get("labels"):
        options["labels"] = {**defaults["labels"], **labels}
    return {"func": function, "args": args, "kwargs": kwargs, **defaults, **options}


def _batches(lines: Sequence[Line]) -> Iterator[list[Line]]:
    batch: list[Line] = []
    size = 0
    for line in lines:
        if batch and (len(batch) >= BATCH_TASKS or size + line.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += line.size
    if batch:
        yield batch


def submit_lines(
    client: Client, lines: Sequence[Line], progress: bool
) -> tuple[list[tuple[str, str]], AsynctaskError | None]:
    """Submit the lines in batches, in order: the ``(tenant, id)`` of each task submitted, and
    the error that stopped it midway (the tasks of earlier batches stay submitted)."""
    submitted: list[tuple[str, str]] = []
    with progress_bar(progress, "submitting", len(lines)) as advance:
        for batch in _batches(lines):
            try:
                handles = client.submit_many(line.call for line in batch)
            except AsynctaskError as exc:
                done = len(submitted)
                where = f"lines {lines[0].number}-{lines[done - 1].number}" if done else "none"
                message = (
                    f"submitted {done} of {len(lines)} tasks ({where}); line "
                    f"{batch[0].number} and those after it were not: {exc.message}"
                )
                return submitted, _same_kind(exc, message)
            submitted.extend((handle.tenant, handle.id) for handle in handles)
            advance(len(batch))
    return submitted, None


def _same_kind(error: AsynctaskError, message: str) -> AsynctaskError:
    """``error`` with another message, keeping its class (and so its exit code)."""
    try:
        return type(error)(message)
    except TypeError:  # pragma: no cover - every AsynctaskError takes a message first
        return UsageError(message)


def submit_file(
    client: Client,
    tenant: str,
    source: str,
    defaults: dict[str, Any],
    *,
    wait: bool,
    as_json: bool,
) -> None:
    """``asynctask submit --from-file``: check, submit, print the IDs (with ``wait``: wait and
    print each task as ``wait`` does); exits through ``typer.Exit`` or an ``AsynctaskError``.
    ``tenant`` is for lines that name none; ``defaults`` (None: not given) for every line."""
    options = {key: value for key, value in defaults.items() if value is not None}
    lines = read_calls(source, sys.stdin, options, tenant)
    progress = progress_enabled(as_json)
    submitted, error = submit_lines(client, lines, progress)
    if error is not None or not wait:
        _echo_ids([task_id for _, task_id in submitted], as_json)
        if error is not None:
            raise error
        return
    statuses = wait_all(client.socket_path, submitted, None, progress) if submitted else []
    raise typer.Exit(echo_statuses(statuses, as_json))


def _echo_ids(ids: Iterable[str], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(list(ids)))
    else:
        for task_id in ids:
            typer.echo(task_id)
