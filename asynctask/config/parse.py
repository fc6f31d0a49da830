"""Reading the file: ``load_config`` and ``parse_config``, one function per section."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from asynctask.config.scheduler import _scheduler
from asynctask.config.sections import (
    DAY,
    AuthConfig,
    Config,
    DaemonConfig,
    ObserveConfig,
    RetryConfig,
    ServerConfig,
    StoreConfig,
    WebConfig,
    WorkersConfig,
)
from asynctask.config.values import (
    _absolute_path,
    _bool,
    _choice,
    _duration,
    _env_names,
    _env_table,
    _get,
    _http_address,
    _int,
    _number,
    _only,
    _paths,
    _patterns,
    _positive_duration,
    _python,
    _section,
    _size,
    _store_url,
    _uid,
    _uid_range,
    _users,
    is_loopback,
    listen_address,
)
from asynctask.core.allowlist import RunPolicy, TenantRights
from asynctask.errors import ConfigError
from asynctask.model import is_name
from asynctask.resources import RESOURCE_KEYS, Limits


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate ``path``; ``None`` or a missing default file gives the defaults."""
    if path is None:
        return Config()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    return parse_config(data, source=str(path))


def default_config_path(home: Path) -> Path | None:
    candidate = home / "asynctask.toml"
    return candidate if candidate.exists() else None


_TOP_KEYS = {
    "daemon", "server", "workers", "retry", "auth", "scheduler", "aimd", "tenants", "queues",
    "functions", "metrics", "tracing", "store", "web",
}  # fmt: skip
_DAEMON_KEYS = {
    "durability", "drain", "max_frame", "max_payload", "log_level", "log_format", "history_days",
    "history_max", "retention",
}  # fmt: skip
_WORKERS_KEYS = {
    "min_workers", "max_workers", "timeout", "kill_grace", "max_tasks_per_worker", "paths",
    "concurrency", "max_log_bytes", "idle_timeout", "memory_budget", "max_worker_rss",
    "max_worker_output", "sandbox", "env_pass", "env", "python", "uids", "log_level",
    *RESOURCE_KEYS,
}  # fmt: skip
_RETRY_KEYS = {"retries", "backoff_base", "backoff_cap"}
_AUTH_KEYS = {"admins", "users"}
_SERVER_KEYS = {"handshake_timeout", "idle_timeout", "max_connections_per_user"}
_STORE_KEYS = {"url", "partitions", "lease"}
#: ``[store] partitions``: the scale-out plan's bound (docs/scale-out.md, "Limits").
MAX_PARTITIONS = 65536
#: ``[store] lease``: at least two of the safety margin (1 s, docs/scale-out.md), at most an hour.
LEASE_RANGE = (2.0, 3600.0)


def parse_config(data: Mapping[str, Any], source: str | None = None) -> Config:
    """Validate a TOML document (``tomllib``'s dict) into a ``Config``; ``ConfigError`` names the
    first bad key. The sections are read in a fixed order, so a file's first error is stable."""
    _only(data, "", _TOP_KEYS)
    daemon, workers, retry, auth = (
        _section(data, name) for name in ("daemon", "workers", "retry", "auth")
    )
    _only(daemon, "daemon.", _DAEMON_KEYS)
    _only(workers, "workers.", _WORKERS_KEYS)
    _only(retry, "retry.", _RETRY_KEYS)
    _only(auth, "auth.", _AUTH_KEYS)
    daemon_cfg = _daemon(daemon)
    server_cfg = _server(_section(data, "server"))
    workers_cfg = _workers(workers, data)
    retry_cfg = _retry(retry)
    auth_cfg = _auth(auth)
    scheduler_cfg, function_defaults = _scheduler(
        data, workers_cfg.max_workers, workers_cfg.min_workers
    )
    return Config(
        daemon=daemon_cfg,
        server=server_cfg,
        workers=workers_cfg,
        retry=retry_cfg,
        auth=auth_cfg,
        scheduler=scheduler_cfg,
        functions=function_defaults,
        observe=_observe(_section(data, "metrics"), _section(data, "tracing")),
        store=_store(_section(data, "store")),
        web=_web(_section(data, "web")),
        run_policy=_run_policy(_section(data, "tenants"), bool(auth_cfg.users), function_defaults),
        source=source,
    )


def _daemon(daemon: Mapping[str, Any]) -> DaemonConfig:
    """``[daemon]``, its keys already checked."""
    d = DaemonConfig()
    durability = _get(daemon, "daemon.durability", str(d.durability), _choice("full", "normal"))
    daemon_cfg = DaemonConfig(
        durability="full" if durability == "full" else "normal",
        drain=_get(daemon, "daemon.drain", d.drain, _duration),
        max_frame=_get(daemon, "daemon.max_frame", d.max_frame, _size(1024)),
        max_payload=_get(daemon, "daemon.max_payload", d.max_payload, _size(1)),
        history_days=_history_days(daemon, d.history_days),
        history_max=_get(daemon, "daemon.history_max", d.history_max, _int(0, 2**62)),
        log_level=_get(
            daemon, "daemon.log_level", d.log_level, _choice("debug", "info", "warning", "error")
        ),
        log_format=_get(daemon, "daemon.log_format", d.log_format, _choice("text", "json")),
    )
    if daemon_cfg.max_payload >= daemon_cfg.max_frame:
        raise ConfigError("daemon.max_payload must be smaller than daemon.max_frame")
    return daemon_cfg


