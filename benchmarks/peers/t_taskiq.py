"""taskiq 0.13 with taskiq-redis ListQueueBroker (LPUSH / BRPOP, no ack), no result backend.

Worker: `taskiq worker t_taskiq:broker --workers 2 --max-async-tasks 100` (taskiq's defaults for
both) for W2/W3; `--max-async-tasks 25` per process (50 in all) for W4. Tasks are async; the
side-channel call in them is the same sync INCR. No bulk enqueue API.
"""

from __future__ import annotations

import asyncio
from typing import Any

import common
import redis
from taskiq_redis import ListQueueBroker

DISTS = ["taskiq", "taskiq-redis"]
IS_ASYNC = True

broker = ListQueueBroker(common.BROKER_URL)


@broker.task
async def noop() -> None:
    common.mark_done()


@broker.task
async def lat(t: float) -> None:
    common.mark_start(t)


@broker.task
async def nap() -> None:
    await asyncio.sleep(0.01)
    common.mark_done()


_T = {"noop": noop, "lat": lat, "nap": nap}


async def astartup() -> None:
    await broker.startup()


async def ashutdown() -> None:
    await broker.shutdown()


async def asubmit(kind: str, *args: Any) -> None:
    await _T[kind].kiq(*args)


def worker_cmds(io: bool) -> list[list[str]]:
    cmd = ["taskiq", "worker", "t_taskiq:broker", "--workers", "2", "--log-level", "WARNING"]
    return [[*cmd, "--max-async-tasks", "25" if io else "100"]]


async def aflush() -> None:
    r = redis.Redis.from_url(common.BROKER_URL)
    try:
        r.delete(broker.queue_name)
    finally:
        r.close()


def describe() -> dict[str, Any]:
    return {"broker": "ListQueueBroker", "workers": 2, "max_async_tasks": "100 (W4: 25)"}


def durability() -> tuple[bool, str]:
    return common.redis_durability()
