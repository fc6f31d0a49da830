"""Hand-made ``stats`` snapshots in the daemon's shape (asynctask/observe/readout.py)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from asynctask.tui.render import Layout, frame
from asynctask.tui.view import ViewState

MINUTES = 60
NOW = 1_764_700_035.0  # 15 s into a minute (minutes are aligned on the epoch)


def series(*last: int) -> list[int]:
    """A 60-minute series ending with ``last`` (the final value is the current minute)."""
    return [0] * (MINUTES - len(last)) + list(last)


def _metrics(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        name: series() for name in ("submitted", "completed", "failed", "expired", "refused")
    }
    row.update(
        backlog=0,
        running=0,
        paused=False,
        concurrency=None,
        rate=None,
        tokens=None,
        queue_wait={"count": 0, "sum": 0.0, "p50": None, "p99": None},
        run_time={"count": 0, "sum": 0.0, "p50": None, "p99": None},
        running_per_minute=series(),
        backlog_per_minute=series(),
    )
    row.update(fields)
    return row


def queue(tenant: str, name: str, **fields: Any) -> dict[str, Any]:
    return _metrics(tenant=tenant, queue=name, **fields)


def tenant(name: str, **fields: Any) -> dict[str, Any]:
    return _metrics(tenant=name, **fields)


def function(name: str, **fields: Any) -> dict[str, Any]:
    return _metrics(function=name, **{"aimd_limit": None, **fields})


def failure(tenant: str, queue: str, message: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": "01J",
        "tenant": tenant,
        "queue": queue,
        "function": "app.tasks:send",
        "state": "failed",
        "attempts": 4,
        "kind": "exception",
        "type": "ValueError",
        "message": message,
        "finished_at": NOW - 5,
        **fields,
    }


def snapshot(
    queues: list[dict[str, Any]] | None = None,
    tenants: list[dict[str, Any]] | None = None,
    functions: list[dict[str, Any]] | None = None,
    failures: list[dict[str, Any]] | None = None,
    **workers: Any,
) -> dict[str, Any]:
    queues = queues or []
    if tenants is None:
        tenants = [tenant(name) for name in sorted({q["tenant"] for q in queues})]
    pool = {"size": 2, "idle": 1, "busy": 1, "target": 2, "max": 8, "slots": 2, **workers}
    return {
        "now": NOW,
        "minutes": MINUTES,
        "tenants": tenants,
        "queues": queues,
        "functions": functions or [],
        "workers": pool,
        "failures": failures or [],
    }


def screen(
    snap: dict[str, Any],
    state: ViewState,
    layout: Layout | None = None,
    nodes: dict[str, Any] | None = None,
) -> list[str]:
    """The frame as the lines a terminal of the layout's size would show (with ``nodes``, a
    ``nodes`` reply, as ``top`` draws it)."""
    layout = layout or Layout(160, None)
    out = io.StringIO()
    console = Console(file=out, width=layout.width, color_system=None, legacy_windows=False)
    console.print(frame(snap, state, layout, nodes=nodes))
    return out.getvalue().splitlines()


def nodes_reply(*names: str, me: str = "n1", partitions: int = 8) -> dict[str, Any]:
    """A ``nodes`` reply of a cluster (asynctask/daemon/nodesview.py): the partitions dealt out
    in turn to ``names``, none unowned."""
    return {
        "cluster": True,
        "me": me,
        "partitions": partitions,
        "lease": 10.0,
        "nodes": [
            {"node": name, "host": "box", "pid": 100 + i, "started_at": NOW - 600,
             "heartbeat_at": NOW - 1.5, "age": 1.5, "running": i,
             "partitions": list(range(i, partitions, len(names))), "me": name == me}
            for i, name in enumerate(names)
        ],
        "unowned": [] if names else list(range(partitions)),
    }  # fmt: skip
