"""procrastinate 3.10 on PostgreSQL (psycopg 3), the PostgreSQL Python peer (issue 16).

Broker: the private cluster run.py starts through pgserver.py (the tests' ``tests/pgcluster.py``:
Unix socket, no TCP, ``fsync=on``, ``synchronous_commit=on``), so a deferred job has been
committed and fsynced before ``defer_async`` returns, as with our daemon's PostgreSQL store and
durability full. Its database is new with the cluster; ``astartup`` applies procrastinate's
schema there once (the bench process only: workers use the CLI and never call it).
PEER_PG_URL is the libpq URL over the socket.

Worker: ``procrastinate --app=t_procrastinate.app worker``, started twice: 2 processes with
procrastinate's default concurrency 1 each, i.e. 2 jobs at a time, as our daemon's 2 workers run
one task each. Defaults otherwise: LISTEN/NOTIFY on, polling every 5 s as a fallback, finished
jobs kept (``--delete-jobs`` never). W4 (I/O): ``--concurrency 25`` per process (50 in all).
PEER_WORKER_CONCURRENCY=N passes ``--concurrency N`` for W2/W3 too: more jobs in flight per
process than our daemon's one task per worker, to see how much of procrastinate's W2 is waiting
on round trips and commits rather than CPU.
Tasks are async (a sync task would run in a thread); the side-channel call in them is the same
sync INCR as every peer's.

W1 bulk: ``Task.batch_defer_async(*kwargs)``, procrastinate's documented bulk API: one
``procrastinate_defer_jobs_v1`` call (one statement, one transaction) per batch.
PEER_BULK_CHUNK jobs a batch (default 20,000: the whole W1 in one call, the fastest; our daemon's
W1 bulk is ``submit_many`` of 100, i.e. 200 commits).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import common
import procrastinate
import psycopg

DISTS = ["procrastinate", "psycopg", "psycopg-binary", "psycopg-pool"]
IS_ASYNC = True

PG_URL = os.environ.get("PEER_PG_URL", "")
BULK_CHUNK = int(os.environ.get("PEER_BULK_CHUNK", "20000"))
CONCURRENCY = os.environ.get("PEER_WORKER_CONCURRENCY")  # None: procrastinate's default, 1

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=PG_URL))


@app.task(name="noop")
async def noop() -> None:
    common.mark_done()


@app.task(name="lat")
async def lat(t: float) -> None:
    common.mark_start(t)


@app.task(name="nap")
async def nap() -> None:
    await asyncio.sleep(0.01)
    common.mark_done()


TASKS: dict[str, Any] = {"noop": noop, "lat": lat, "nap": nap}


async def _query(sql: str) -> list[dict[str, Any]]:
    return await app.connector.execute_query_all_async(query=sql)


async def astartup() -> None:
    await app.open_async()
    rows = await _query("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present")
    if not rows[0]["present"]:
        await app.schema_manager.apply_schema_async()


async def ashutdown() -> None:
    await app.close_async()


async def asubmit(kind: str, *args: Any) -> None:
    if kind == "lat":
        await lat.defer_async(t=args[0])
    else:
        await TASKS[kind].defer_async()


async def asubmit_bulk(n: int) -> None:
    for start in range(0, n, BULK_CHUNK):
        await noop.batch_defer_async(*({} for _ in range(min(BULK_CHUNK, n - start))))


def worker_cmds(io: bool) -> list[list[str]]:
    cmd = ["procrastinate", "--app=t_procrastinate.app", "worker"]
    if io:
        cmd += ["--concurrency", "25"]
    elif CONCURRENCY:
        cmd += ["--concurrency", CONCURRENCY]
    return [cmd, list(cmd)]


async def aflush() -> None:
    await app.connector.execute_query_async(
        query="TRUNCATE procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs"
    )


def describe() -> dict[str, Any]:
    return {
        "processes": 2,
        "concurrency": f"{CONCURRENCY or 1} per process (default 1; W4: 25)",
        "listen_notify": True,
        "delete_jobs": "never (default)",
        "bulk": f"batch_defer_async, {BULK_CHUNK} jobs a call",
    }


def durability() -> tuple[bool, str]:
    async def read() -> dict[str, str]:
        conn = await psycopg.AsyncConnection.connect(PG_URL)
        try:
            out = {}
            for name in ("fsync", "synchronous_commit", "full_page_writes", "server_version"):
                cur = await conn.execute(f"SHOW {name}")
                row = await cur.fetchone()
                out[name] = str(row[0]) if row else "?"
            return out
        finally:
            await conn.close()

    s = asyncio.run(read())
    durable = s["fsync"] == "on" and s["synchronous_commit"] == "on"
    how = (
        f"PostgreSQL {s['server_version']}: fsync={s['fsync']}, synchronous_commit="
        f"{s['synchronous_commit']}, full_page_writes={s['full_page_writes']}"
    )
    if durable:
        how += ": a defer returns after its transaction's WAL is fsynced"
    return durable, how
