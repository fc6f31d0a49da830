"""Configuration: a TOML file turned into a frozen, validated ``Config``.

Every key has a default (no file means the defaults), every key is documented in
``config/asynctask.toml`` - and a test checks that file loads to exactly these defaults, so the
two cannot drift. Unknown keys and bad values are refused with the key's full path and what was
expected; the daemon does not start on a bad file. Durations and sizes are written as users write
them elsewhere (``"30s"``, ``"16M"``).
"""

from __future__ import annotations

import os
import pwd
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from asynctask.config.reload import Reload, changed_keys, reconcile
from asynctask.config.sections import (
    DAY,
    AuthConfig,
    Config,
    DaemonConfig,
    FunctionDefaults,
    ObserveConfig,
    RetryConfig,
    ServerConfig,
    WorkersConfig,
)
from asynctask.core.allowlist import RunPolicy, TenantRights, pattern_problem
from asynctask.core.limits import (
    AimdSettings,
    FunctionLimits,
    QueueLimits,
    SchedulerSettings,
    TenantLimits,
)
from asynctask.core.sharding import CONFINEMENTS, ShardSettings
from asynctask.errors import ConfigError
from asynctask.model import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    is_function_ref,
    is_name,
    parse_duration,
    parse_rate,
    parse_size,
)
from asynctask.resources import RESOURCE_KEYS, Limits

__all__ = [
    "DAY",
    "AuthConfig",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "FunctionDefaults",
    "ObserveConfig",
    "Reload",
    "RetryConfig",
    "ServerConfig",
    "WorkersConfig",
    "changed_keys",
    "default_config_path",
    "load_config",
    "parse_config",
    "reconcile",
]

T = TypeVar("T")


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


def parse_config(data: Mapping[str, Any], source: str | None = None) -> Config:
    _only(
        data,
        "",
        {
            "daemon",
            "server",
            "workers",
            "retry",
            "auth",
            "scheduler",
            "aimd",
            "tenants",
            "queues",
            "functions",
            "metrics",
            "tracing",
        },
    )
    daemon = _section(data, "daemon")
    workers = _section(data, "workers")
    retry = _section(data, "retry")
    auth = _section(data, "auth")
    _only(
        daemon,
        "daemon.",
        {
            "durability",
            "drain",
            "max_frame",
            "max_payload",
            "log_level",
            "log_format",
            "history_days",
            "history_max",
            "retention",
        },
    )
    _only(
        workers,
        "workers.",
        {
            "min_workers",
            "max_workers",
            "timeout",
            "kill_grace",
            "max_tasks_per_worker",
            "paths",
            "concurrency",
            "max_log_bytes",
            "idle_timeout",
            "memory_budget",
            "max_worker_rss",
            "max_worker_output",
            "sandbox",
            "env_pass",
            "env",
            "python",
            "uids",
            *RESOURCE_KEYS,
        },
    )
    _only(retry, "retry.", {"retries", "backoff_base", "backoff_cap"})
    _only(auth, "auth.", {"admins", "users"})

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

    server = _section(data, "server")
    _only(server, "server.", {"handshake_timeout", "idle_timeout", "max_connections_per_user"})
    sv = ServerConfig()
    server_cfg = ServerConfig(
        handshake_timeout=_get(
            server, "server.handshake_timeout", sv.handshake_timeout, _positive_duration
        ),
        idle_timeout=_get(server, "server.idle_timeout", sv.idle_timeout, _positive_duration),
        max_connections_per_user=_get(
            server, "server.max_connections_per_user", sv.max_connections_per_user, _int(1, 10**6)
        ),
    )

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
        tenant_users=_tenant_users(_section(data, "tenants")),
    )
    if workers_cfg.max_workers < workers_cfg.min_workers:
        raise ConfigError("workers.max_workers must be at least workers.min_workers")

    r = RetryConfig()
    retry_cfg = RetryConfig(
        retries=_get(retry, "retry.retries", r.retries, _int(0, 1000)),
        backoff_base=_get(retry, "retry.backoff_base", r.backoff_base, _duration),
        backoff_cap=_get(retry, "retry.backoff_cap", r.backoff_cap, _duration),
    )

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
    scheduler_cfg, function_defaults = _scheduler(
        data, workers_cfg.max_workers, workers_cfg.min_workers
    )
    return Config(
        daemon=daemon_cfg,
        server=server_cfg,
        workers=workers_cfg,
        retry=retry_cfg,
        auth=AuthConfig(admins=admins, users=users),
        scheduler=scheduler_cfg,
        functions=function_defaults,
        observe=_observe(_section(data, "metrics"), _section(data, "tracing")),
        run_policy=_run_policy(_section(data, "tenants"), bool(users), function_defaults),
        source=source,
    )


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


