"""``asynctask cron add/list/remove``: periodic submission on a cron expression.

``cron add NAME EXPR FUNC [ARGS_JSON]`` takes some of ``submit``'s options (docs/contract.md,
"Interfaces"); the daemon refuses an expression that never fires (exit 2), so nothing stored
can stop it starting.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from asynctask.cli.app import (
    HomeOpt,
    JsonOpt,
    SocketOpt,
    client_for,
    duration_opt,
    fail,
    json_arg,
    labels_opt,
    run_client,
)
from asynctask.cli.tasks import ArgsJsonArg, KwargsOpt, LabelOpt, QueueOpt, TimeoutOpt
from asynctask.model import format_time

cron_app = typer.Typer(
    help="Periodic tasks: each slot of a cron expression submits a task.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@cron_app.command("add")
def cron_add(
    name: Annotated[str, typer.Argument(help="The entry's name (unique per tenant).")],
    expr: Annotated[
        str, typer.Argument(help="5 fields (m h dom mon dow), or 6 with a leading seconds field.")
    ],
    func: Annotated[str, typer.Argument(help="package.module:function")],
    args_json: ArgsJsonArg = None,
    kwargs_json: KwargsOpt = None,
    tz: Annotated[str | None, typer.Option("--tz", help="IANA time zone (default UTC).")] = None,
    catch_up: Annotated[
        str | None,
        typer.Option("--catch-up", help="Slots missed while stopped: one (default) or skip."),
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    queue: QueueOpt = None,
    priority: Annotated[int | None, typer.Option("--priority", min=0, max=9)] = None,
    retries: Annotated[int | None, typer.Option("--retries", min=0, max=1000)] = None,
    timeout: TimeoutOpt = None,
    label: LabelOpt = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add (or replace) a periodic task. Each slot's task has the ID cron:NAME:<slot time>."""
    args = json_arg(args_json, "ARGS_JSON") or []
    if not isinstance(args, list):
        fail("ARGS_JSON must be a JSON array of positional arguments (use --kwargs for a map)")
    kwargs = json_arg(kwargs_json, "--kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        fail("--kwargs must be a JSON object")
    options: dict[str, Any] = {
        "tenant": tenant,
        "queue": queue,
        "priority": priority,
        "retries": retries,
        "timeout": duration_opt(timeout, "--timeout"),
        "labels": labels_opt(label) or None,
    }
    entry = run_client(
        lambda: client_for(home, socket).cron_add(
            name, expr, func, *args, kwargs=kwargs, tz=tz, catch_up=catch_up, **options
        )
    )
    if as_json:
        typer.echo(json.dumps(entry))
    else:
        typer.echo(f"cron {entry['name']}: {entry['expr']} ({entry['tz']}), next at "
                   f"{format_time(entry['next_at'])}")  # fmt: skip


@cron_app.command("list")
def cron_list(home: HomeOpt = None, socket: SocketOpt = None, as_json: JsonOpt = False) -> None:
    """Every cron entry you may see, with its next slot."""
    entries = run_client(lambda: client_for(home, socket).cron_list())
    if as_json:
        typer.echo(json.dumps(entries))
        return
    if not entries:
        typer.echo("no cron entries")
        return
    for e in entries:
        when = (
            f"next {format_time(e['next_at'])}"
            if "error" not in e
            else (f"not scheduled: {e['error']} (stored unusable; `cron remove` deletes it)")
        )
        typer.echo(f"{e['tenant']}/{e['name']}  {e['expr']} ({e['tz']})  {e['function']}  "
                   f"{when}")  # fmt: skip


@cron_app.command("remove")
def cron_remove(
    name: Annotated[str, typer.Argument()],
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
) -> None:
    """Remove a cron entry (tasks it already submitted stay)."""
    if not run_client(lambda: client_for(home, socket).cron_remove(name, tenant=tenant)):
        fail(f"no cron entry {name!r}")
    typer.echo(f"removed cron {name}")
