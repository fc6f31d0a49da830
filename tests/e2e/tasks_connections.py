"""A task that is a client of its own daemon with several connections (test_connection_bounds)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from asynctask import Client, current_task
from asynctask.errors import AsynctaskError


def open_connections(socket: str, count: int, start: str, out: str) -> list[str]:
    """Once ``start`` exists, open ``count`` connections and keep them while it writes what
    each got ("ok" or the error's class) to ``out``."""
    deadline = time.monotonic() + 60
    while not os.path.exists(start):
        if time.monotonic() > deadline:
            raise TimeoutError(start)
        time.sleep(0.02)
    clients: list[Client] = []
    outcomes: list[str] = []
    for _ in range(count):
        client = Client(socket, tenant=current_task().tenant)
        try:
            client.ping()
        except AsynctaskError as exc:
            outcomes.append(type(exc).__name__)
            client.close()
        else:
            outcomes.append("ok")
            clients.append(client)
    Path(out + ".tmp").write_text(json.dumps(outcomes))
    os.replace(out + ".tmp", out)
    for client in clients:
        client.close()
    return outcomes
