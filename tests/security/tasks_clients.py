"""Task functions that act as clients of the daemon that runs them (test_task_clients.py).

Each takes the daemon's socket as an argument, makes one request, and returns what happened as
its result: ``{"ok": value}`` or ``{"error": "NotFound", "message": ...}``. Run as a module
(``python -m tests.security.tasks_clients MODE SOCKET``), it is the program a task starts as a
child or an orphaned grandchild, which makes the same requests and prints the answers as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asynctask import Client, current_task
from asynctask.errors import AsynctaskError

ROOT = Path(__file__).resolve().parents[2]


def _outcome(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"ok": call()}
    except AsynctaskError as exc:
        return {"error": type(exc).__name__, "message": exc.message}


def _ids(client: Client, **filters: Any) -> list[list[str]]:
    return sorted([task.tenant, task.id] for task in client.list(**filters))


def _report(reply: dict[str, Any]) -> dict[str, list[str]]:
    """Whose rows a ``queues`` or ``stats`` reply has: tenants, queues' tenants, functions."""
    return {
        "tenants": sorted({row["tenant"] for row in reply["tenants"]}),
        "queues": sorted({row["tenant"] for row in reply["queues"]}),
        "functions": sorted({row["function"] for row in reply["functions"]}),
    }


def probe(socket: str, action: str, arg: Any = None, tenant: str | None = None) -> Any:
    """One request (``ACTIONS``, with ``arg``: a task ID or a tenant) as a client of ``tenant``,
    by default the task's own."""
    client = Client(socket, tenant=tenant or current_task().tenant)
    try:
        return _outcome(lambda: ACTIONS[action](client, arg))
    finally:
        client.close()


ACTIONS: dict[str, Callable[[Client, Any], Any]] = {
    "ping": lambda c, _: c.ping()["pid"],
    "stop": lambda c, _: c.stop(),
    "metrics": lambda c, _: len(c.metrics()),
    "list": lambda c, _: _ids(c),
    "list_tenant": lambda c, tenant: _ids(c, tenant=tenant),
    "status": lambda c, task_id: c.status(task_id).state.value,
    "result": lambda c, task_id: c.result(task_id, timeout=0.2),
    "logs": lambda c, task_id: c.logs(task_id)["attempts"],
    "inspect": lambda c, task_id: c.inspect(task_id),
    "cancel": lambda c, task_id: c.cancel(task_id=task_id),
    "cancel_tenant": lambda c, tenant: c.cancel(tenant=tenant),
    "pause": lambda c, task_id: c.pause(task_id=task_id),
    "pause_tenant": lambda c, tenant: c.pause(tenant=tenant),
    "pause_function": lambda c, _: c.pause(function="tests.e2e.tasks:boom"),
    "reload": lambda c, _: c.reload(),
    "submit": lambda c, _: c.submit("tests.e2e.tasks:add", 1, 2).id,
    "submit_and_status": lambda c, _: c.submit("tests.e2e.tasks:add", 1, 2).wait(10).result,
    "queues": lambda c, _: _report(c.queues()),
    "stats": lambda c, _: _report(c.stats()),
    "cron_list": lambda c, _: [entry["tenant"] for entry in c.cron_list()],
}


def wait_for(path: str, timeout: float = 60.0) -> str:
    """Run until ``path`` exists (a task the test keeps running, then lets finish)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.01)
    print("saw", path)
    return "done"


def say(text: str) -> str:
    print(text)
    return text


def descendant(socket: str, mode: str) -> Any:
    """Start ``python -m tests.security.tasks_clients MODE SOCKET`` and return what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.security.tasks_clients", mode, socket],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def cli(socket: str, *args: str) -> list[Any]:
    """Run ``asynctask ARGS --socket SOCKET`` from the task: [exit code, stderr]."""
    done = subprocess.run(
        [sys.executable, "-m", "asynctask", *args, "--socket", socket],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return [done.returncode, done.stderr.strip()]


def _requests(socket: str) -> dict[str, Any]:
    client = Client(socket, tenant="a")
    return {
        "list": _outcome(lambda: _ids(client)),
        "metrics": _outcome(lambda: len(client.metrics())),
        "own_tenant": _outcome(lambda: _ids(client, tenant="a")),
    }


def _orphan(socket: str, new_session: bool) -> dict[str, Any]:
    """Fork twice and let the middle process exit: the grandchild is reparented (to init, or
    to the nearest child subreaper) and asks from there."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(read_end)
        parent = os.getpid()
        if os.fork() == 0:
            if new_session:
                os.setsid()
            deadline = time.monotonic() + 10
            while os.getppid() == parent and time.monotonic() < deadline:
                time.sleep(0.005)
            with os.fdopen(write_end, "w") as out:
                out.write(json.dumps({"reparented": os.getppid() != parent, **_requests(socket)}))
            os._exit(0)
        os._exit(0)
    os.close(write_end)
    os.waitpid(middle, 0)
    with os.fdopen(read_end) as answers:
        return dict(json.loads(answers.read()))


if __name__ == "__main__":
    mode, socket_path = sys.argv[1], sys.argv[2]
    if mode == "child":
        answer = _requests(socket_path)
    else:
        answer = _orphan(socket_path, new_session=mode == "orphan_setsid")
    print(json.dumps(answer))
