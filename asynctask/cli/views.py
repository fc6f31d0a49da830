"""Read-outs: ``list``, ``queues``, ``stats``, ``nodes``, ``metrics`` and ``top``, and how one
task is printed (``print_task``, also used by ``status``, ``wait`` and ``submit``).

With ``--json`` each prints JSON (``top`` is a live view and has none); without, text for a
person. Text that came from a task (errors, tracebacks) goes through ``printable`` first
(docs/contract.md, "Terminal output": no control characters reach a terminal).
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
    labels_opt,
    printable,
    run_client,
)
from asynctask.cli.selectors import moment_opt, split_states
from asynctask.client import TaskStatus
from asynctask.model import format_time


def print_task(status: TaskStatus, as_json: bool) -> None:
    """One task: with ``as_json`` the object of docs/contract.md ("JSON output"), else a field a
    line, then why it failed (the traceback's tail), each earlier attempt's error and each attempt's
    stages."""
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
    states = split_states(state)
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


def nodes(home: HomeOpt = None, socket: SocketOpt = None, as_json: JsonOpt = False) -> None:
    """The live daemons sharing this daemon's store: each one's ID, host, pid, the partitions
    it holds (how many, then which: 0-7,12), its last heartbeat and the attempts it was
    running then; "(this daemon)" marks the one that answered, and the partitions no live
    daemon holds are listed last. A daemon is live while its heartbeat is younger than one
    [store] lease. On SQLite (no [store] url) there is one daemon and nothing is
    partitioned. --json: {"cluster", "me", "partitions", "lease", "nodes": [{"node", "host",
    "pid", "started_at", "heartbeat_at", "age", "running", "partitions", "me"}], "unowned"}."""
    reply = run_client(lambda: client_for(home, socket).nodes())
    if as_json:
        typer.echo(json.dumps(reply))
        return
    from rich.console import Console

    from asynctask.cli.nodestable import render_nodes

    render_nodes(reply, Console(width=200))


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
