"""Commands on tasks named by ID: ``submit``, ``status``, ``wait``, ``result``, ``logs`` and
``inspect``.

``submit`` has three paths that share its options: one task (``FUNC [ARGS_JSON]``), a command
task (``--cmd -- PROG ARG...``, the function ``COMMAND_REF`` called with the argv), and many
tasks from a JSON Lines file (``--from-file``, in ``cli/bulk.py``). Every option is checked
before anything is sent, so a refused submit submits nothing.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any, Final, NoReturn

import typer

from asynctask.cli.app import (
    HomeOpt,
    JsonOpt,
    SocketOpt,
    TenantOpt,
    client_for,
    duration_opt,
    fail,
    json_arg,
    labels_opt,
    run_client,
    time_opt,
)
from asynctask.cli.views import print_task
from asynctask.client import COMMAND_REF, Client
from asynctask.errors import EXIT_TASK_NOT_SUCCEEDED
from asynctask.paths import resolve_socket

#: ``submit``'s typer settings: after ``--cmd``, the program's own arguments (``-x``, ``--y``)
#: reach ``ctx.args`` instead of being refused as unknown options of ours.
SUBMIT_CONTEXT: Final = {"allow_extra_args": True, "ignore_unknown_options": True}


# Options ``submit`` shares with ``cron add`` (which takes some of submit's options).
ArgsJsonArg = Annotated[
    str | None, typer.Argument(metavar="[ARGS_JSON]", help="Positional args as a JSON array.")
]
KwargsOpt = Annotated[str | None, typer.Option("--kwargs", help="Keyword args as a JSON object.")]
QueueOpt = Annotated[str | None, typer.Option("--queue", help="Queue name.")]
TimeoutOpt = Annotated[
    str | None, typer.Option("--timeout", help="Wall-clock limit per attempt, e.g. 30s.")
]
LabelOpt = Annotated[list[str] | None, typer.Option("--label", help="k=v label; repeatable.")]


def submit(
    ctx: typer.Context,
    func: Annotated[
        str | None,
        typer.Argument(
            metavar="FUNC",
            help="The task function, package.module:function (with --cmd: the program).",
        ),
    ] = None,
    args_json: ArgsJsonArg = None,
    kwargs_json: KwargsOpt = None,
    task_id: Annotated[
        str | None, typer.Option("--id", help="Task ID (de-duplicates per tenant).")
    ] = None,
    tenant: TenantOpt = "default",
    queue: QueueOpt = None,
    priority: Annotated[
        int | None,
        typer.Option(
            "--priority",
            min=0,
            max=9,
            help="0-9, higher runs first. Default: the function's (config, then its "
            "@asynctask.task), else 5.",
        ),
    ] = None,
    delay: Annotated[
        str | None, typer.Option("--delay", help="Run after this long, e.g. 30s, 5m.")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Run at this ISO 8601 time (with offset or Z).")
    ] = None,
    ttl: Annotated[
        str | None, typer.Option("--ttl", help="Expire if not started within this long.")
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option("--retries", min=0, max=1000, help="Retries after the first attempt."),
    ] = None,
    timeout: TimeoutOpt = None,
    label: LabelOpt = None,
    on_success: Annotated[
        str | None, typer.Option("--on-success", help="Function to submit when it succeeds.")
    ] = None,
    on_failure: Annotated[
        str | None, typer.Option("--on-failure", help="Function to submit when it fails.")
    ] = None,
    trace_id: Annotated[
        str | None,
        typer.Option("--trace-id", help="Your trace ID, stored with the task; `list --trace-id`."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the task to end; exit as `wait` does.")
    ] = False,
    memory: Annotated[
        str | None, typer.Option("--memory", help="Memory limit of each attempt, e.g. 256M.")
    ] = None,
    cpu: Annotated[
        str | None, typer.Option("--cpu", help="CPU-time limit of each attempt, e.g. 30s.")
    ] = None,
    open_files: Annotated[
        int | None, typer.Option("--open-files", help="Open files an attempt may hold.")
    ] = None,
    processes: Annotated[
        int | None, typer.Option("--processes", help="Processes and threads of an attempt.")
    ] = None,
    file_size: Annotated[
        str | None, typer.Option("--file-size", help="Largest file an attempt may write.")
    ] = None,
    no_network: Annotated[
        bool, typer.Option("--no-network", help="Run in a network namespace of its own.")
    ] = False,
    private_tmp: Annotated[
        bool, typer.Option("--private-tmp", help="Give the attempt an empty /tmp of its own.")
    ] = False,
    cmd: Annotated[
        bool,
        typer.Option(
            "--cmd",
            help="Run a program: `submit [options] --cmd -- PROG ARG...`. Exit code 0 "
            "succeeds; its output is the attempt's log.",
        ),
    ] = False,
    final_exit_code: Annotated[
        list[int] | None,
        typer.Option(
            "--final-exit-code", help="With --cmd: an exit code not worth retrying; repeatable."
        ),
    ] = None,
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from-file",
            metavar="FILE",
            help='Submit each line of a JSON Lines file (- for stdin): {"function": "m:f", '
            '"args": [...], "kwargs": {...}} plus any submit option by its Client.submit name '
            "(id, tenant, queue, priority, delay, run_at, ttl, retries, timeout, labels, ...). "
            "Every line is checked first: one bad line refuses the file. Prints the IDs; the "
            "options given here apply to every line that does not set its own.",
        ),
    ] = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a task; prints its ID (or the task, with --json).

    The function's @asynctask.task(...) options (retries, timeout, queue, priority, ...) apply
    as when it is submitted from Python; options given here win over them, and so do the
    config file's [functions."..."] keys.

    With --from-file, submit many in batches (a progress bar shows on stderr when it is a
    terminal) and print their IDs, one a line (--json: an array); with --wait, wait for all
    and exit as `wait ID...` does."""
    _check_paths(func, args_json, kwargs_json, task_id, delay, at, cmd, from_file)
    if cmd:
        func, args, kwargs = _command_call(func, args_json, kwargs_json, ctx.args, final_exit_code)
    else:
        args, kwargs = _function_call(args_json, kwargs_json, ctx.args, final_exit_code)
    options = _submit_options(
        task_id=task_id, queue=queue, priority=priority, delay=delay, at=at, ttl=ttl,
        retries=retries, timeout=timeout, label=label, on_success=on_success,
        on_failure=on_failure, trace_id=trace_id, memory=memory, cpu=cpu, open_files=open_files,
        processes=processes, file_size=file_size, no_network=no_network, private_tmp=private_tmp,
    )  # fmt: skip
    client = client_for(home, socket, tenant)
    if from_file is not None:
        _submit_from_file(ctx, client, tenant, from_file, options, wait=wait, as_json=as_json)
    else:
        _submit_one(client, func, args, kwargs, options, tenant, wait=wait, as_json=as_json)