def _store(store: Mapping[str, Any]) -> StoreConfig:
    """``[store]``. ``url`` is checked outside ``_get``, whose message repeats the bad value:
    a URL may hold a password."""
    _only(store, "store.", _STORE_KEYS)
    st = StoreConfig()
    url = _store_url(store["url"]) if "url" in store else st.url
    lease = _get(store, "store.lease", st.lease, _duration)
    low, high = LEASE_RANGE
    if not low <= lease <= high:
        raise ConfigError(f"bad value for store.lease: {lease:g}s: must be between 2s and 1h")
    return StoreConfig(
        url=url,
        partitions=_get(store, "store.partitions", st.partitions, _int(1, MAX_PARTITIONS)),
        lease=lease,
    )


def _server(server: Mapping[str, Any]) -> ServerConfig:
    """``[server]``."""
    _only(server, "server.", _SERVER_KEYS)
    sv = ServerConfig()
    return ServerConfig(
        handshake_timeout=_get(
            server, "server.handshake_timeout", sv.handshake_timeout, _positive_duration
        ),
        idle_timeout=_get(server, "server.idle_timeout", sv.idle_timeout, _positive_duration),
        max_connections_per_user=_get(
            server, "server.max_connections_per_user", sv.max_connections_per_user, _int(1, 10**6)
        ),
    )


def _workers(workers: Mapping[str, Any], data: Mapping[str, Any]) -> WorkersConfig:
    """``[workers]``, its keys already checked, and each ``[tenants.<t>] user`` (in ``data``)."""
    w = WorkersConfig()
    workers_cfg = WorkersConfig(
        min_workers=_get(workers, "workers.min_workers", w.min_workers, _int(1, 1024)),
        max_workers=_get(workers, "workers.max_workers", w.max_workers, _int(1, 1024)),
        timeout=_get(workers, "workers.timeout", w.timeout, _duration),
        kill_grace=_get(workers, "workers.kill_grace", w.kill_grace, _duration),
        max_tasks_per_worker=_get(
            workers, "workers.max_tasks_per_worker", w.max_tasks_per_worker, _int(0, 10**9)
        ),
        paths=_get(workers, "workers.paths", w.paths, _paths),
        concurrency=_get(workers, "workers.concurrency", w.concurrency, _int(1, 1024)),
        max_log_bytes=_get(workers, "workers.max_log_bytes", w.max_log_bytes, _size(0)),
        limits=_limits(workers),
        idle_timeout=_get(workers, "workers.idle_timeout", w.idle_timeout, _duration),
        memory_budget=_get(workers, "workers.memory_budget", w.memory_budget, _size(0)),
        max_worker_rss=_get(workers, "workers.max_worker_rss", w.max_worker_rss, _size(0)),
        max_worker_output=_get(workers, "workers.max_worker_output", w.max_worker_output, _size(0)),
        sandbox=_get(workers, "workers.sandbox", w.sandbox, _choice("auto", "rlimits")),
        env_pass=_get(workers, "workers.env_pass", w.env_pass, _env_names),
        env=_env_table(workers.get("env", {})),
        python=_get(workers, "workers.python", w.python, _python),
        uids=_get(workers, "workers.uids", w.uids, _uid_range),
        log_level=_get(
            workers,
            "workers.log_level",
            w.log_level,
            _choice("debug", "info", "warning", "error", "off"),
        ),
        tenant_users=_tenant_users(_section(data, "tenants")),
    )
    if workers_cfg.max_workers < workers_cfg.min_workers:
        raise ConfigError("workers.max_workers must be at least workers.min_workers")
    return workers_cfg


def _retry(retry: Mapping[str, Any]) -> RetryConfig:
    """``[retry]``, its keys already checked."""
    r = RetryConfig()
    return RetryConfig(
        retries=_get(retry, "retry.retries", r.retries, _int(0, 1000)),
        backoff_base=_get(retry, "retry.backoff_base", r.backoff_base, _duration),
        backoff_cap=_get(retry, "retry.backoff_cap", r.backoff_cap, _duration),
    )


def _auth(auth: Mapping[str, Any]) -> AuthConfig:
    """``[auth]``, its keys already checked: the admins, and each user's tenants."""
    admins: tuple[int, ...] = _get(auth, "auth.admins", tuple[int, ...](), _users)
    users_raw = auth.get("users", {})
    if not isinstance(users_raw, dict):
        raise ConfigError("auth.users must be a table of user = [tenants]")
    users: dict[int, frozenset[str]] = {}
    for user, tenants in users_raw.items():
        uid = _uid(user, f"auth.users.{user}")
        if not isinstance(tenants, list) or not all(
            isinstance(t, str) and is_name(t) for t in tenants
        ):
            raise ConfigError(f"auth.users.{user} must be a list of tenant names")
        users[uid] = frozenset(tenants)
    return AuthConfig(admins=admins, users=users)


