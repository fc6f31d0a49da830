"""Dramatiq 2 with RedisBroker, no results middleware.

Worker: `dramatiq t_dramatiq -p 2 -t 8` (2 processes x 8 threads, dramatiq's default threads) for
W2/W3; `-p 2 -t 25` (50 threads in all) for W4. max_retries=0.
Bulk: dramatiq.group([...]).run() - enqueues one message at a time (no pipelined bulk API).
"""

from __future__ import annotations

from typing import Any

import common
import dramatiq
from dramatiq.brokers.redis import RedisBroker

DISTS = ["dramatiq"]
IS_ASYNC = False

dramatiq.set_broker(RedisBroker(url=common.BROKER_URL))


@dramatiq.actor(max_retries=0)
def noop() -> None:
    common.mark_done()


@dramatiq.actor(max_retries=0)
def lat(t: float) -> None:
    common.mark_start(t)


@dramatiq.actor(max_retries=0)
def nap() -> None:
    common.nap()


_T = {"noop": noop, "lat": lat, "nap": nap}


def submit(kind: str, *args: Any) -> None:
    _T[kind].send(*args)


def submit_bulk(n: int) -> None:
    dramatiq.group([noop.message() for _ in range(n)]).run()


def worker_cmds(io: bool) -> list[list[str]]:
    return [["dramatiq", "t_dramatiq", "-p", "2", "-t", "25" if io else "8"]]


def flush() -> None:
    dramatiq.get_broker().flush_all()


def describe() -> dict[str, Any]:
    return {"processes": 2, "threads": "8 per process (W4: 25)", "max_retries": 0}


def durability() -> tuple[bool, str]:
    return common.redis_durability()
