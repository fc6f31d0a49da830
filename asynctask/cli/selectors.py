"""Bulk control: ``cancel``, ``delete``, ``retry``, ``pause`` and ``resume``.

Each takes one task ID or the filter flags of ``list`` (docs/contract.md, "Selectors"): ``--tenant
--queue --function --state --prefix --label --since --until``, where ``--since``/``--until``
compare ``created_at`` and take an ISO 8601 time or a duration ago. ``parse_selector`` turns
them into the client's fields and refuses an empty selector, so a bare ``cancel`` cannot act on
every task. ``pause``/``resume`` without a task ID or task filter hold a target (a tenant, a
queue or a function) instead, which later submits obey too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from asynctask.cli.app import HomeOpt, JsonOpt, SocketOpt, client_for, fail, labels_opt, run_client
from asynctask.model import DEFAULT_TENANT, parse_duration, parse_time

TaskIdArg = Annotated[str | None, typer.Argument(help="One task's ID (else the options select).")]
SelTenant = Annotated[str | None, typer.Option("--tenant", help="The tenant (default: default).")]
SelQueue = Annotated[str | None, typer.Option("--queue")]
SelFunction = Annotated[str | None, typer.Option("--function")]
SelPrefix = Annotated[str | None, typer.Option("--prefix", help="Task ID prefix.")]
SelSince = Annotated[
    str | None, typer.Option("--since", help="Created at or after (ISO 8601 or a duration ago).")
]
SelUntil = Annotated[
    str | None, typer.Option("--until", help="Created before (ISO 8601 or a duration ago).")
]
SelLabel = Annotated[list[str] | None, typer.Option("--label", help="k=v; repeatable.")]


def moment_opt(text: str | None, flag: str) -> float | None:
    """An ISO 8601 time, or a duration meaning "that long ago"."""
    if text is None:
        return None
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        fail(f"{flag}: not an ISO 8601 time or a duration: {text!r}")


def split_states(values: list[str] | None) -> list[str]:
    """``--state`` values, each repeatable or comma-separated (``--state failed,expired``)."""
    return [s.strip() for item in values or [] for s in item.split(",") if s.strip()]


def parse_selector(
    op: str,
    task_id: str | None,
    state: list[str] | None,
    tenant: str | None,
    queue: str | None,
    function: str | None,
    prefix: str | None,
    since: str | None,
    until: str | None,
    label: list[str] | None,
) -> dict[str, Any]:
    """The client's selector fields for ``op`` (cancel, delete, retry, pause, resume): an ID
    or at least one flag is needed, so that a bare command never acts on every task."""
    states = split_states(state)
    chosen = (task_id, tenant, queue, function, prefix, since, until, states or None, label)
    if all(value is None for value in chosen):
        fail(
            f"{op} needs a task ID or a selector: --tenant, --queue, --function, --state, "
            "--prefix, --label, --since or --until"
        )
    return {
        "id": task_id,
        "state": states,
        "tenant": tenant or DEFAULT_TENANT,
        "queue": queue,
        "function": function,
        "prefix": prefix,
        "since": moment_opt(since, "--since"),
        "until": moment_opt(until, "--until"),
        "labels": labels_opt(label),
    }


def _echo_count(done: str, count: int, as_json: bool) -> None:
    """``cancelled 3 tasks``, or ``{"cancelled": 3}`` with ``--json``."""
    if as_json:
        typer.echo(json.dumps({done: count}))
    else:
        typer.echo(f"{done} {count} task{'' if count == 1 else 's'}")


def cancel(
    task_id: TaskIdArg = None,
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state", help="scheduled, queued or running; repeatable or comma-separated."
        ),
    ] = None,
    tenant: SelTenant = None,
    queue: SelQueue = None,
    function: SelFunction = None,
    prefix: SelPrefix = None,
    since: SelSince = None,
    until: SelUntil = None,
    label: SelLabel = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel live tasks (scheduled, queued, running): one task by ID, or every one a selector
    matches. Running attempts have their workers stopped. All or nothing: one transaction."""
    selector = parse_selector(
        "cancel", task_id, state, tenant, queue, function, prefix, since, until, label
    )
    _echo_count(
        "cancelled", run_client(lambda: client_for(home, socket).cancel(**selector)), as_json
    )


