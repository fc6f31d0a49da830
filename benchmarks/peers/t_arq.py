"""arq 0.28 (asyncio, Redis). Needs redis-py < 6, so it runs from its own venv (.venv-peers-arq).

Worker: `arq t_arq.WorkerSettings`, started twice (2 processes). keep_result=0 (no results).
W2/W3: max_jobs=10 (arq's default); W4: max_jobs=25 per process (50 in all).
Polling: arq polls its queue (a sorted set) every poll_delay seconds when idle; the default is
0.5 s. PEER_VARIANT=tuned (default here) uses poll_delay=0.01; PEER_VARIANT=defaults keeps 0.5 s.
No bulk enqueue API. Tasks are async; the side-channel call in them is the same sync INCR.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import common
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

DISTS = ["arq"]
IS_ASYNC = True

VARIANT = os.environ.get("PEER_VARIANT", "tuned")
_host, _port = common.broker_host_port()
SETTINGS = RedisSettings(host=_host, port=_port)


async def noop(ctx: dict[str, Any]) -> None:
    common.mark_done()


async def lat(ctx: dict[str, Any], t: float) -> None:
    common.mark_start(t)


async def nap(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(0.01)
    common.mark_done()


class WorkerSettings:
    functions = [noop, lat, nap]  # noqa: RUF012 - arq reads a plain class attribute
    redis_settings = SETTINGS
    max_jobs = 10
    keep_result = 0
    poll_delay = 0.01 if VARIANT == "tuned" else 0.5
    handle_signals = True


class WorkerSettingsIO:  # arq reads only the class's own __dict__, so no inheritance
    functions = WorkerSettings.functions
    redis_settings = SETTINGS
    max_jobs = 25
    keep_result = 0
    poll_delay = WorkerSettings.poll_delay
    handle_signals = True


_pool: ArqRedis | None = None


def _p() -> ArqRedis:
    assert _pool is not None, "astartup() first"
    return _pool


async def astartup() -> None:
    global _pool
    _pool = await create_pool(SETTINGS)


async def ashutdown() -> None:
    if _pool is not None:
        await _pool.aclose()


async def asubmit(kind: str, *args: Any) -> None:
    await _p().enqueue_job(kind, *args)


def worker_cmds(io: bool) -> list[list[str]]:
    cmd = ["arq", "t_arq.WorkerSettingsIO" if io else "t_arq.WorkerSettings"]
    return [cmd, list(cmd)]


async def aflush() -> None:
    await _p().flushdb()


def describe() -> dict[str, Any]:
    return {
        "processes": 2,
        "max_jobs": "10 (W4: 25)",
        "poll_delay": WorkerSettings.poll_delay,
        "keep_result": 0,
    }


def durability() -> tuple[bool, str]:
    return common.redis_durability()
