"""SAQ 0.26 on Redis (asyncio). Defaults otherwise: finished jobs stay in Redis until their TTL.

Worker: `saq t_saq.settings --workers 2`, concurrency 10 (SAQ's default) for W2/W3;
`saq t_saq.settings_io --workers 2`, concurrency 25 per process (50 in all) for W4.
Tasks are async; the side-channel call in them is the same sync INCR. No bulk enqueue API
(Queue.map/batch wait for the jobs' results).
"""

from __future__ import annotations

import asyncio
from typing import Any

import common
from saq import Queue

DISTS = ["saq"]
IS_ASYNC = True

queue = Queue.from_url(common.BROKER_URL, name="bench")


async def noop(ctx: dict[str, Any]) -> None:
    common.mark_done()


async def lat(ctx: dict[str, Any], *, t: float) -> None:
    common.mark_start(t)


async def nap(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(0.01)
    common.mark_done()


settings = {"queue": queue, "functions": [noop, lat, nap], "concurrency": 10}
settings_io = {"queue": queue, "functions": [noop, lat, nap], "concurrency": 25}


async def astartup() -> None:
    await queue.connect()


async def ashutdown() -> None:
    await queue.disconnect()


async def asubmit(kind: str, *args: Any) -> None:
    if kind == "lat":
        await queue.enqueue("lat", t=args[0])
    else:
        await queue.enqueue(kind)


def worker_cmds(io: bool) -> list[list[str]]:
    return [["saq", "t_saq.settings_io" if io else "t_saq.settings", "--workers", "2", "-q"]]


async def aflush() -> None:
    await queue.redis.flushdb()


def describe() -> dict[str, Any]:
    return {"processes": 2, "concurrency": "10 (W4: 25)"}


def durability() -> tuple[bool, str]:
    return common.redis_durability()
