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
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from asynctask.errors import ConfigError
from asynctask.model import is_name, parse_duration, parse_size

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    durability: Literal["full", "normal"] = "full"
    drain: float = 30.0
    max_frame: int = 16 * 1024 * 1024
    max_payload: int = 1024 * 1024
    log_level: str = "info"


@dataclass(frozen=True, slots=True)
class WorkersConfig:
    min_workers: int = 2
    max_workers: int = 8
    timeout: float = 600.0
    kill_grace: float = 2.0
    max_tasks_per_worker: int = 0  # 0: never recycle
    paths: tuple[str, ...] = ()


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
class Config:
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    source: str | None = None


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
    _only(data, "", {"daemon", "workers", "retry", "auth"})
    daemon = _section(data, "daemon")
    workers = _section(data, "workers")
    retry = _section(data, "retry")
    auth = _section(data, "auth")
    _only(daemon, "daemon.", {"durability", "drain", "max_frame", "max_payload", "log_level"})
    _only(
        workers,
        "workers.",
        {"min_workers", "max_workers", "timeout", "kill_grace", "max_tasks_per_worker", "paths"},
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
        log_level=_get(
            daemon, "daemon.log_level", d.log_level, _choice("debug", "info", "warning", "error")
        ),
    )
    if daemon_cfg.max_payload >= daemon_cfg.max_frame:
        raise ConfigError("daemon.max_payload must be smaller than daemon.max_frame")

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
    return Config(
        daemon=daemon_cfg,
        workers=workers_cfg,
        retry=retry_cfg,
        auth=AuthConfig(admins=admins, users=users),
        source=source,
    )


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


def _duration(raw: Any) -> float:
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise TypeError("expected a duration such as 30s or 500ms")
    return parse_duration(raw)


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