def delete(
    task_id: TaskIdArg = None,
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state", help="succeeded, failed, cancelled or expired (default: all of them)."
        ),
    ] = None,
    tenant: SelTenant = None,
    queue: SelQueue = None,
    function: SelFunction = None,
    prefix: SelPrefix = None,
    since: SelSince = None,
    until: SelUntil = None,
    label: SelLabel = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove finished tasks from the history: one by ID, or every finished task a selector
    matches (live ones are refused: cancel them first). Their IDs may be submitted again."""
    selector = parse_selector(
        "delete", task_id, state, tenant, queue, function, prefix, since, until, label
    )
    _echo_count("deleted", run_client(lambda: client_for(home, socket).delete(**selector)), as_json)


def retry(
    task_id: TaskIdArg = None,
    tenant: SelTenant = None,
    queue: SelQueue = None,
    function: SelFunction = None,
    prefix: SelPrefix = None,
    since: SelSince = None,
    until: SelUntil = None,
    label: SelLabel = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run failed tasks (the dead-letter queue): one by ID, or every failed task a selector
    matches. Their attempt count goes on. All or nothing: one transaction."""
    selector = parse_selector(
        "retry", task_id, None, tenant, queue, function, prefix, since, until, label
    )
    _echo_count("retried", run_client(lambda: client_for(home, socket).retry(**selector)), as_json)


PauseTenant = Annotated[
    str | None,
    typer.Option(
        "--tenant", help="The tenant (with --queue: one of its queues; with task filters: theirs)."
    ),
]
PauseQueue = Annotated[str | None, typer.Option("--queue", help="A queue of --tenant.")]
PauseFunction = Annotated[
    str | None,
    typer.Option(
        "--function", help="A function, for every tenant (admins only); with task filters: theirs."
    ),
]
PauseState = Annotated[
    list[str] | None,
    typer.Option(
        "--state", help="Task filter: scheduled or queued; repeatable or comma-separated."
    ),
]


def _set_paused(
    paused: bool,
    task_id: str | None,
    tenant: str | None,
    queue: str | None,
    function: str | None,
    tasks: dict[str, Any],
    home: Path | None,
    socket: Path | None,
    as_json: bool,
) -> None:
    """A target (tenant, queue, function: later submits too), or with an ID or task filter
    the waiting tasks it matches now, one by one."""
    verb = "paused" if paused else "resumed"
    client = client_for(home, socket)
    call = client.pause if paused else client.resume
    if task_id is not None or any(tasks.values()):
        selector = parse_selector(
            "pause" if paused else "resume", task_id, tasks["state"], tenant, queue, function,
            tasks["prefix"], tasks["since"], tasks["until"], tasks["label"],
        )  # fmt: skip
        selector["task_id"] = selector.pop("id")
        _echo_count(verb, run_client(lambda: call(**selector)), as_json)
        return
    if queue is not None and tenant is None:
        tenant = "default"
    changed = run_client(lambda: call(tenant=tenant, queue=queue, function=function))
    if function is not None:
        what = f"function {function}"
    elif queue is not None:
        what = f"queue {tenant}/{queue}"
    else:
        what = f"tenant {tenant}"
    if as_json:
        typer.echo(json.dumps({"target": what, "paused": paused, "changed": bool(changed)}))
    else:
        typer.echo(f"{what} {verb}" if changed else f"{what} was already {verb}")


def pause(
    task_id: TaskIdArg = None,
    tenant: PauseTenant = None,
    queue: PauseQueue = None,
    function: PauseFunction = None,
    state: PauseState = None,
    prefix: SelPrefix = None,
    since: SelSince = None,
    until: SelUntil = None,
    label: SelLabel = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hold a tenant, a queue or a function: its queued tasks wait, and so do later ones,
    until `resume` (running ones go on). With a task ID or a task filter (--state --prefix
    --label --since --until), hold just the waiting tasks that match now, in one transaction."""
    tasks = {"state": state, "prefix": prefix, "since": since, "until": until, "label": label}
    _set_paused(True, task_id, tenant, queue, function, tasks, home, socket, as_json)


def resume(
    task_id: TaskIdArg = None,
    tenant: PauseTenant = None,
    queue: PauseQueue = None,
    function: PauseFunction = None,
    state: PauseState = None,
    prefix: SelPrefix = None,
    since: SelSince = None,
    until: SelUntil = None,
    label: SelLabel = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Release what `pause` held: a target, or (with an ID or task filter) the held tasks
    that match, which queue again behind what waits."""
    tasks = {"state": state, "prefix": prefix, "since": since, "until": until, "label": label}
    _set_paused(False, task_id, tenant, queue, function, tasks, home, socket, as_json)
