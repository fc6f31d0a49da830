"""The ``asynctask`` command line.

Every command that prints data takes ``--json``; exit codes and error handling are described
in ``cli/app.py``. Only ``asynctask daemon`` imports the daemon; everything else is a client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from asynctask.cli.app import (
    HomeOpt,
    JsonOpt,
    SocketOpt,
    TenantOpt,
    app,
    client_for,
    duration_opt,
    fail,
    json_arg,
    labels_opt,
    os_error,
    printable,
    run_client,
    time_opt,
)
from asynctask.client import COMMAND_REF, Client, TaskStatus
from asynctask.errors import (
    EXIT_TASK_NOT_SUCCEEDED,
    EXIT_USAGE,
    EXIT_WAIT_TIMEOUT,
    AsynctaskError,
    DaemonUnavailable,
    UsageError,
)
from asynctask.model import (
    DEFAULT_TENANT,
    PRIORITY_DEFAULT,
    format_time,
    parse_duration,
    parse_time,
)
from asynctask.paths import DATABASE_NAME, LOG_DIR, PID_NAME, resolve_home, resolve_socket


def print_task(status: TaskStatus, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(status.to_json()))
        return
    data = status.to_json()
    hidden = ("error", "errors", "result", "trace")
    lines = [f"{key:<12} {value}" for key, value in data.items() if key not in hidden]
    if status.succeeded:
        lines.append(f"{'result':<12} {json.dumps(data['result'])}")
    if status.error:
        lines.append(f"{'error':<12} {_error_text(status.error)}")
        trace = status.error.get("traceback")
        if isinstance(trace, str) and trace.strip():
            tail = trace.rstrip("\n").splitlines()[-TRACEBACK_LINES:]
            lines.append(f"{'traceback':<12} (its last {len(tail)} lines; status --json has all)")
            lines += [f"  {printable(line)}" for line in tail]
    for entry in data["errors"]:
        lines.append(
            f"{'attempt ' + str(entry.get('attempt')):<12} {entry.get('kind')} "
            f"{_error_text(entry)} (ended {entry.get('finished_at')})"
        )
    lines += [_stage_line(entry) for entry in status.trace]
    typer.echo("\n".join(lines))


#: Lines of a failed task's traceback ``status`` shows.
TRACEBACK_LINES = 8


def _error_text(error: dict[str, Any]) -> str:
    return printable(f"{error.get('type')}: {error.get('message')}")


def _stage_line(entry: dict[str, Any]) -> str:
    """One attempt's stages as offsets from the submit, then its queue wait and run time."""
    submitted = entry.get("submitted")

    def offset(stage: str) -> str:
        value = entry.get(stage)
        if value is None or submitted is None:
            return f"{stage} ?"
        return f"{stage} +{value - submitted:.3f}s"

    stages = "  ".join(offset(s) for s in ("eligible", "dispatched", "started", "finished"))
    return (
        f"{'trace ' + str(entry.get('attempt')):<12} {stages}  "
        f"(queue wait {_ms(entry.get('queue_wait'))}, run {_ms(entry.get('run_time'))})"
    )


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.1f} ms"


def daemon(
    home: HomeOpt = None,
    socket: SocketOpt = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config file (default: <home>/asynctask.toml)."),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Start in the background; return once it serves.")
    ] = False,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="text (a sentence, then k=v fields) or json (one object a line); "
            "default: [daemon] log_format.",
        ),
    ] = None,
) -> None:
    """Run the daemon in the foreground (or --detach it); the socket exists once it serves.

    It exits 0 after a stop, and 75 after a storage I/O error (a failed write or fsync): start
    it again, and it re-opens the database from what is on disk."""
    from asynctask.config import default_config_path, load_config

    home_dir = resolve_home(home)
    socket_path = resolve_socket(socket, home)
    config_path = config if config is not None else default_config_path(home_dir)
    try:
        cfg = load_config(config_path)
    except AsynctaskError as exc:
        fail(exc.message)
    if log_format not in (None, "text", "json"):
        fail(f"--log-format must be text or json, not {log_format!r}")
    if detach:
        _detach(home_dir, socket_path, config_path, log_level, log_format, bool(cfg.auth.users))
        return
    from asynctask.daemon import run_daemon
    from asynctask.logs import setup_logging

    setup_logging(log_level or cfg.daemon.log_level, log_format or cfg.daemon.log_format)
    try:
        run_daemon(cfg, home_dir, socket_path)
    except AsynctaskError as exc:
        fail(exc.message)
    except OSError as exc:  # a read-only or unwritable home: one line, not a traceback
        fail(os_error(exc, f"the home {home_dir}"))


