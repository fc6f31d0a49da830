"""The console's HTML: one function per page, each returning the whole document.

Everything shown comes from a daemon reply and may come from a task (its ID, function name,
labels, error, traceback, logs): every value goes through ``esc`` (``html.escape`` with quotes),
and nothing is ever put in a script, a style or an event attribute. The Content-Security-Policy
(``httpserver.SECURITY_HEADERS``) forbids inline script anyway, so a value that slipped through
would still be inert text. Links are built with ``urlencode``, never by pasting text.

No clock is read here: the pages show the daemon's times as it gave them.
"""

from __future__ import annotations

import html
import json
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlencode

from asynctask.protocol.values import to_jsonable, unpack_value
from asynctask.web import svg

#: The most characters of a log, traceback or result shown in a page (the rest is cut, with
#: a note; the CLI has it whole).
TEXT_SHOWN: Final = 64 * 1024
#: Arguments are decoded for the task page only up to this many bytes of msgpack, and shown
#: up to ``ARGS_SHOWN`` characters (a task's arguments may be up to ``[daemon] max_payload``).
ARGS_DECODED: Final = 64 * 1024
ARGS_SHOWN: Final = 4096
#: The list filters the Tasks page takes, as ``asynctask list`` spells them.
LIST_FILTERS: Final[tuple[str, ...]] = (
    "state", "tenant", "queue", "function", "prefix", "label", "since", "until", "trace_id",
)  # fmt: skip


#: The actions the Tasks page offers for its current filter (``console.BULK_STATES``).
BULK_ACTIONS: Final = ("cancel", "retry", "delete", "pause", "resume")


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def capped(text: str, limit: int = TEXT_SHOWN) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit:,} more characters: see the CLI)"


def arguments_text(payload: bytes) -> str:
    """A task's ``[args, kwargs]`` as Python would write the call's arguments, size-capped;
    a payload too big to decode here is only measured."""
    if len(payload) > ARGS_DECODED:
        return f"({len(payload):,} bytes of arguments: too large to show here)"
    try:
        args, kwargs = unpack_value(payload, classes=False)
        parts = [_shown(arg) for arg in args]
        parts += [f"{key}={_shown(value)}" for key, value in dict(kwargs).items()]
    except Exception:  # stored by another version, or not a call: show its size
        return f"({len(payload):,} bytes of arguments in a form this page cannot read)"
    return capped(", ".join(parts), ARGS_SHOWN)


def _shown(value: object) -> str:
    """A task value as JSON, with the task value types tagged as ``status --json`` shows them
    (``{"$datetime": ...}``): decoded without rebuilding any class (``classes=False``), so
    nothing a tenant wrote runs in the daemon, not even a ``__repr__``."""
    return json.dumps(to_jsonable(value), ensure_ascii=False)


def result_text(result: object) -> str:
    """A task's result as the daemon keeps it (msgpack), decoded and size-capped as the
    arguments are."""
    if not isinstance(result, bytes):
        return capped(repr(result), ARGS_SHOWN)
    if len(result) > ARGS_DECODED:
        return f"({len(result):,} bytes of result: too large to show here)"
    try:
        return capped(_shown(unpack_value(result, lenient=True, classes=False)), ARGS_SHOWN)
    except Exception:  # not msgpack: show its size
        return f"({len(result):,} bytes of result in a form this page cannot read)"


def when(epoch: object) -> str:
    if not isinstance(epoch, int | float):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def seconds(value: object) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def task_href(tenant: str, task_id: str) -> str:
    return "/task?" + urlencode({"tenant": tenant, "id": task_id})


def layout(title: str, body: str, who: str, csrf: str, notice: str = "") -> str:
    note = f'<p class="notice">{esc(notice)}</p>' if notice else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)} · asynctask</title>"
        '<link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head><body>'
        '<header><nav><a href="/">Overview</a><a href="/tasks">Tasks</a>'
        '<a href="/failures">Failures</a><a href="/cron">Cron</a>'
        '<a href="/nodes">Nodes</a></nav>'
        f'<span class="who">{esc(who)}</span>'
        f'<form method="post" action="/logout">{csrf_field(csrf)}<button>Log out</button></form>'
        f"</header><main><h1>{esc(title)}</h1>{note}{body}</main></body></html>\n"
    )


def csrf_field(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(csrf)}">'


