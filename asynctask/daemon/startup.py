"""The steps of start-up that are not the daemon's state: claiming the home, opening the store
and reporting what it found, the sandbox, the pool's settings, the pid file and the "serving"
line. Apart from ``root.py`` so that the composition root reads as the order of start-up, not
its details."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING

from asynctask import __version__
from asynctask.config import Config
from asynctask.executor.cgroups import CgroupSupport, detect_cgroups, sweep_stale
from asynctask.executor.pool import PoolConfig
from asynctask.home import UMASK, lock_home, open_private, prepare_home, verify_home
from asynctask.isolation import Isolation
from asynctask.paths import DATABASE_NAME, LOG_DIR, PID_NAME, RUN_DIR
from asynctask.store import Store, TaskStore, open_store
from asynctask.store.open import redacted

if TYPE_CHECKING:
    from asynctask.daemon.root import Daemon

log = logging.getLogger("asynctask.daemon")

#: Paths named in the start-up line about modes tightened (the count is always complete).
TIGHTENED_LISTED = 10


def claim_home(home: Path, shared: bool, sqlite: bool = True) -> IO[str]:
    """Make the home private and lock it; the lock comes before any mode change, since another
    daemon may be serving from it. Returns the lock, held for the daemon's life."""
    os.umask(UMASK)  # process-wide: whatever a library creates in the home is private
    verify_home(home)
    lock_file = lock_home(home)
    try:
        tightened = prepare_home(home, shared=shared, sqlite=sqlite)
    except BaseException:
        lock_file.close()
        raise
    if tightened:
        log.warning(
            "tightened %d path(s) in the home that others could read (an older version's "
            "modes): %s%s",
            len(tightened), "; ".join(tightened[:TIGHTENED_LISTED]),
            " ..." if len(tightened) > TIGHTENED_LISTED else "",
            extra={"event": "tightened", "paths": len(tightened)},
        )  # fmt: skip
    return lock_file


def store_location(config: Config, home: Path) -> str:
    """``[store] url``, else the SQLite file in the home (README, "Scale-out")."""
    return config.store.url or str(home / DATABASE_NAME)


async def open_daemon_store(config: Config, home: Path) -> TaskStore:
    """The daemon's store: SQLite in the home, or the PostgreSQL database ``[store] url`` names.

    On PostgreSQL any number of daemons may share the database: each serves the partitions
    it leases (``daemon/cluster.py``), and the writer fences every task write on those
    leases. Each holds the schema's writers' lock shared, so a ``migrate-store`` (which
    holds it exclusive) never copies beside a daemon. SQLite is the home's alone:
    ``claim_home`` locks the home."""
    if config.store.url is None:
        return await open_store(store_location(config, home), config.daemon.durability)
    return await open_store(config.store.url, config.daemon.durability, lock="daemon")


def log_store_health(store: TaskStore) -> None:
    """What opening the store found in its WAL: nothing to undo, but an operator must know.
    Only SQLite keeps a WAL of its own to check; PostgreSQL recovers its own."""
    if not isinstance(store, Store):
        return
    if store.wal_unchecked is not None:
        log.warning("the WAL could not be checked for damage at start-up: %s",
                    store.wal_unchecked)  # fmt: skip
    loss = store.wal_loss
    if loss is not None:
        log.error("DATA LOSS in %s: %s", store.path, loss,
                  extra={"event": "wal_damaged", "commits": loss.commits})  # fmt: skip


def open_sandbox(sandbox: str) -> CgroupSupport:
    """The cgroups the workers can be contained by, after removing those a daemon that died
    left behind; a warning when only rlimits are left."""
    cgroups = detect_cgroups(force_rlimits_only=sandbox == "rlimits")
    stale = sweep_stale(cgroups)
    if stale:
        log.info("removed %d worker cgroups left by a daemon that died", stale)
    if sandbox == "rlimits" or cgroups.version == "none":
        log.warning("sandbox: %s", cgroups.description)
    else:
        log.info("sandbox: %s", cgroups.description)
    return cgroups


def pool_config(
    config: Config,
    isolation: Isolation,
    cgroups: CgroupSupport,
    python: str,
    shards: int,
    home: Path,
    socket_path: Path,
) -> PoolConfig:
    """The worker pool's settings from ``[workers]`` and what start-up chose."""
    workers = config.workers
    return PoolConfig(
        python=python,
        sandbox=isolation.spec_for,
        bind_at_start=isolation.mode == "uids",
        workers=workers.min_workers,
        cwd=os.getcwd(),
        paths=workers.paths,
        output_path=str(home / LOG_DIR / "workers.log"),
        max_output=workers.max_worker_output,
        kill_grace=workers.kill_grace,
        max_tasks_per_worker=workers.max_tasks_per_worker or None,
        shards=shards,
        concurrency=workers.concurrency,
        stack_dir=str(home / RUN_DIR),  # made and checked by prepare_home
        limits=workers.limits,
        cgroups=cgroups,
        max_workers=workers.max_workers,
        idle_timeout=workers.idle_timeout,
        memory_budget=workers.memory_budget,
        max_worker_rss=workers.max_worker_rss,
        socket_path=str(socket_path),
        env_pass=workers.env_pass,
        env=workers.env,
        log_level=workers.log_level,
        reap_orphans=True,
    )


def write_pid(home: Path) -> None:
    pid_fd = open_private(home / PID_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(pid_fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(pid_fd)


def log_started(daemon: Daemon, recovered: int, recover_seconds: float, seconds: float) -> None:
    """The one "serving" line: what a supervisor's log shows when the daemon is ready."""
    config = daemon.config
    workers = config.workers
    log.info(
        "serving on %s (home %s, store %s, durability=%s, %d workers): recovered %d live "
        "tasks in %.0f ms, start-up %.0f ms",
        daemon.socket_path, daemon.home, redacted(store_location(config, daemon.home)),
        config.daemon.durability, workers.min_workers,
        recovered, recover_seconds * 1000, seconds * 1000,
        extra={
            "event": "started",
            "pid": os.getpid(),
            "version": __version__,
            "socket": str(daemon.socket_path),
            "home": str(daemon.home),
            "store": "postgresql" if config.store.url else "sqlite",
            "workers": workers.min_workers,
            "max_workers": workers.max_workers,
            "recovered": recovered,
            "recover_seconds": round(recover_seconds, 3),
            "seconds": round(seconds, 3),
        },
    )  # fmt: skip
