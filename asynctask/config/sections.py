"""The ``Config`` and its sections: frozen dataclasses whose defaults are the defaults of an
empty file (``config/asynctask.toml`` documents each key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from asynctask.core.allowlist import RunPolicy
from asynctask.core.limits import SchedulerSettings
from asynctask.core.sharding import ShardSettings
from asynctask.resources import Limits

#: Seconds in a day: ``history_days`` is in days, ``retention`` (its older spelling) a duration.
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    durability: Literal["full", "normal"] = "full"
    drain: float = 30.0
    max_frame: int = 16 * 1024 * 1024
    max_payload: int = 1024 * 1024
    history_days: float = 7.0  # finished tasks created longer ago are deleted; 0: never
    history_max: int = 1_000_000  # finished tasks kept per tenant (the oldest go); 0: no cap
    log_level: str = "info"
    log_format: str = "text"  # "json": one object a line (asynctask.logs)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """``[server]``: what a client connection may hold (docs/contract.md, "Robustness")."""

    handshake_timeout: float = 5.0  # hello must come this soon after connecting
    idle_timeout: float = 600.0  # a connection with no request this long is closed
    max_connections_per_user: int = 256  # open at once per peer uid (tasks: per tenant)


@dataclass(frozen=True, slots=True)
class WorkersConfig:
    min_workers: int = 2
    max_workers: int = 8
    timeout: float = 600.0
    kill_grace: float = 2.0
    max_tasks_per_worker: int = 0  # 0: never recycle
    paths: tuple[str, ...] = ()
    concurrency: int = 1  # attempts one worker process runs at once
    max_log_bytes: int = 1024 * 1024  # stdout+stderr kept per attempt
    idle_timeout: float = 60.0  # workers above min_workers idle this long are retired
    max_worker_rss: int = 0  # a worker above this RSS after an attempt is replaced; 0: never
    max_worker_output: int = 1024 * 1024  # fd 1/2 output kept per worker in logs/workers.log
    memory_budget: int = 0  # all workers' RSS above which the pool does not grow; 0: no budget
    limits: Limits = field(default_factory=Limits)  # every attempt's, unless it sets its own
    sandbox: str = "auto"  # "auto": cgroups where writable, rlimits too; "rlimits": rlimits only
    env_pass: tuple[str, ...] = ()  # names copied from the daemon's environment to workers'
    env: Mapping[str, str] = field(default_factory=dict)  # [workers.env]: set in workers'
    python: str = ""  # the workers' interpreter; "": the daemon's
    uids: tuple[int, int] = (61000, 61999)  # per-tenant worker uids (``isolation.py``)
    log_level: str = "info"  # task code's logging kept in its attempt's log from this level
    #: ``[tenants.<t>] user``: the uid a tenant's workers run as, instead of one from ``uids``.
    tenant_users: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetryConfig:
    retries: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 60.0


@dataclass(frozen=True, slots=True)
class AuthConfig:
    admins: tuple[int, ...] = ()  # uids; empty: the daemon's own user
    users: Mapping[int, frozenset[str]] = field(default_factory=dict)  # uid -> tenants


@dataclass(frozen=True, slots=True)
class FunctionDefaults:
    """Submit-time defaults of one function (``[functions."mod:fn"]``); ``None``: not set."""

    queue: str | None = None  # a queue name, or "exclusive" for a queue of its own
    retries: int | None = None
    timeout: float | None = None
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class ObserveConfig:
    """``[metrics]`` and ``[tracing]``."""

    http: tuple[str, int] | None = None  # loopback host and port of the /metrics listener
    token_file: str | None = None  # the listener's bearer token; None: <home>/metrics.token
    opentelemetry: str = "off"  # "otlp" or "console": export a span per attempt


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """``[store]``: where the task record lives (docs/scale-out.md). Read once at start."""

    url: str | None = None  # a postgresql:// URL; None: the SQLite file in the home
    partitions: int = 64  # tenants hash onto this many (validated; not used by the daemon yet)
    lease: float = 10.0  # a partition lease's length (validated; not used by the daemon yet)


@dataclass(frozen=True, slots=True)
class Config:
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    scheduler: SchedulerSettings = field(default_factory=lambda: _default_scheduler())
    functions: Mapping[str, FunctionDefaults] = field(default_factory=dict)
    observe: ObserveConfig = field(default_factory=ObserveConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    #: What each tenant may run in multi-user mode (``core/allowlist.py``).
    run_policy: RunPolicy = field(default_factory=RunPolicy)
    source: str | None = None


def _default_scheduler() -> SchedulerSettings:
    """The scheduler settings of an empty file: one worker shard per default worker."""
    workers = WorkersConfig()
    return SchedulerSettings(
        capacity=workers.max_workers, sharding=ShardSettings(shards=workers.min_workers)
    )
