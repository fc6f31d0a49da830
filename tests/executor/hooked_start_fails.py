"""A module whose ``on_worker_start`` hook fails the first time it runs in a worker."""

from __future__ import annotations

import asynctask

CALLS: list[str] = []


@asynctask.on_worker_start
def flaky_setup() -> None:
    CALLS.append("setup")
    if len(CALLS) == 1:
        raise ConnectionError("database not up yet")


def calls() -> list[str]:
    return list(CALLS)