def _check_paths(
    func: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    task_id: str | None,
    delay: str | None,
    at: str | None,
    cmd: bool,
    from_file: str | None,
) -> None:
    """Refuse what mixes ``submit``'s paths: a task is given by FUNC or by the lines of
    ``--from-file``, never both, and runs after ``--delay`` or ``--at``, never both."""
    if delay is not None and at is not None:
        fail("give --delay or --at, not both")
    if from_file is not None:
        if func is not None or args_json is not None or kwargs_json is not None or cmd:
            fail("--from-file takes no FUNC, ARGS_JSON, --kwargs or --cmd: each line has its own")
        if task_id is not None:
            fail("--id does not apply to --from-file (give each line its own id)")
    elif func is None:
        fail("submit needs FUNC, package.module:function (or --from-file FILE)")


def _command_call(
    program: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    extra: list[str],
    final_exit_code: list[int] | None,
) -> tuple[str, list[Any], None]:
    """``submit --cmd -- PROG ARG...``: typer has bound PROG to FUNC and the first ARG to
    ARGS_JSON (the rest are ``extra``), so they are put back together as the argv that
    ``COMMAND_REF`` is called with, followed by the exit codes not worth retrying."""
    argv = [program, *([args_json] if args_json is not None else []), *extra]
    if kwargs_json is not None:
        fail("--kwargs does not apply to --cmd (the program takes ARG...)")
    return COMMAND_REF, [argv, final_exit_code] if final_exit_code else [argv], None