def login_page(message: str = "") -> str:
    note = f'<p class="error">{esc(message)}</p>' if message else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Log in · asynctask</title>"
        '<link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head><body><main class="login">'
        f"<h1>asynctask</h1>{note}"
        "<p>Run <code>asynctask web-token</code> on the daemon's machine, as the user whose "
        "tasks you want to see, and paste the token here (or open the link it prints).</p>"
        '<form method="post" action="/login" id="login">'
        '<label>Token <input name="token" id="token" autocomplete="off" required></label>'
        "<button>Log in</button></form></main></body></html>\n"
    )


def error_page(title: str, message: str, who: str, csrf: str) -> str:
    return layout(title, f'<p class="error">{esc(message)}</p>', who, csrf)


def _table(headings: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """``rows`` are cells of HTML already escaped by the caller."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(name)}</th>" for name in headings)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(value: object) -> str:
    return "–" if value is None else esc(value)


def _latency(row: Mapping[str, Any], key: str) -> list[str]:
    recent = row.get(key) or {}
    return [seconds(recent.get("p50")), seconds(recent.get("p99"))]


def _queue_button(action: str, tenant: str, queue: str, csrf: str) -> str:
    return (
        f'<form method="post" action="/queue/{action}" class="inline">{csrf_field(csrf)}'
        f'<input type="hidden" name="tenant" value="{esc(tenant)}">'
        f'<input type="hidden" name="queue" value="{esc(queue)}">'
        f"<button>{esc(action.capitalize())}</button></form>"
    )


def live(events: str, body: str) -> str:
    """``body`` in the region ``console.js`` replaces with each update ``events`` (the SSE
    endpoint, ``/events?...``) pushes."""
    return f'<div id="live" data-events="{esc(events)}">{body}</div>'


def overview_page(stats: Mapping[str, Any], who: str, csrf: str, notice: str = "") -> str:
    body = live("/events?view=overview", overview_body(stats, csrf))
    return layout("Overview", body, who, csrf, notice)


def overview_body(stats: Mapping[str, Any], csrf: str) -> str:
    """Pool, then per tenant, queue and function: backlog, running, totals of the last hour,
    wait and run p50/p99 (``stats``' recent percentiles); pause/resume per queue, and each
    function's AIMD limit."""
    pool = stats.get("workers") or {}
    parts = [
        '<section><h2>Pool</h2><p class="pool">'
        f"workers {_num(pool.get('size'))} (busy {_num(pool.get('busy'))}, idle "
        f"{_num(pool.get('idle'))}, max {_num(pool.get('max'))}), slots "
        f"{_num(pool.get('slots'))}</p></section>"
    ]
    latency = ["wait p50", "wait p99", "run p50", "run p99"]
    counts = ["backlog", "running", "done/h", "failed/h"]

    def figures(row: Mapping[str, Any]) -> list[str]:
        return [
            _num(row.get("backlog")),
            _num(row.get("running")),
            _num(row.get("completed_total")),
            _num(row.get("failed_total")),
            *_latency(row, "queue_wait"),
            *_latency(row, "run_time"),
        ]

    tenants = [
        [_link_tasks(row.get("tenant"), tenant=row.get("tenant")), *figures(row)]
        for row in stats.get("tenants") or ()
    ]
    charted = [
        f'<div class="charts"><h3>{esc(svg.row_name(row))}</h3>{svg.charts(row)}</div>'
        for row in stats.get("tenants") or ()
    ]
    if charted:
        parts.append('<section id="charts"><h2>Last hour, per minute</h2>')
        parts.append("".join(charted) + "</section>")
    parts.append("<section><h2>Tenants</h2>")
    parts.append(_table(["tenant", *counts, *latency], tenants, "no tenant has tasks yet"))
    queues = []
    for row in stats.get("queues") or ():
        tenant, queue = str(row.get("tenant")), str(row.get("queue"))
        paused = bool(row.get("paused"))
        state = '<span class="paused">paused</span>' if paused else "active"
        button = _queue_button("resume" if paused else "pause", tenant, queue, csrf)
        queues.append(
            [
                esc(tenant),
                _link_tasks(queue, tenant=tenant, queue=queue),
                state,
                *figures(row),
                button,
            ]
        )
    parts.append("</section><section><h2>Queues</h2>")
    parts.append(
        _table(["tenant", "queue", "state", *counts, *latency, ""], queues, "no queues yet")
    )
    functions = [
        [
            _link_tasks(row.get("function"), function=row.get("function")),
            *figures(row),
            _aimd(row.get("aimd_limit")),
        ]
        for row in stats.get("functions") or ()
    ]
    parts.append("</section><section><h2>Functions</h2>")
    parts.append(
        _table(["function", *counts, *latency, "AIMD limit"], functions, "no functions yet")
    )
    parts.append("</section>")
    return "".join(parts)


def _aimd(limit: object) -> str:
    """A function's adaptive concurrency limit now (``[aimd]``), as ``top`` shows it; a dash
    for a function without one (``aimd = false``)."""
    if isinstance(limit, int | float) and not isinstance(limit, bool):
        return esc(f"{limit:g}")
    return "–"


def _link_tasks(text: object, **filters: object) -> str:
    query = urlencode({k: str(v) for k, v in filters.items() if v is not None})
    return f'<a href="/tasks?{esc(query)}">{esc(text)}</a>'


def tasks_page(
    tasks: Sequence[Mapping[str, Any]],
    filters: Mapping[str, str],
    cursor: str | None,
    who: str,
    csrf: str,
    notice: str = "",
) -> str:
    inputs = "".join(
        f'<label>{esc(name)} <input name="{esc(name)}" value="{esc(filters.get(name, ""))}">'
        "</label>"
        for name in LIST_FILTERS
    )
    form = (
        f'<form method="get" action="/tasks" class="filters">{inputs}<button>Filter</button></form>'
    )
    rows = [
        [
            f'<a href="{esc(task_href(task["tenant"], task["id"]))}">{esc(task["id"])}</a>',
            f'<span class="state {esc(task.get("state"))}">{esc(task.get("state"))}</span>',
            esc(task.get("tenant")),
            esc(task.get("queue")),
            esc(task.get("function")),
            esc(task.get("attempts")),
            esc(when(task.get("created_at"))),
            esc(_error_line(task.get("error"))),
        ]
        for task in tasks
    ]
    table = _table(
        ["id", "state", "tenant", "queue", "function", "attempts", "created", "error"],
        rows,
        "no task matches",
    )
    more = ""
    if cursor is not None:
        query = urlencode({**{k: v for k, v in filters.items() if v}, "cursor": cursor})
        more = f'<p class="more"><a href="/tasks?{esc(query)}">Next page</a></p>'
    chosen = {k: v for k, v in filters.items() if v}
    bulk = "".join(
        f'<a class="button" href="/tasks/bulk?{esc(urlencode({**chosen, "action": action}))}">'
        f"{esc(action.capitalize())}…</a>"
        for action in BULK_ACTIONS
    )
    actions = f'<p class="bulk">Every task this filter matches: {bulk}</p>'
    return layout("Tasks", form + actions + table + more, who, csrf, notice)


def bulk_page(
    action: str,
    filters: Mapping[str, str],
    states: Sequence[str],
    allowed: Sequence[str],
    count: int,
    more: bool,
    who: str,
    csrf: str,
) -> str:
    """The confirmation of a bulk action: the filter, the count it matches now, and the form
    (with the filter as hidden fields) that does it."""
    chosen = {k: v for k, v in filters.items() if v}
    described = ", ".join(f"{k}={v}" for k, v in chosen.items()) or "no filter (every task)"
    number = f"at least {count:,}" if more else f"{count:,}"
    parts = [
        f"<p>Filter: <code>{esc(described)}</code></p>",
        f"<p>{esc(action.capitalize())} applies to {esc(', '.join(allowed))} tasks.</p>",
        f'<p class="count"><strong>{esc(number)}</strong> task(s) match now'
        f"{' (states: ' + esc(', '.join(states)) + ')' if states else ''}.</p>",
    ]
    back = f'<a href="/tasks?{esc(urlencode(chosen))}">Back to the list</a>'
    if count == 0:
        parts.append(f'<p class="empty">Nothing to do. {back}</p>')
    else:
        hidden = "".join(
            f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in chosen.items()
        )
        parts.append(
            f'<form method="post" action="/tasks/bulk" id="bulk">{csrf_field(csrf)}'
            f'<input type="hidden" name="action" value="{esc(action)}">{hidden}'
            f"<button>{esc(action.capitalize())} {esc(number)} task(s)</button> {back}</form>"
        )
    return layout(f"{action.capitalize()} by filter", "".join(parts), who, csrf)


def cron_page(
    entries: Sequence[Mapping[str, Any]],
    last: Mapping[tuple[str, str], Mapping[str, Any] | None],
    who: str,
    csrf: str,
) -> str:
    """Cron entries: schedule, function, next fire time, and the last run (its task, linked,
    with its state); an entry stored unusable shows why."""
    rows = []
    for entry in entries:
        tenant, name = str(entry.get("tenant")), str(entry.get("name"))
        run = last.get((tenant, name))
        if run is not None:
            state = esc(run.get("state"))
            href = esc(task_href(tenant, str(run.get("id"))))
            last_run = (
                f'<a href="{href}">{esc(when(entry.get("last_slot")))}</a> '
                f'<span class="state {state}">{state}</span>'
            )
        else:
            last_run = esc(when(entry.get("last_slot"))) or "never"
        error = entry.get("error")
        next_at = (
            f'<span class="error">not scheduled: {esc(error)}</span>'
            if error
            else esc(when(entry.get("next_at")))
        )
        runs = _link_tasks("runs", tenant=tenant, prefix=f"cron:{name}:")
        rows.append(
            [
                esc(tenant),
                esc(name),
                f"<code>{esc(entry.get('expr'))}</code> ({esc(entry.get('tz'))})",
                esc(entry.get("function")),
                next_at,
                last_run,
                runs,
            ]
        )
    table = _table(
        ["tenant", "name", "schedule", "function", "next", "last run", ""],
        rows,
        "no cron entries (asynctask cron add)",
    )
    return layout("Cron", table, who, csrf)


def _error_line(error: object) -> str:
    if not isinstance(error, Mapping):
        return ""
    return f"{error.get('type') or error.get('kind') or 'error'}: {error.get('message') or ''}"


def _action_button(action: str, task: Mapping[str, Any], csrf: str, confirm: str = "") -> str:
    note = f' data-confirm="{esc(confirm)}"' if confirm else ""
    return (
        f'<form method="post" action="/task/{action}" class="inline"{note}>{csrf_field(csrf)}'
        f'<input type="hidden" name="tenant" value="{esc(task["tenant"])}">'
        f'<input type="hidden" name="id" value="{esc(task["id"])}">'
        f"<button>{esc(action.capitalize())}</button></form>"
    )


def task_page(
    task: Mapping[str, Any],
    logs: Mapping[str, Any] | None,
    who: str,
    csrf: str,
    notice: str = "",
    args: str | None = None,
) -> str:
    events = "/events?" + urlencode(
        {"view": "task", "tenant": str(task.get("tenant")), "id": str(task.get("id"))}
    )
    body = live(events, task_body(task, logs, csrf, args))
    return layout(f"Task {task.get('id')}", body, who, csrf, notice)


def task_body(
    task: Mapping[str, Any],
    logs: Mapping[str, Any] | None,
    csrf: str,
    args: str | None = None,
) -> str:
    """State, fields, arguments (size-capped), actions, each attempt's error (the last with
    its traceback), the stage times, the logs."""
    state = str(task.get("state"))
    actions = []
    if state in ("scheduled", "queued", "running"):
        actions.append(_action_button("cancel", task, csrf, "Cancel this task?"))
    if state == "failed":
        actions.append(_action_button("retry", task, csrf))
    if state in ("succeeded", "failed", "cancelled", "expired"):
        actions.append(_action_button("delete", task, csrf, "Delete this task for good?"))
    fields = [
        ("state", f'<span class="state {esc(state)}">{esc(state)}</span>'
                  + (" (paused)" if task.get("paused") else "")),
        ("tenant", esc(task.get("tenant"))),
        ("queue", esc(task.get("queue"))),
        ("function", esc(task.get("function"))),
        ("priority", esc(task.get("priority"))),
        ("arguments", "" if args is None else f'<pre class="args">{esc(args)}</pre>'),
        ("attempts", f"{esc(task.get('attempts'))} (retries allowed: {esc(task.get('retries'))})"),
        ("labels", esc(", ".join(f"{k}={v}" for k, v in (task.get("labels") or {}).items()))),
        ("created", esc(when(task.get("created_at")))),
        ("due", esc(when(task.get("due_at")))),
        ("started", esc(when(task.get("started_at")))),
        ("finished", esc(when(task.get("finished_at")))),
        ("trace id", esc(task.get("trace_id"))),
        ("result", f"<pre>{esc(result_text(task.get('result')))}</pre>"
                   if task.get("result") is not None else ""),
    ]  # fmt: skip
    rows = "".join(f"<tr><th>{esc(name)}</th><td>{value}</td></tr>" for name, value in fields)
    parts = [
        f'<p class="actions">{"".join(actions)}</p>' if actions else "",
        f'<table class="fields">{rows}</table>',
    ]
    error = task.get("error")
    if isinstance(error, Mapping):
        parts.append(
            f"<section><h2>Last error</h2><p>{esc(_error_line(error))}</p>"
            f'<pre class="traceback">{esc(capped(str(error.get("traceback") or "")))}</pre>'
            "</section>"
        )
    errors = [
        [esc(e.get("attempt")), esc(e.get("kind")), esc(_error_line(e)),
         esc(when(e.get("started_at"))), esc(when(e.get("finished_at")))]
        for e in task.get("errors") or () if isinstance(e, Mapping)
    ]  # fmt: skip
    if errors:
        parts.append("<section><h2>Failed attempts</h2>")
        parts.append(_table(["attempt", "kind", "error", "started", "finished"], errors, ""))
        parts.append("</section>")
    stages = [
        [esc(s.get("attempt")), esc(when(s.get("eligible"))), esc(when(s.get("dispatched"))),
         esc(when(s.get("started"))), esc(when(s.get("finished"))),
         seconds(s.get("queue_wait")), seconds(s.get("run_time"))]
        for s in task.get("trace") or () if isinstance(s, Mapping)
    ]  # fmt: skip
    parts.append("<section><h2>Stage times</h2>")
    parts.append(svg.timeline(task.get("trace")))
    parts.append(
        _table(
            ["attempt", "eligible", "dispatched", "started", "finished", "wait", "run"],
            stages,
            "no attempt has ended yet",
        )
    )
    parts.append("</section><section><h2>Logs</h2>")
    parts.append(_logs(logs))
    parts.append("</section>")
    return "".join(parts)


def _logs(logs: Mapping[str, Any] | None) -> str:
    attempts = [] if logs is None else list(logs.get("attempts") or ())
    if not attempts:
        return '<p class="empty">no output captured</p>'
    out = []
    for entry in attempts:
        data = entry.get("data") or b""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        out.append(
            f"<h3>attempt {esc(entry.get('attempt'))}</h3>"
            f'<pre class="log">{esc(capped(text))}</pre>'
        )
    return "".join(out)


def failures_page(tasks: Sequence[Mapping[str, Any]], complete: bool, who: str, csrf: str) -> str:
    """The dead-letter queue (``failed`` tasks), grouped by function and error type, biggest
    group first; each group lists its newest tasks."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for task in tasks:
        raw = task.get("error")
        error: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        kind = str(error.get("type") or error.get("kind") or "error")
        groups[(str(task.get("function")), kind)].append(task)
    parts = []
    if not complete:
        parts.append(
            f'<p class="notice">the newest {len(tasks):,} failed tasks are grouped here; '
            '<a href="/tasks?state=failed">the task list</a> pages through all of them</p>'
        )
    if not groups:
        parts.append('<p class="empty">no failed tasks</p>')
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    for (function, kind), members in ordered:
        link = _link_tasks(f"{len(members)} task(s)", state="failed", function=function)
        rows = [
            [
                f'<a href="{esc(task_href(t["tenant"], t["id"]))}">{esc(t["id"])}</a>',
                esc(t.get("tenant")),
                esc(_error_line(t.get("error"))),
                esc(when(t.get("finished_at"))),
                _action_button("retry", t, csrf),
            ]
            for t in members[:20]
        ]
        parts.append(
            f"<section><h2>{esc(function)} · {esc(kind)}</h2><p>{link}</p>"
            + _table(["id", "tenant", "error", "finished", ""], rows, "")
            + "</section>"
        )
    return layout("Failures", "".join(parts), who, csrf)


def nodes_page(view: Mapping[str, Any], who: str, csrf: str) -> str:
    """The live daemons sharing the store (``asynctask nodes``): one row each, with its
    partitions, heartbeat age and running attempts; on SQLite, the one daemon."""
    cluster = bool(view.get("cluster"))
    if cluster:
        intro = (
            f"<p>A cluster on a shared PostgreSQL store: {esc(view.get('partitions'))} "
            f"partitions, lease {seconds(view.get('lease'))}.</p>"
        )
    else:
        intro = "<p>One daemon on a SQLite store: all work is local.</p>"
    rows = []
    for node in view.get("nodes") or ():
        if not isinstance(node, Mapping):
            continue
        parts = node.get("partitions")
        rows.append(
            [
                esc(node.get("node")) + (" (this one)" if node.get("me") else ""),
                esc(node.get("host")),
                esc(node.get("pid")),
                esc(when(node.get("started_at"))),
                f"{seconds(node.get('age'))} ago",
                esc(node.get("running")),
                "all" if parts is None else esc(", ".join(map(str, parts))) or "none",
            ]
        )
    table = _table(
        ["node", "host", "pid", "started", "heartbeat", "running", "partitions"],
        rows,
        "no daemon has written its first heartbeat yet",
    )
    unowned = view.get("unowned") or []
    if unowned:
        table += (
            '<p class="error">Partitions no live daemon holds (the survivors take them over): '
            f"{esc(', '.join(map(str, unowned)))}</p>"
        )
    return layout("Nodes", intro + table, who, csrf)
