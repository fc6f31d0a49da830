"""Celery 5 with the Redis broker (kombu), no result backend (task_ignore_result=True).

Worker: `celery worker -P prefork -c 2` (W2/W3); `-P threads -c 50` (W4, one process). Default
prefetch multiplier (4), acks_late=False (ack on receipt: Celery's default). Mingle, gossip and
heartbeat off. Bulk: group(...).apply_async() - still one message per task, over one producer.
"""

from __future__ import annotations

from typing import Any

import common
from celery import Celery, group

DISTS = ["celery", "kombu"]
IS_ASYNC = False

app = Celery("t_celery", broker=common.BROKER_URL)
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task
def noop() -> None:
    common.mark_done()


@app.task
def lat(t: float) -> None:
    common.mark_start(t)


@app.task
def nap() -> None:
    common.nap()


_T = {"noop": noop, "lat": lat, "nap": nap}


def submit(kind: str, *args: Any) -> None:
    _T[kind].delay(*args)


def submit_bulk(n: int) -> None:
    group(noop.s() for _ in range(n)).apply_async()


def worker_cmds(io: bool) -> list[list[str]]:
    base = ["celery", "-A", "t_celery", "worker", "-l", "WARNING", "-Q", "celery"]
    base += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    return [base + (["-P", "threads", "-c", "50"] if io else ["-P", "prefork", "-c", "2"])]


def flush() -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")


def describe() -> dict[str, Any]:
    return {
        "pool": "prefork -c 2 (W4: threads -c 50)",
        "result_backend": None,
        "prefetch_multiplier": app.conf.worker_prefetch_multiplier,
        "acks_late": app.conf.task_acks_late,
    }


def durability() -> tuple[bool, str]:
    return common.redis_durability()
