"""RQ 3 on Redis. PEER_VARIANT=simple (the configs here): rq.worker.SimpleWorker, which runs jobs
in the worker process; PEER_VARIANT=fork: the default rq.Worker (forks a work horse per job).
Two worker processes for 2 cores; RQ has no in-process concurrency, so W4 also runs 2.
result_ttl=0 (no results kept). Bulk: Queue.enqueue_many (one Redis pipeline per 1,000).
"""

from __future__ import annotations

import os
from typing import Any

import common
from redis import Redis
from rq import Queue

DISTS = ["rq"]
IS_ASYNC = False

VARIANT = os.environ.get("PEER_VARIANT", "simple")
conn = Redis.from_url(common.BROKER_URL)
q = Queue("bench", connection=conn)


def noop() -> None:
    common.mark_done()


def lat(t: float) -> None:
    common.mark_start(t)


def nap() -> None:
    common.nap()


_T = {"noop": noop, "lat": lat, "nap": nap}


def submit(kind: str, *args: Any) -> None:
    q.enqueue(_T[kind], *args, result_ttl=0)


def submit_bulk(n: int, chunk: int = 1000) -> None:
    for i in range(0, n, chunk):
        jobs = [Queue.prepare_data(noop, result_ttl=0) for _ in range(min(chunk, n - i))]
        q.enqueue_many(jobs)


def worker_cmds(io: bool) -> list[list[str]]:
    cls = "rq.worker.SimpleWorker" if VARIANT == "simple" else "rq.worker.Worker"
    cmd = ["rq", "worker", "bench", "-q", "-u", common.BROKER_URL, "-w", cls]
    return [cmd, list(cmd)]


def flush() -> None:
    q.empty()


def describe() -> dict[str, Any]:
    kind = "SimpleWorker" if VARIANT == "simple" else "Worker (fork per job)"
    return {"worker_class": kind, "processes": 2, "result_ttl": 0}


def durability() -> tuple[bool, str]:
    return common.redis_durability()
