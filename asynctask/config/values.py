"""Reading one TOML value: the table helpers (``_section``, ``_only``, ``_get``) and the
converters that check a value and turn it into what the config holds, naming what was expected."""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from asynctask.core.allowlist import pattern_problem
from asynctask.errors import ConfigError
from asynctask.model import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    is_name,
    parse_duration,
    parse_rate,
    parse_size,
)

T = TypeVar("T")


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


def _duration(raw: Any) -> float:
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise TypeError("expected a duration such as 30s or 500ms")
    return parse_duration(raw)


def _positive_duration(raw: Any) -> float:
    value = _duration(raw)
    if value <= 0:
        raise ValueError("must be more than 0")
    return value


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


def _patterns(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise TypeError('expected a list of patterns such as ["myapp.tasks:*", "pkg.mod:fn"]')
    for pattern in raw:
        problem = pattern_problem(pattern)
        if problem is not None:
            raise ValueError(problem)
    return tuple(raw)


def _absolute_path(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise TypeError("expected an absolute file path")
    path = os.path.expanduser(raw)
    if not os.path.isabs(path):
        raise ValueError("expected an absolute file path (it must not depend on the cwd)")
    return os.path.normpath(path)


def listen_address(example: str) -> Callable[[Any], tuple[str, int]]:
    """The parser of a listener's ``host:port`` (``[::1]:port`` for IPv6), any host, whose
    messages show ``example``; whether a host that is not loopback may be used is the
    section's decision (``allow_remote`` with ``is_loopback``)."""

    def parse(raw: Any) -> tuple[str, int]:
        if not isinstance(raw, str):
            raise TypeError(f"expected host:port, e.g. {example}")
        host, sep, port_text = raw.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"expected host:port with a port from 0 to 65535, e.g. {example}")
        if not host or any(c.isspace() or c in "/[]@" for c in host):
            raise ValueError(f"expected host:port with a host name or address, e.g. {example}")
        return host, int(port_text)

    return parse


#: ``[metrics] http``.
_http_address = listen_address("127.0.0.1:9464")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ``::1``) or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


#: libpq's URL schemes, the only ones ``[store] url`` takes (``store/open.py`` opens them).
_STORE_SCHEMES = ("postgresql", "postgres")


def _store_url(raw: Any) -> str:
    """``[store] url``: a libpq-style ``postgresql://`` URL, checked for shape only (whether the
    server answers is known when the daemon connects). Its messages never repeat the URL, which
    may hold a password."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(
            "store.url must be a postgresql:// URL, e.g. postgresql://asynctask@/asynctask"
            "?host=/run/postgresql (leave it unset for the SQLite file in the home)"
        )
    scheme, sep, _rest = raw.partition("://")
    if not sep:
        raise ConfigError(
            "store.url must be a postgresql:// URL (a SQLite file is not configured: it is "
            "always <home>/asynctask.db, used when store.url is unset)"
        )
    if scheme.lower() not in _STORE_SCHEMES:
        raise ConfigError(
            f"store.url: unsupported scheme {scheme!r}: only postgresql:// (or postgres://) "
            "URLs are supported"
        )
    if any(c.isspace() or c == "\0" for c in raw):
        raise ConfigError("store.url must not contain whitespace or NUL characters")
    try:
        parsed = urlsplit(raw)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"store.url is not a valid URL: {exc}") from None
    if parsed.fragment:
        raise ConfigError("store.url must not have a #fragment")
    return raw
