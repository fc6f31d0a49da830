"""Huey 3 with SqliteHuey: embedded SQLite (WAL), no broker process.

Settings: SqliteHuey(fsync=None, journal_mode='wal') - huey's defaults. fsync=None means huey does
not touch PRAGMA synchronous, so SQLite's compiled default applies (FULL=2 with Debian's SQLite,
also in WAL mode): every enqueue is an autocommit transaction that fsyncs the WAL before it
returns. `describe()` reads the pragma back. PEER_HUEY_FSYNC=0 sets fsync=False (synchronous=OFF).
Consumer: `huey_consumer -w 2 -k process` (W2/W3), `-w 50 -k thread` (W4, one process).
Polling: the consumer polls SQLite; huey's defaults are -d 0.1 (initial delay), -b 1.15 (backoff),
-m 10 (max delay). PEER_VARIANT=tuned (default here) uses -d 0.01 -m 0.1; PEER_VARIANT=defaults
keeps huey's. No bulk enqueue API.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import common
from huey import SqliteHuey

DISTS = ["huey"]
IS_ASYNC = False

_fs = os.environ.get("PEER_HUEY_FSYNC")
FSYNC = None if _fs in (None, "") else _fs == "1"
DB = os.environ.get("HUEY_DB", "/tmp/peerbench-huey.db")
huey = SqliteHuey("bench", filename=DB, fsync=FSYNC)
VARIANT = os.environ.get("PEER_VARIANT", "tuned")


@huey.task()
def noop() -> None:
    common.mark_done()


@huey.task()
def lat(t: float) -> None:
    common.mark_start(t)


@huey.task()
def nap() -> None:
    common.nap()


_T = {"noop": noop, "lat": lat, "nap": nap}


def submit(kind: str, *args: Any) -> None:
    _T[kind](*args)


def worker_cmds(io: bool) -> list[list[str]]:
    base = ["huey_consumer", "t_huey.huey", "-q"]
    if VARIANT == "tuned":
        base += ["-d", "0.01", "-m", "0.1"]
    return [base + (["-w", "50", "-k", "thread"] if io else ["-w", "2", "-k", "process"])]


def flush() -> None:
    huey.flush()


def _pragmas() -> tuple[int, str]:
    conn = huey.storage.conn
    sync = conn.execute("pragma synchronous").fetchone()[0]
    mode = conn.execute("pragma journal_mode").fetchone()[0]
    return int(sync), str(mode)


def describe() -> dict[str, Any]:
    sync, mode = _pragmas()
    return {
        "sqlite_synchronous": sync,
        "journal_mode": mode,
        "fsync_arg": FSYNC,
        "polling": VARIANT,
        "sqlite": sqlite3.sqlite_version,
    }


def durability() -> tuple[bool, str]:
    sync, mode = _pragmas()
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    what = f"SQLite journal_mode={mode}, synchronous={names.get(sync, sync)}"
    durable = sync >= 2 if mode == "wal" else sync >= 1  # WAL + NORMAL syncs at checkpoints only
    if durable:
        return True, f"{what}: each enqueue is an autocommit transaction, fsynced before it returns"
    return False, f"{what}: an enqueue returns before its commit is fsynced"