def _patterns(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise TypeError('expected a list of patterns such as ["myapp.tasks:*", "pkg.mod:fn"]')
    for pattern in raw:
        problem = pattern_problem(pattern)
        if problem is not None:
            raise ValueError(problem)
    return tuple(raw)


def _observe(metrics: Mapping[str, Any], tracing: Mapping[str, Any]) -> ObserveConfig:
    _only(metrics, "metrics.", {"http", "token_file"})
    _only(tracing, "tracing.", {"opentelemetry"})
    return ObserveConfig(
        http=_get(metrics, "metrics.http", None, _loopback_address),
        token_file=_get(metrics, "metrics.token_file", None, _absolute_path),
        opentelemetry=_get(
            tracing, "tracing.opentelemetry", "off", _choice("off", "otlp", "console")
        ),
    )


def _absolute_path(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise TypeError("expected an absolute file path")
    path = os.path.expanduser(raw)
    if not os.path.isabs(path):
        raise ValueError("expected an absolute file path (it must not depend on the cwd)")
    return os.path.normpath(path)


_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def _loopback_address(raw: Any) -> tuple[str, int]:
    """``host:port`` on loopback (``[::1]:port`` for IPv6): a bearer token is the listener's
    only access control, so it must not be reachable from another machine either."""
    if not isinstance(raw, str):
        raise TypeError("expected host:port, e.g. 127.0.0.1:9464")
    host, sep, port_text = raw.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("expected host:port with a port from 0 to 65535, e.g. 127.0.0.1:9464")
    if host not in _LOOPBACK_HOSTS and not host.startswith("127."):
        raise ValueError("the metrics listener binds to loopback only (127.0.0.1, ::1)")
    return host, int(port_text)


_SCHEDULER_KEYS = {
    "priority_aging",
    "affinity",
    "reserve",
    "caps",
    "shards",
    "shards_per_tenant",
    "shard_confinement",
    "fault_threshold",
    "fault_ratio",
    "fault_window",
    "fault_backoff",
    "fault_backoff_max",
    "shard_probation",
}


_TENANT_KEYS = {
    "weight", "concurrency", "rate", "burst", "max_backlog", "max_backlog_bytes", "max_queues",
    "max_cron", "functions", "commands", "user",
}  # fmt: skip


_QUEUE_KEYS = {"concurrency", "rate", "burst"}


_FUNCTION_KEYS = {
    "queue", "concurrency", "rate", "burst", "aimd", "retries", "timeout", "priority"
}  # fmt: skip


def _scheduler(
    data: Mapping[str, Any], capacity: int, workers: int
) -> tuple[SchedulerSettings, dict[str, FunctionDefaults]]:
    scheduler = _section(data, "scheduler")
    _only(scheduler, "scheduler.", _SCHEDULER_KEYS)
    aimd = _section(data, "aimd")
    a = AimdSettings()
    _only(aimd, "aimd.", {"increase", "decrease", "window", "min_throttles", "throttle_ratio",
                          "idle_decay"})  # fmt: skip
    aimd_cfg = AimdSettings(
        increase=_get(aimd, "aimd.increase", a.increase, _number(0.01, 1000)),
        decrease=_get(aimd, "aimd.decrease", a.decrease, _number(0.01, 0.99)),
        window=_get(aimd, "aimd.window", a.window, _duration),
        min_throttles=_get(aimd, "aimd.min_throttles", a.min_throttles, _int(1, 10**6)),
        throttle_ratio=_get(aimd, "aimd.throttle_ratio", a.throttle_ratio, _number(0.0, 1.0)),
        idle_decay=_get(aimd, "aimd.idle_decay", a.idle_decay, _duration),
    )
    tenants_raw = _section(data, "tenants")
    defaults = TenantLimits()
    if "*" in tenants_raw:
        defaults = _tenant_limits(_section(tenants_raw, "*"), "tenants.*", defaults)
    tenants = {
        name: _tenant_limits(_section(tenants_raw, name), f"tenants.{name}", defaults)
        for name in tenants_raw
        if name != "*" and _checked_name(name, "tenants")
    }
    queues: dict[tuple[str, str], QueueLimits] = {}
    for key in _section(data, "queues"):
        tenant, sep, queue = str(key).partition("/")
        if not sep or not is_name(tenant) or not is_name(queue):
            raise ConfigError(f'queues."{key}": name queues as "<tenant>/<queue>"')
        path = f'queues."{key}"'
        raw = _section(_section(data, "queues"), key)
        _only(raw, f"{path}.", _QUEUE_KEYS)
        rate = _get(raw, f"{path}.rate", None, _rate)
        queues[(tenant, queue)] = QueueLimits(
            concurrency=_get(raw, f"{path}.concurrency", None, _int(1, 10**6)),
            rate=rate,
            burst=_get(raw, f"{path}.burst", None, _number(1, 10**9)),
        )
    functions: dict[str, FunctionLimits] = {}
    function_defaults: dict[str, FunctionDefaults] = {}
    for name in _section(data, "functions"):
        path = f'functions."{name}"'
        if not is_function_ref(name):
            raise ConfigError(f"{path}: name functions as package.module:function")
        raw = _section(_section(data, "functions"), name)
        _only(raw, f"{path}.", _FUNCTION_KEYS)
        functions[name] = FunctionLimits(
            concurrency=_get(raw, f"{path}.concurrency", None, _int(1, 10**6)),
            rate=_get(raw, f"{path}.rate", None, _rate),
            burst=_get(raw, f"{path}.burst", None, _number(1, 10**9)),
            aimd=_get(raw, f"{path}.aimd", True, _bool),
        )
        function_defaults[name] = FunctionDefaults(
            queue=_get(raw, f"{path}.queue", None, _queue_name),
            retries=_get(raw, f"{path}.retries", None, _int(0, 1000)),
            timeout=_get(raw, f"{path}.timeout", None, _duration),
            priority=_get(raw, f"{path}.priority", None, _int(PRIORITY_MIN, PRIORITY_MAX)),
        )
    settings = SchedulerSettings(
        aging=_get(scheduler, "scheduler.priority_aging", 2.0, _duration),
        affinity=_get(scheduler, "scheduler.affinity", 1.0, _duration),
        reserve=_get(scheduler, "scheduler.reserve", {}, _priority_table("scheduler.reserve")),
        caps=_get(scheduler, "scheduler.caps", {}, _priority_table("scheduler.caps")),
        capacity=capacity,
        tenant_defaults=defaults,
        tenants=tenants,
        queues=queues,
        functions=functions,
        aimd=aimd_cfg,
        sharding=_sharding(scheduler, workers),
    )
    return settings, function_defaults


def _sharding(scheduler: Mapping[str, Any], workers: int) -> ShardSettings:
    """``[scheduler]`` shard keys; ``shards = 0`` (the default) means one shard per worker."""
    d = ShardSettings()
    shards = _get(scheduler, "scheduler.shards", 0, _int(0, 1024)) or workers
    if shards > workers:
        raise ConfigError(
            f"scheduler.shards ({shards}) cannot exceed workers.min_workers ({workers}): "
            "every shard needs a worker"
        )
    return ShardSettings(
        shards=shards,
        per_tenant=_get(scheduler, "scheduler.shards_per_tenant", d.per_tenant, _int(1, 1024)),
        confinement=_get(
            scheduler, "scheduler.shard_confinement", d.confinement, _choice(*CONFINEMENTS)
        ),
        fault_threshold=_get(
            scheduler, "scheduler.fault_threshold", d.fault_threshold, _int(1, 10**6)
        ),
        fault_ratio=_get(scheduler, "scheduler.fault_ratio", d.fault_ratio, _number(0.0, 1.0)),
        fault_window=_get(scheduler, "scheduler.fault_window", d.fault_window, _positive_duration),
        fault_backoff=_get(scheduler, "scheduler.fault_backoff", d.fault_backoff, _duration),
        fault_backoff_max=_get(
            scheduler, "scheduler.fault_backoff_max", d.fault_backoff_max, _duration
        ),
        probation=_get(scheduler, "scheduler.shard_probation", d.probation, _int(0, 10**9)),
    )


def _tenant_limits(raw: Mapping[str, Any], path: str, base: TenantLimits) -> TenantLimits:
    _only(raw, f"{path}.", _TENANT_KEYS)
    return TenantLimits(
        weight=_get(raw, f"{path}.weight", base.weight, _number(0.001, 10**6)),
        concurrency=_get(raw, f"{path}.concurrency", base.concurrency, _int(1, 10**6)),
        rate=_get(raw, f"{path}.rate", base.rate, _rate),
        burst=_get(raw, f"{path}.burst", base.burst, _number(1, 10**9)),
        max_backlog=_get(raw, f"{path}.max_backlog", base.max_backlog, _int(1, 10**9)),
        max_backlog_bytes=_get(raw, f"{path}.max_backlog_bytes", base.max_backlog_bytes, _size(1)),
        max_queues=_get(raw, f"{path}.max_queues", base.max_queues, _int(1, 10**6)),
        max_cron=_get(raw, f"{path}.max_cron", base.max_cron, _int(0, 10**6)),
    )


def _checked_name(name: str, section: str) -> bool:
    if not is_name(name):
        raise ConfigError(f"{section}.{name}: not a valid name")
    return True


def _number(low: float, high: float) -> Callable[[Any], float]:
    def convert(raw: Any) -> float:
        if not isinstance(raw, int | float) or isinstance(raw, bool):
            raise TypeError("expected a number")
        if not low <= raw <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return float(raw)

    return convert


def _rate(raw: Any) -> float:
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise TypeError("expected a rate such as 100/s or 5/m")
    return parse_rate(raw)


def _bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise TypeError("expected true or false")
    return raw


def _queue_name(raw: Any) -> str:
    if not isinstance(raw, str) or not is_name(raw):
        raise TypeError('expected a queue name, or "exclusive"')
    return raw


def _priority_table(path: str) -> Callable[[Any], dict[int, int]]:
    def convert(raw: Any) -> dict[int, int]:
        if not isinstance(raw, dict):
            raise TypeError("expected a table of priority = slots, e.g. { 9 = 2 }")
        table: dict[int, int] = {}
        for key, value in raw.items():
            if not str(key).isdigit() or not PRIORITY_MIN <= int(key) <= PRIORITY_MAX:
                raise ValueError(f"{key!r} is not a priority 0-9")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{path}.{key} must be a count of slots")
            table[int(key)] = value
        return table

    return convert


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _only(table: Mapping[str, Any], prefix: str, known: set[str]) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"unknown config key {prefix}{key} (known: {', '.join(sorted(known))})"
            )


def _get(table: Mapping[str, Any], path: str, default: T, convert: Callable[[Any], T]) -> T:
    if path.rsplit(".", 1)[-1] not in table:
        return default
    raw = table[path.rsplit(".", 1)[-1]]
    try:
        return convert(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"bad value for {path}: {raw!r}: {exc}") from None


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


def _duration(raw: Any) -> float:
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise TypeError("expected a duration such as 30s or 500ms")
    return parse_duration(raw)


def _positive_duration(raw: Any) -> float:
    value = _duration(raw)
    if value <= 0:
        raise ValueError("must be more than 0")
    return value


def _limits(workers: Mapping[str, Any]) -> Limits:
    try:
        return Limits.from_wire({key: workers[key] for key in RESOURCE_KEYS if key in workers})
    except ValueError as exc:
        raise ConfigError(f"workers: {exc}") from None


def _size(minimum: int) -> Callable[[Any], int]:
    def convert(raw: Any) -> int:
        if not isinstance(raw, str | int) or isinstance(raw, bool):
            raise TypeError("expected a size such as 16M")
        value = parse_size(raw)
        if value < minimum:
            raise ValueError(f"must be at least {minimum} bytes")
        return value

    return convert


def _int(low: int, high: int) -> Callable[[Any], int]:
    def convert(raw: Any) -> int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise TypeError("expected an integer")
        if not low <= raw <= high:
            raise ValueError(f"must be between {low} and {high}")
        return raw

    return convert


def _choice(*choices: str) -> Callable[[Any], str]:
    def convert(raw: Any) -> str:
        if raw not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return str(raw)

    return convert


def _paths(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise TypeError("expected a list of directory paths")
    return tuple(os.path.abspath(os.path.expanduser(p)) for p in raw)


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


def _python(raw: Any) -> str:
    if not isinstance(raw, str):
        raise TypeError("expected the path of a Python interpreter")
    if raw and not os.path.isabs(os.path.expanduser(raw)):
        raise ValueError("expected an absolute path (or '' for the daemon's interpreter)")
    return os.path.expanduser(raw)


def _uid_range(raw: Any) -> tuple[int, int]:
    if not isinstance(raw, str):
        raise TypeError("expected a range of uids such as '61000-61999'")
    first, sep, last = raw.partition("-")
    if not sep or not first.strip().isdigit() or not last.strip().isdigit():
        raise ValueError("a uid range is written FIRST-LAST, e.g. '61000-61999'")
    low, high = int(first), int(last)
    if not low <= high < 2**31 - 1:
        raise ValueError("the range must be increasing and end below 2^31-1")
    if low < 1000:
        raise ValueError("the range must start at 1000 or above: below are system accounts")
    return low, high


def _users(raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list):
        raise TypeError("expected a list of user names or uids")
    return tuple(_uid(user, "auth.admins") for user in raw)


def _uid(user: Any, path: str) -> int:
    if isinstance(user, int) and not isinstance(user, bool):
        return user
    if isinstance(user, str):
        if user.isdigit():
            return int(user)
        try:
            return pwd.getpwnam(user).pw_uid
        except KeyError:
            raise ConfigError(f"{path}: no such user {user!r}") from None
    raise ConfigError(f"{path}: expected a user name or uid, not {user!r}")


#: A name a shell could export: what ``env_pass`` and ``[workers.env]`` accept.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


#: The pool's own variables (``ASYNCTASK_SOCKET``, ``ASYNCTASK_PARENT_PID``, ...): not settable.
_ENV_RESERVED = "ASYNCTASK_"


def _env_name(name: Any, path: str) -> str:
    if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
        raise ConfigError(f"{path}: {name!r} is not a valid environment variable name")
    if name.upper().startswith(_ENV_RESERVED):
        raise ConfigError(f"{path}: {name} is reserved: ASYNCTASK_* variables are set by the pool")
    return name


def _env_names(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise TypeError("expected a list of environment variable names")
    return tuple(_env_name(name, "workers.env_pass") for name in raw)


def _env_table(raw: Any) -> dict[str, str]:
    """``[workers.env]``: ``NAME = "value"`` pairs set in every worker's environment."""
    if not isinstance(raw, dict):
        raise ConfigError('[workers.env] must be a table of NAME = "value"')
    env: dict[str, str] = {}
    for name, value in raw.items():
        _env_name(name, "workers.env")
        if not isinstance(value, str):
            raise ConfigError(f"workers.env.{name} must be a string, not {value!r}")
        if "\0" in value:
            raise ConfigError(f"workers.env.{name} must not contain a NUL character")
        env[name] = value
    return env