def _history_days(daemon: Mapping[str, Any], default: float) -> float:
    """``history_days``, or ``retention``: its older spelling, a duration (``"7d"``) that
    existing files still use. Setting both is refused rather than one silently winning."""
    if "history_days" in daemon and "retention" in daemon:
        raise ConfigError(
            "daemon.retention is the older spelling of daemon.history_days: set only one"
        )
    if "retention" in daemon:
        return _get(daemon, "daemon.retention", default * DAY, _duration) / DAY
    return _get(daemon, "daemon.history_days", default, _number(0, 1e6))


def _limits(workers: Mapping[str, Any]) -> Limits:
    try:
        return Limits.from_wire({key: workers[key] for key in RESOURCE_KEYS if key in workers})
    except ValueError as exc:
        raise ConfigError(f"workers: {exc}") from None


def _tenant_users(tenants: Mapping[str, Any]) -> dict[str, int]:
    """``[tenants.<t>] user`` of each tenant: never root, and one tenant's own (not ``*``)."""
    found: dict[str, int] = {}
    for name, section in tenants.items():
        if not isinstance(section, dict) or "user" not in section:
            continue
        path = f"tenants.{name}.user"
        if name == "*":
            raise ConfigError(f"{path}: a user is one tenant's; every tenant cannot share it")
        uid = _uid(section["user"], path)
        if uid == 0:
            raise ConfigError(f"{path}: tasks never run as root")
        found[str(name)] = uid
    return found


def _run_policy(
    tenants: Mapping[str, Any], multi_user: bool, declared: Mapping[str, object]
) -> RunPolicy:
    """``[tenants.<t>] functions`` and ``commands``, and the ``[functions]`` sections: what each
    tenant may run in multi-user mode (accepted, and without effect, in single-user mode)."""
    rights = {str(name): _rights(_section(tenants, name), f"tenants.{name}") for name in tenants}
    default = rights.pop("*", TenantRights())
    return RunPolicy(
        multi_user=multi_user, declared=frozenset(declared), default=default, tenants=rights
    )


def _rights(raw: Mapping[str, Any], path: str) -> TenantRights:
    return TenantRights(
        functions=_get(raw, f"{path}.functions", None, _patterns),
        commands=_get(raw, f"{path}.commands", None, _bool),
    )


def _observe(metrics: Mapping[str, Any], tracing: Mapping[str, Any]) -> ObserveConfig:
    _only(metrics, "metrics.", {"http", "token_file", "allow_remote"})
    _only(tracing, "tracing.", {"opentelemetry"})
    allow_remote = _get(metrics, "metrics.allow_remote", False, _bool)
    http = _get(metrics, "metrics.http", None, _http_address)
    if http is not None and not allow_remote and not is_loopback(http[0]):
        # The bearer token is the listener's only access control and travels in clear text:
        # reachable from other machines only when the operator says so.
        raise ConfigError(
            f"bad value for metrics.http: {http[0]} is not a loopback address: the metrics "
            "listener binds to loopback only (127.0.0.1, ::1) unless [metrics] allow_remote "
            "= true (its bearer token then crosses the network in clear text: keep it on a "
            "private network or behind a TLS proxy)"
        )
    return ObserveConfig(
        http=http,
        token_file=_get(metrics, "metrics.token_file", None, _absolute_path),
        opentelemetry=_get(
            tracing, "tracing.opentelemetry", "off", _choice("off", "otlp", "console")
        ),
        allow_remote=allow_remote,
    )


#: ``[web] token_ttl``: at least a minute, at most 30 days (a login is renewed by running
#: ``asynctask web-token`` again).
TOKEN_TTL_RANGE = (60.0, 30 * DAY)
DEFAULT_TOKEN_TTL = 12 * 3600.0


def _web(web: Mapping[str, Any]) -> WebConfig:
    """``[web]``: the console's address, loopback unless ``allow_remote`` (the login cookie
    travels in clear text over plain HTTP), and how long a login token is valid."""
    _only(web, "web.", {"http", "allow_remote", "token_ttl"})
    allow_remote = _get(web, "web.allow_remote", False, _bool)
    http = _get(web, "web.http", None, listen_address("127.0.0.1:8080"))
    if http is not None and not allow_remote and not is_loopback(http[0]):
        raise ConfigError(
            f"bad value for web.http: {http[0]} is not a loopback address: the web console "
            "binds to loopback only (127.0.0.1, ::1) unless [web] allow_remote = true (its "
            "login cookie then crosses the network in clear text: put a TLS proxy in front)"
        )
    ttl = _get(web, "web.token_ttl", DEFAULT_TOKEN_TTL, _positive_duration)
    low, high = TOKEN_TTL_RANGE
    if not low <= ttl <= high:
        raise ConfigError(f"bad value for web.token_ttl: {ttl:g}s is not between 1m and 30d")
    return WebConfig(http=http, allow_remote=allow_remote, token_ttl=ttl)
