"""The `make run` demo: start the daemon if needed, submit a small workload, watch it finish."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asynctask import Client  # noqa: E402
from asynctask.errors import DaemonUnavailable  # noqa: E402
from examples import tasks  # noqa: E402

console = Console(width=max(Console().width, 110))


def ensure_daemon(client: Client) -> None:
    try:
        info = client.ping()
        console.print(f"daemon already running (pid {info['pid']})")
    except DaemonUnavailable:
        asynctask_cli = Path(sys.executable).with_name("asynctask")
        subprocess.run([str(asynctask_cli), "daemon", "--detach"], check=True, cwd=ROOT)


def main() -> None:
    home = os.environ.get("ASYNCTASK_HOME", str(ROOT / ".asynctask"))
    os.environ["ASYNCTASK_HOME"] = home
    client = Client()
    if "--start-daemon" in sys.argv:
        ensure_daemon(client)
    began = time.perf_counter()
    handles = [
        tasks.add.options(client=client).submit(2, 3),
        client.submit(tasks.fib, 90),
        client.submit(tasks.digest, "asynctask", kwargs={"rounds": 50_000}),
        client.submit(tasks.fetch, "profile", 0.3),
        client.submit(tasks.flaky, 3, retries=3),
        client.submit(tasks.reject, "A-17"),
        client.submit("examples.tasks:no_such_function"),
    ]
    handles += client.submit_many(
        {"func": tasks.fib, "args": [n], "labels": {"batch": "fib"}} for n in range(10, 20)
    )
    console.print(f"submitted {len(handles)} tasks (each committed to SQLite before the reply)")
    table = Table(title="demo tasks", show_lines=False)
    for column in ("id", "function", "state", "attempts", "result / error"):
        table.add_column(column)
    failed = 0
    for handle in handles:
        status = handle.wait(timeout=60)
        error = status.error or {}
        outcome = (
            repr(status.result)
            if status.succeeded
            else f"{str(error.get('type')).rsplit('.', 1)[-1]}: {error.get('message')}"
        )
        if len(outcome) > 60:
            outcome = outcome[:57] + "..."
        failed += not status.succeeded
        style = "green" if status.succeeded else "red"
        table.add_row(
            "…" + status.id[-8:],
            status.function.split(":")[1],
            f"[{style}]{status.state.value}[/{style}]",
            str(status.attempts),
            outcome,
        )
    console.print(table)
    elapsed = time.perf_counter() - began
    console.print(
        f"{len(handles) - failed} succeeded, {failed} failed as designed "
        f"(Fail is not retried; an unknown function is an import error) in {elapsed:.1f}s."
    )
    console.print(
        f"The daemon keeps running (home {home}). Try:\n"
        f"  ASYNCTASK_HOME={home} .venv/bin/asynctask list\n"
        f"  ASYNCTASK_HOME={home} .venv/bin/asynctask submit examples.tasks:add '[1, 2]' --wait\n"
        f"Stop it with: make stop"
    )


if __name__ == "__main__":
    main()