def _function_call(
    args_json: str | None,
    kwargs_json: str | None,
    extra: list[str],
    final_exit_code: list[int] | None,
) -> tuple[list[Any], dict[str, Any] | None]:
    """The positional and keyword arguments of a function task (also checked, empty, for
    ``--from-file``, whose lines bring their own)."""
    if extra:
        fail(f"unexpected arguments: {' '.join(extra)} (a program needs --cmd)")
    if final_exit_code:
        fail("--final-exit-code needs --cmd")
    args = json_arg(args_json, "ARGS_JSON")
    if args is None:
        args = []
    if not isinstance(args, list):
        fail("ARGS_JSON must be a JSON array of positional arguments (use --kwargs for a map)")
    kwargs = json_arg(kwargs_json, "--kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        fail("--kwargs must be a JSON object")
    return args, kwargs


def _submit_options(
    *,
    task_id: str | None,
    queue: str | None,
    priority: int | None,
    delay: str | None,
    at: str | None,
    ttl: str | None,
    retries: int | None,
    timeout: str | None,
    label: list[str] | None,
    on_success: str | None,
    on_failure: str | None,
    trace_id: str | None,
    memory: str | None,
    cpu: str | None,
    open_files: int | None,
    processes: int | None,
    file_size: str | None,
    no_network: bool,
    private_tmp: bool,
) -> dict[str, Any]:
    """The command line's options as ``Client.submit`` names them, durations and times
    parsed (a bad one fails here, before anything is sent); None means "not given", so the
    function's and the daemon's defaults apply."""
    return {
        "task_id": task_id,
        "queue": queue,
        "priority": priority,
        "delay": duration_opt(delay, "--delay"),
        "run_at": time_opt(at, "--at"),
        "ttl": duration_opt(ttl, "--ttl"),
        "retries": retries,
        "timeout": duration_opt(timeout, "--timeout"),
        "labels": labels_opt(label) or None,
        "on_success": on_success,
        "on_failure": on_failure,
        "trace_id": trace_id,
        "memory": memory,
        "cpu": cpu,
        "open_files": open_files,
        "processes": processes,
        "file_size": file_size,
        "network": False if no_network else None,
        "private_tmp": True if private_tmp else None,
    }


def _submit_one(
    client: Client,
    func: str | None,
    args: list[Any],
    kwargs: dict[str, Any] | None,
    options: dict[str, Any],
    tenant: str,
    *,
    wait: bool,
    as_json: bool,
) -> None:
    """Submit one task and print its ID (the task, with --json); with ``wait``, print the
    finished task instead and exit as ``wait`` does."""
    status = run_client(lambda: client.submit_status(func, *args, kwargs=kwargs, **options))
    if wait:
        _wait_and_exit(client, status.id, tenant, None, as_json)
    if as_json:
        print_task(status, True)
    else:
        typer.echo(status.id)


def _submit_from_file(
    ctx: typer.Context,
    client: Client,
    tenant: str,
    source: str,
    options: dict[str, Any],
    *,
    wait: bool,
    as_json: bool,
) -> None:
    """``submit --from-file``: the options given are defaults for every line (``cli/bulk.py``);
    an option not given leaves each line's function its own default."""
    from asynctask.cli.bulk import submit_file

    run_client(lambda: submit_file(client, tenant, source, options, wait=wait, as_json=as_json))


def status(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    tenant: TenantOpt = "default",
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one task."""
    print_task(run_client(lambda: client_for(home, socket).status(task_id, tenant)), as_json)


def _wait_and_exit(
    client: Client, task_id: str, tenant: str, timeout: float | None, as_json: bool
) -> NoReturn:
    final = run_client(lambda: client.wait(task_id, tenant, timeout))
    print_task(final, as_json)
    raise typer.Exit(0 if final.succeeded else EXIT_TASK_NOT_SUCCEEDED)


def wait(
    task_ids: Annotated[
        list[str], typer.Argument(metavar="ID", help="Task IDs; - reads more from stdin.")
    ],
    tenant: TenantOpt = "default",
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Give up after this long (exit 4).")
    ] = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Block until the task ends; exit 0 only if it succeeded.

    With several IDs (or -), wait for all of them at once and print a line per task, ID and
    state (--json: an array of tasks; one still going at --timeout is shown as it is); exit 0
    if all succeeded, 1 if any ended otherwise, else 4 if the timeout ran out. A progress bar
    shows on stderr when it is a terminal."""
    limit = duration_opt(timeout, "--timeout")
    if len(task_ids) == 1 and task_ids[0] != "-":
        _wait_and_exit(client_for(home, socket), task_ids[0], tenant, limit, as_json)
    from asynctask.cli import bulk

    ids = run_client(lambda: bulk.read_ids(task_ids, sys.stdin))
    tasks = [(tenant, task_id) for task_id in ids]
    where = resolve_socket(socket, home)
    progress = bulk.progress_enabled(as_json)
    statuses = run_client(lambda: bulk.wait_all(where, tasks, limit, progress))
    raise typer.Exit(bulk.echo_statuses(statuses, as_json))


def result(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    tenant: TenantOpt = "default",
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Give up after this long (exit 4).")
    ] = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait for the task and print its result as JSON; exit 1 unless it succeeded.

    A tuple prints as an array; a datetime, date, time, UUID, Decimal, set or dataclass as a
    tagged object such as {"$datetime": "2026-12-07T10:00:00+01:00"} (docs/worker.md).
    """
    limit = duration_opt(timeout, "--timeout")
    final = run_client(lambda: client_for(home, socket).wait(task_id, tenant, limit))
    if not final.succeeded:
        error = final.error or {}
        detail = f": {error.get('type')}: {error.get('message')}" if error else ""
        typer.echo(f"asynctask: task {final.id} ended {final.state.value}{detail}", err=True)
        raise typer.Exit(EXIT_TASK_NOT_SUCCEEDED)
    value = final.to_json()["result"]
    typer.echo(json.dumps({"id": final.id, "result": value}) if as_json else json.dumps(value))


def logs(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    tenant: TenantOpt = "default",
    attempt: Annotated[
        int | None, typer.Option("--attempt", min=1, help="Only this attempt (1 is the first).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output until the task ends.")
    ] = False,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What each attempt wrote to stdout and stderr (print, logging, a command's output)."""
    client = client_for(home, socket)
    offsets: dict[int, int] = {}
    texts: dict[int, list[str]] = {}
    shown: int | None = None
    while True:
        reply = run_client(lambda: client.logs(task_id, tenant, offsets))
        for entry in reply["attempts"]:
            number = int(entry["attempt"])
            offsets[number] = int(entry["offset"])
            if attempt is not None and number != attempt:
                continue
            text = bytes(entry["data"]).decode("utf-8", "replace")
            if not text:
                continue
            if as_json:
                texts.setdefault(number, []).append(text)
                continue
            if shown != number and (number > 1 or (attempt is None and len(offsets) > 1)):
                typer.echo(f"--- attempt {number} ---")
            shown = number
            typer.echo(text, nl=False)
        got_data = any(entry["data"] for entry in reply["attempts"])
        if reply["done"] or (not follow and not got_data):
            break  # a reply carries at most a few MiB: without --follow, read until dry
        if follow and not got_data:
            time.sleep(0.2)  # polling the daemon; a follow is a person watching
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "id": task_id,
                    "state": reply["state"],
                    "attempts": [
                        {"attempt": n, "text": "".join(parts)} for n, parts in sorted(texts.items())
                    ],
                }
            )
        )
    elif shown is not None and follow:
        typer.echo("")


def inspect(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    tenant: TenantOpt = "default",
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A running task's worker: pid, memory, CPU time, open files and its Python stack."""
    info = run_client(lambda: client_for(home, socket).inspect(task_id, tenant))
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(f"{'pid':<12} {info['pid']}")
    typer.echo(f"{'attempt':<12} {info['attempt']}")
    typer.echo(f"{'rss':<12} {info['rss'] / 1048576:.1f} MiB")
    typer.echo(f"{'cpu_seconds':<12} {info['cpu_seconds']}")
    typer.echo(f"{'threads':<12} {info['threads']}")
    typer.echo(f"{'open_files':<12} {info['open_files']}")
    for line in info["files"]:
        typer.echo(f"{'':<12} {line}")
    typer.echo(f"{'children':<12} {' '.join(map(str, info['children'])) or '-'}")
    typer.echo("stack:")
    typer.echo(info["stack"].rstrip("\n"))