def _detach(
    home: Path,
    socket_path: Path,
    config: Path | None,
    log_level: str | None,
    log_format: str | None,
    shared: bool,
) -> None:
    from asynctask.home import open_private, prepare_home

    try:  # before the log is written in it: the daemon would refuse the home anyway
        prepare_home(home, shared=shared)  # the daemon logs what it tightened
    except AsynctaskError as exc:
        fail(exc.message)
    except OSError as exc:
        fail(f"cannot prepare the home: {os_error(exc, str(home))}")
    try:
        log_fd = open_private(home / LOG_DIR / "daemon.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except AsynctaskError as exc:
        fail(exc.message)
    except OSError as exc:
        fail(f"cannot open the daemon log: {os_error(exc, str(home / LOG_DIR))}")
    log_path = home / LOG_DIR / "daemon.log"
    argv = [sys.executable, "-m", "asynctask", "daemon", "--home", str(home)]
    argv += ["--socket", str(socket_path)]
    if config is not None:
        argv += ["--config", str(config)]
    if log_level:
        argv += ["--log-level", log_level]
    if log_format:
        argv += ["--log-format", log_format]
    with open(log_fd, "ab") as log_file:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    client = Client(socket_path, connect_timeout=0.5)
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            fail("the daemon exited at start-up:\n" + "\n".join(tail))
        try:
            info = client.ping()
        except DaemonUnavailable:
            time.sleep(0.05)
            continue
        if info.get("pid") == child.pid:
            typer.echo(f"daemon started: pid {child.pid}, socket {socket_path}, log {log_path}")
            return
        fail(f"another daemon (pid {info.get('pid')}) already serves on {socket_path}")
    fail(f"the daemon did not answer within 30s; see {log_path}")


def ping(home: HomeOpt = None, socket: SocketOpt = None, as_json: JsonOpt = False) -> None:
    """Exit 0 when the daemon answers and can store (for scripts and readiness checks); 2 when
    it answers but its storage is failing (disk full, I/O error: it serves reads, refuses
    writes with `storage`, and recovers by itself once the disk does); 3 when none answers,
    saying so when the home's daemon is still there (starting, or stopping after `stop`)."""
    try:
        info = client_for(home, socket).ping()
    except DaemonUnavailable as exc:
        pid = _home_daemon_pid(home)
        if pid is not None:
            fail(
                f"the daemon (pid {pid}) is not answering: it is stopping or starting",
                exc.exit_code,
            )
        fail(exc.message, exc.exit_code)
    except AsynctaskError as exc:
        fail(exc.message, exc.exit_code)
    info.pop("rid", None)
    info.pop("ok", None)
    storage = info.get("storage") or {"ok": True}  # an older daemon does not say
    if as_json:
        typer.echo(json.dumps(info))
    else:
        stopping = ", stopping" if info.get("stopping") else ""
        typer.echo(
            f"pong: pid {info['pid']}, version {info['version']}, up {info['uptime']:.0f}s"
            f"{stopping}"
        )
    if not storage.get("ok", True):
        for_ = storage.get("failing_for")
        since = f" for {for_:.0f}s" if isinstance(for_, int | float) else ""
        fail(f"storage failing{since}: {printable(str(storage.get('error')))}", EXIT_USAGE)


def _home_daemon_pid(home: Path | None) -> int | None:
    """The pid in the home's pid file, if that process is alive (it is removed last)."""
    try:
        pid = int((resolve_home(home) / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
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


def submit(
    ctx: typer.Context,
    func: Annotated[
        str | None,
        typer.Argument(
            metavar="FUNC",
            help="The task function, package.module:function (with --cmd: the program).",
        ),
    ] = None,
    args_json: Annotated[
        str | None, typer.Argument(metavar="[ARGS_JSON]", help="Positional args as a JSON array.")
    ] = None,
    kwargs_json: Annotated[
        str | None, typer.Option("--kwargs", help="Keyword args as a JSON object.")
    ] = None,
    task_id: Annotated[
        str | None, typer.Option("--id", help="Task ID (de-duplicates per tenant).")
    ] = None,
    tenant: TenantOpt = "default",
    queue: Annotated[str | None, typer.Option("--queue", help="Queue name.")] = None,
    priority: Annotated[
        int, typer.Option("--priority", min=0, max=9, help="0-9, higher runs first.")
    ] = PRIORITY_DEFAULT,
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
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Wall-clock limit per attempt, e.g. 30s.")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="k=v label; repeatable.")
    ] = None,
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

    With --from-file, submit many in batches (a progress bar shows on stderr when it is a
    terminal) and print their IDs, one a line (--json: an array); with --wait, wait for all
    and exit as `wait ID...` does."""
    if delay is not None and at is not None:
        fail("give --delay or --at, not both")
    if from_file is not None:
        if func is not None or args_json is not None or kwargs_json is not None or cmd:
            fail("--from-file takes no FUNC, ARGS_JSON, --kwargs or --cmd: each line has its own")
        if task_id is not None:
            fail("--id does not apply to --from-file (give each line its own id)")
    elif func is None:
        fail("submit needs FUNC, package.module:function (or --from-file FILE)")
    if cmd:
        argv = [func, *([args_json] if args_json is not None else []), *ctx.args]
        if kwargs_json is not None:
            fail("--kwargs does not apply to --cmd (the program takes ARG...)")
        args_json, func = None, COMMAND_REF
        prefix: list[Any] = [argv, final_exit_code] if final_exit_code else [argv]
    else:
        if ctx.args:
            fail(f"unexpected arguments: {' '.join(ctx.args)} (a program needs --cmd)")
        if final_exit_code:
            fail("--final-exit-code needs --cmd")
        prefix = []
    args = json_arg(args_json, "ARGS_JSON")
    if args is None:
        args = []
    if not isinstance(args, list):
        fail("ARGS_JSON must be a JSON array of positional arguments (use --kwargs for a map)")
    args = prefix + args
    kwargs = json_arg(kwargs_json, "--kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        fail("--kwargs must be a JSON object")
    options: dict[str, Any] = {
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
    client = client_for(home, socket, tenant)
    if from_file is not None:
        from asynctask.cli.bulk import submit_file

        source = ctx.get_parameter_source("priority")
        if source is None or source.name != "COMMANDLINE":
            options["priority"] = None  # a line's function may have a configured default
        run_client(lambda: submit_file(client, tenant, from_file, options, wait=wait,
                                       as_json=as_json))  # fmt: skip
        return
    status = run_client(lambda: client.submit_status(func, *args, kwargs=kwargs, **options))
    if wait:
        _wait_and_exit(client, status.id, tenant, None, as_json)
    if as_json:
        print_task(status, True)
    else:
        typer.echo(status.id)


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
    """Wait for the task and print its result as JSON; exit 1 unless it succeeded."""
    limit = duration_opt(timeout, "--timeout")
    final = run_client(lambda: client_for(home, socket).wait(task_id, tenant, limit))
    if not final.succeeded:
        error = final.error or {}
        detail = f": {error.get('type')}: {error.get('message')}" if error else ""
        typer.echo(f"asynctask: task {final.id} ended {final.state.value}{detail}", err=True)
        raise typer.Exit(EXIT_TASK_NOT_SUCCEEDED)
    value = final.to_json()["result"]
    typer.echo(json.dumps({"id": final.id, "result": value}) if as_json else json.dumps(value))


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
    """The selector fields of ``cancel`` and ``retry``; an ID or at least one flag is needed."""
    states = [s.strip() for item in state or [] for s in item.split(",") if s.strip()]
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


def list_tasks(
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Task state; repeatable or comma-separated.")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (default: all you may see).")
    ] = None,
    queue: Annotated[str | None, typer.Option("--queue")] = None,
    function: Annotated[str | None, typer.Option("--function")] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Task ID prefix.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Created at or after (ISO 8601 or a duration ago)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Created before (ISO 8601 or a duration ago).")
    ] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="k=v; repeatable.")] = None,
    trace_id: Annotated[
        str | None, typer.Option("--trace-id", help="Submitted with this trace ID.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", help="Start after the page that printed this cursor."),
    ] = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """History query, newest first, a page of --limit tasks at a time.

    When more tasks match, "next page: --cursor C" goes to stderr (stdout stays the table, or
    the JSON array with --json); run the same command with --cursor C for the next page."""
    states = [s.strip() for item in state or [] for s in item.split(",") if s.strip()]
    filters: dict[str, Any] = {
        "state": states,
        "tenant": tenant,
        "queue": queue,
        "function": function,
        "prefix": prefix,
        "since": moment_opt(since, "--since"),
        "until": moment_opt(until, "--until"),
        "labels": labels_opt(label),
        "trace_id": trace_id,
        "limit": limit,
    }
    tasks, after = run_client(lambda: client_for(home, socket).list_page(cursor=cursor, **filters))
    if as_json:
        typer.echo(json.dumps([t.to_json() for t in tasks]))
    elif not tasks:
        typer.echo("no tasks")
    else:
        _print_task_table(tasks)
    if after is not None:
        typer.echo(f"next page: --cursor {after}", err=True)


def _print_task_table(tasks: list[TaskStatus]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    errors = any(t.error for t in tasks)  # `list --state failed`: why each one failed
    for column in ("ID", "STATE", "TENANT", "FUNCTION", "ATTEMPTS", "CREATED"):
        table.add_column(column)
    if errors:
        table.add_column("ERROR", max_width=60, no_wrap=True, overflow="ellipsis")
    for t in tasks:
        row = [t.id, t.state.value, t.tenant, t.function, str(t.attempts)]
        row.append(format_time(t.created_at) or "")
        if errors:
            row.append(_error_text(t.error) if t.error else "")
        table.add_row(*row)
    Console(width=200).print(table)


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


def stop(
    drain: Annotated[
        str | None,
        typer.Option(
            "--drain", help="Let running attempts finish for up to this long (default: config)."
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Return once the daemon has exited.")
    ] = True,
    home: HomeOpt = None,
    socket: SocketOpt = None,
) -> None:
    """Stop the daemon: no new work; running attempts finish within --drain, the rest are
    queued again for the next start (never lost). Returns once the daemon's process has
    exited (so `stop && asynctask daemon --detach` works); exit 4 if it has not within
    --drain plus 30s."""
    client = client_for(home, socket)
    seconds = duration_opt(drain, "--drain")
    pid = run_client(client.ping).get("pid")  # an older daemon's stop reply has no pid
    reply = run_client(lambda: client.stop(seconds))
    pid = reply.get("pid", pid)
    typer.echo(f"stopping (draining for up to {reply['drain']:g}s)")
    if not wait:
        return
    limit = float(reply["drain"]) + STOP_MARGIN
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not (_alive(pid) if isinstance(pid, int) else _answers(home, socket)):
            typer.echo("stopped")
            return
        time.sleep(0.05)  # polling a process that is draining; nothing to wake us
    fail(f"the daemon (pid {pid}) did not exit within {limit:g}s", EXIT_WAIT_TIMEOUT)


#: Seconds ``stop`` waits beyond ``--drain`` for the daemon to exit (store flush, workers).
STOP_MARGIN = 30.0


def _answers(home: Path | None, socket: Path | None) -> bool:
    try:
        client_for(home, socket).ping()
    except DaemonUnavailable:
        return False
    return True


def reload(home: HomeOpt = None, socket: SocketOpt = None, as_json: JsonOpt = False) -> None:
    """Replace the daemon's workers so edited task code is picked up, and re-read the config
    file (admins only; SIGHUP does the same). Idle workers go now, busy ones once their
    running attempts finish on the old code. Live keys (tenant, queue and function limits,
    scheduler affinity/reserve/caps, retry.retries, workers.timeout, daemon.log_level) take
    effect; other changed keys are listed as needing a restart and keep their old value. A
    config file with an error changes nothing (exit 2); the daemon keeps running."""
    reply = run_client(lambda: client_for(home, socket).reload())
    error = reply.get("error")
    if as_json:
        typer.echo(json.dumps(reply))
    else:
        typer.echo(f"replacing {reply['workers']} worker(s)")
        if "config" in reply:
            where = printable(str(reply["config"]))
            for what, keys in (("applied", "applied"), ("needs a restart", "restart")):
                if reply[keys]:
                    typer.echo(f"config {where}: {what}: {', '.join(reply[keys])}")
            if not error and not reply["applied"] and not reply["restart"]:
                typer.echo(f"config {where}: no change")
    if error:
        fail(f"config not applied (the daemon keeps its current config): {printable(error)}")


def doctor(
    home: HomeOpt = None,
    as_json: JsonOpt = False,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="quick_check instead of integrity_check (large databases)."),
    ] = False,
) -> None:
    """Check the stored state; works whether or not the daemon runs (it reads the database
    read-only). Reports the rows set aside at start-up because they could not be used (table,
    key, error, when) and SQLite's integrity check. Exit 0 when healthy, 5 when something is
    found."""
    from asynctask.cli.doctor import EXIT_FOUND, render
    from asynctask.store.health import examine

    health = examine(resolve_home(home) / DATABASE_NAME, quick=quick)
    typer.echo(render(health, as_json))
    if not health.healthy:
        raise typer.Exit(EXIT_FOUND)


def stats(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant (default: all you may see).")
    ] = None,
    minutes: Annotated[
        int, typer.Option("--minutes", min=1, max=60, help="Sum the counts of the last N minutes.")
    ] = 60,
    queue: Annotated[
        str | None, typer.Option("--queue", help="Only the queues of this name (their detail).")
    ] = None,
    top: Annotated[
        int | None,
        typer.Option(
            "--top",
            min=1,
            max=1000,
            help="Rows per section, the busiest first (default 50); the rest are summed.",
        ),
    ] = None,
    home: HomeOpt = None,
    socket: SocketOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per tenant, queue and function: submitted, completed, failed, retried, expired and
    refused per minute (the last hour), backlog and running, queue-wait and run-time p50/p99
    (the last 5 minutes); the worker pool; the last failures. Each section shows its --top
    rows by backlog plus running, then activity; the rest are one "N more" line (`more` in
    --json). --json has the per-minute series (oldest minute first)."""
    reply = run_client(lambda: client_for(home, socket).stats(tenant=tenant, queue=queue, top=top))
    reply.pop("rid", None)
    reply.pop("ok", None)
    if as_json:
        typer.echo(json.dumps(reply))
        return
    from rich.console import Console

    from asynctask.cli.statsview import render_stats

    render_stats(reply, minutes, Console(width=200))


def metrics(home: HomeOpt = None, socket: SocketOpt = None, as_json: JsonOpt = False) -> None:
    """Every metric in the Prometheus text exposition format (admins only); the same text the
    optional HTTP listener serves at /metrics (`[metrics] http` in the config). Bounded
    whatever the number of queues: each tenant's first 100 (tenant, queue, function) series
    (500 in all) have their own labels, the rest are summed in {tenant=..., overflow="true"};
    gauges cover the busiest 200 queues and functions (asynctask_readout_hidden_rows counts
    the rest)."""
    text = run_client(lambda: client_for(home, socket).metrics())
    if as_json:
        typer.echo(json.dumps({"content_type": "text/plain; version=0.0.4", "text": text}))
    else:
        typer.echo(text, nl=False)


def queues(home: HomeOpt = None, socket: SocketOpt = None, as_json: JsonOpt = False) -> None:
    """Tenants (refused submits, worker faults, shard confinement), queues (paused, backlog,
    running, limits, rate tokens) and functions (AIMD limit); at most 10,000 rows a section
    (`more` in --json counts the rest)."""
    report = run_client(lambda: client_for(home, socket).queues())
    if as_json:
        typer.echo(json.dumps(report))
        return
    from rich.console import Console
    from rich.table import Table

    def show(value: Any) -> str:
        return "-" if value is None else str(value)

    console = Console(width=200)
    if report["tenants"]:
        tenants = Table(box=None, pad_edge=False, title="tenants", title_justify="left")
        for column in ("TENANT", "PAUSED", "BACKLOG", "RUNNING", "WEIGHT", "REFUSED", "FAULTS",
                       "CONFINED TO"):  # fmt: skip
            tenants.add_column(column)
        for t in report["tenants"]:
            shards = t["shards"]
            tenants.add_row(
                t["tenant"], "yes" if t["paused"] else "no", str(t["backlog"]), str(t["running"]),
                str(t["weight"]), str(t["refused"]), str(t["faults"]),
                "-" if shards is None else f"shards {','.join(map(str, shards))} "
                f"({t['confinement']})",
            )  # fmt: skip
        console.print(tenants)
    table = Table(box=None, pad_edge=False, title="queues", title_justify="left")
    columns = ("TENANT", "QUEUE", "PAUSED", "BACKLOG", "RUNNING", "LIMIT", "RATE", "TOKENS", "HELD")
    for column in columns:
        table.add_column(column)
    for q in report["queues"]:
        table.add_row(
            q["tenant"], q["queue"], "yes" if q["paused"] else "no", str(q["backlog"]),
            str(q["running"]), show(q["concurrency"]), show(q["rate"]), show(q["tokens"]),
            show(q["held_by"]),
        )  # fmt: skip
    console.print(table)
    if report["functions"]:
        functions = Table(box=None, pad_edge=False, title="functions", title_justify="left")
        for column in ("FUNCTION", "PAUSED", "QUEUED", "RUNNING", "LIMIT", "AIMD", "RATE"):
            functions.add_column(column)
        for f in report["functions"]:
            functions.add_row(
                f["function"], "yes" if f["paused"] else "no", str(f["queued"]),
                str(f["running"]), show(f["concurrency"]), show(f["aimd_limit"]), show(f["rate"]),
            )  # fmt: skip
        console.print(functions)
    for section, hidden in (report.get("more") or {}).items():
        console.print(f"{hidden} more {section} not shown (`stats --queue NAME` shows one)")


def top(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Show only this tenant at first (`t` cycles).")
    ] = None,
    interval: Annotated[
        str, typer.Option("--interval", help="Refresh period, a duration (500ms, 2s).")
    ] = "1s",
    once: Annotated[
        bool, typer.Option("--once", help="Print one frame and exit (no terminal needed).")
    ] = False,
    home: HomeOpt = None,
    socket: SocketOpt = None,
) -> None:
    """The live view: per tenant, queue and function the backlog, running, submitted /
    completed / failed per minute, queue wait p50/p99 and limits; the worker pool; the last
    failures. Keys: up/down or j/k pick a queue, p pauses it, r resumes, space toggles,
    t cycles the tenant filter, q quits. Needs a terminal unless --once."""
    from asynctask.tui import run_top

    seconds = duration_opt(interval, "--interval")
    client = client_for(home, socket)
    run_client(
        lambda: run_top(
            client, tenant=tenant, interval=seconds or 0.0, once=once,
            source=str(client.socket_path),
        )
    )  # fmt: skip


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
    args_json: Annotated[
        str | None, typer.Argument(metavar="[ARGS_JSON]", help="Positional args as a JSON array.")
    ] = None,
    kwargs_json: Annotated[
        str | None, typer.Option("--kwargs", help="Keyword args as a JSON object.")
    ] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="IANA time zone (default UTC).")] = None,
    catch_up: Annotated[
        str | None,
        typer.Option("--catch-up", help="Slots missed while stopped: one (default) or skip."),
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    queue: Annotated[str | None, typer.Option("--queue", help="Queue name.")] = None,
    priority: Annotated[int | None, typer.Option("--priority", min=0, max=9)] = None,
    retries: Annotated[int | None, typer.Option("--retries", min=0, max=1000)] = None,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Wall-clock limit per attempt, e.g. 30s.")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="k=v label; repeatable.")
    ] = None,
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


# The commands, in the order --help lists them.
app.command()(daemon)
app.command()(ping)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(submit)
app.command()(status)
app.command()(wait)
app.command()(result)
app.command()(cancel)
app.command()(delete)
app.command()(retry)
app.command("list")(list_tasks)
app.command()(pause)
app.command()(resume)
app.command()(logs)
app.command()(inspect)
app.command()(stop)
app.command()(reload)
app.command()(doctor)
app.command()(stats)
app.command()(metrics)
app.command()(queues)
app.command()(top)
app.add_typer(cron_app, name="cron")


def main() -> None:
    try:
        app(prog_name="asynctask")
    except UsageError as exc:  # pragma: no cover - commands turn these into exits
        fail(exc.message)
    except OSError as exc:  # pragma: no cover - an unwritable home or file a command missed
        fail(os_error(exc, "asynctask"))
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":  # pragma: no cover
    main()
