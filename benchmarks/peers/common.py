"""Side channel shared by every peer's task functions and the driver (peer venvs only).

Completions and start times go to a *separate* redis-server (PEER_SIDE_URL, no persistence), so
(a) the side channel never fsyncs even when the broker runs with appendfsync always, and (b) the
broker's single thread does not also serve the counters. Every task costs exactly one side-channel
round trip (INCR, or RPUSH+INCR in one pipeline for W3): the same for every peer.
"""

from __future__ import annotations

import os
import time

import redis

BROKER_URL = os.environ.get("PEER_BROKER_URL", "redis://127.0.0.1:6390/0")
SIDE_URL = os.environ.get("PEER_SIDE_URL", "redis://127.0.0.1:6392/0")
SIDE = redis.Redis.from_url(SIDE_URL)  # redis-py re-creates its connections after a fork

DONE = "bench:done"
LAT = "bench:lat"


def broker_host_port(url: str = BROKER_URL) -> tuple[str, int]:
    hostport = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = hostport.partition(":")
    return host, int(port or 6379)


def mark_done() -> None:
    SIDE.incr(DONE)


def mark_start(t_submit: float) -> None:
    """W3: record submit->start (seconds) and count the task, in one round trip."""
    t = time.time()
    p = SIDE.pipeline(transaction=False)
    p.rpush(LAT, t - t_submit)
    p.incr(DONE)
    p.execute()


def nap() -> None:
    """W4 body for thread/process workers: 10 ms of blocking sleep."""
    time.sleep(0.01)
    SIDE.incr(DONE)


def reset() -> None:
    SIDE.delete(DONE, LAT)


def done() -> int:
    return int(SIDE.get(DONE) or 0)


def latencies() -> list[float]:
    return [float(x) for x in SIDE.lrange(LAT, 0, -1)]


def _s(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def redis_durability() -> tuple[bool, str]:
    """Read the broker's own persistence settings back (the harness starts it, but check)."""
    r = redis.Redis.from_url(BROKER_URL)
    try:
        aof = _s(r.config_get("appendonly")["appendonly"])
        fsync = _s(r.config_get("appendfsync")["appendfsync"])
        save = _s(r.config_get("save")["save"]) or "off"
    finally:
        r.close()
    if aof == "yes" and fsync == "always":
        return True, (
            "Redis appendonly yes + appendfsync always: the AOF is written and fsynced before "
            "Redis replies to the submit (one fsync per event-loop iteration, shared by clients)"
        )
    return False, (
        f"Redis appendonly {aof} (appendfsync {fsync}), RDB save {save!r}: the submit is "
        "acknowledged from memory, nothing is fsynced before the reply"
    )


def redis_server_version() -> str:
    r = redis.Redis.from_url(BROKER_URL)
    try:
        return _s(r.info("server")["redis_version"])
    finally:
        r.close()
