"""``Limits``: what one attempt may use (memory, CPU seconds, open files, processes, file size).

Plain validated data, shared by everything that handles limits: the wire and the config
(``server``, ``config``), the daemon that resolves them per task, and the executor that applies
them (``executor/limits.py``: rlimits inside the worker; ``executor/cgroups.py``: cgroups
around it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final

from asynctask.model import MAX_SECONDS, parse_duration, parse_size

MIN_MEMORY: Final = 32 << 20
MIN_OPEN_FILES: Final = 16
#: The largest size limit (memory, file_size): 1 PiB, far past any machine, and well inside
#: the kernel's 63-bit rlimits and cgroup values (2**63 once killed the worker at start).
MAX_SIZE: Final = 1 << 50
#: The most open files: Linux's default ``fs.nr_open``; past it ``setrlimit`` fails.
MAX_OPEN_FILES: Final = 1 << 20
#: The most processes: Linux's ``PID_MAX_LIMIT``.
MAX_PROCESSES: Final = 1 << 22
#: The largest CPU limit, in seconds: 100 years, as every duration (``model.MAX_SECONDS``).
MAX_CPU: Final = MAX_SECONDS

_SIZE_KEYS: Final = frozenset({"memory", "file_size"})
_RANGES: Final = {
    "memory": (
        (MIN_MEMORY, "32 MiB: a Python worker needs about 24 MiB just to start"),
        (MAX_SIZE, "1024T (1 PiB)"),
    ),
    "open_files": (
        (MIN_OPEN_FILES, "16: the worker itself holds stdio, its socket and imports"),
        (MAX_OPEN_FILES, "1048576 (the kernel's default fs.nr_open)"),
    ),
    "processes": ((1, "1"), (MAX_PROCESSES, "4194304 (the kernel's pid limit)")),
    "file_size": ((1, "1 byte"), (MAX_SIZE, "1024T (1 PiB)")),
}


@dataclass(frozen=True, slots=True)
class Limits:
    """What one attempt may use; ``None`` means no limit of that kind.

    ``memory`` and ``file_size`` are bytes, ``cpu`` is CPU seconds (not wall time: a task that
    sleeps never reaches it), ``processes`` counts processes and threads. Core dumps are always
    off and not a field: a worker's core file is the task's memory, i.e. its users' data, and a
    crash-looping task would fill the disk with them.

    The constructor checks values too (not only ``from_wire``), so no code path can build a
    limit that would stop the worker from starting.
    """

    memory: int | None = None
    cpu: float | None = None
    open_files: int | None = None
    processes: int | None = None
    file_size: int | None = None
    # Hardening, applied by the worker to itself before any task code (``executor/limits.py``
    # ``isolate``): ``network=False`` gives it a network namespace of its own with no
    # interfaces but loopback; ``private_tmp=True`` a mount namespace with an empty tmpfs on
    # /tmp; ``user`` (config only) the account it runs as when the daemon runs as root.
    network: bool | None = None
    private_tmp: bool | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        for name in _KEYS:
            _check(name, getattr(self, name))

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Limits:
        """Limits from a config file or a submit; ``ValueError`` naming the key for any mistake.

        Strict on purpose: a misspelt key that was silently ignored would mean a task running
        without the limit its author believes it has.
        """
        if not isinstance(raw, Mapping):
            raise ValueError(f"limits must be a table of key = value, got {raw!r}")
        unknown = sorted(str(key) for key in raw if key not in _KEYS)
        if unknown:
            raise ValueError(
                f"unknown limit {', '.join(map(repr, unknown))}; known: {', '.join(_KEYS)}"
            )
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if value is not None:
                values[key] = _parse(key, value)
        return cls(**values)

    def to_wire(self) -> dict[str, Any]:
        """Only the set fields, in the units ``from_wire`` reads back: bytes and seconds."""
        wire: dict[str, Any] = {}
        for name in _KEYS:
            value = getattr(self, name)
            if value is not None:
                wire[name] = float(value) if name == "cpu" else value
        return wire

    def merged(self, override: Limits) -> Limits:
        """``override``'s set fields win: config default < function < submit, applied in turn.

        An override cannot lift a limit (``None`` means "not said here"), so an operator's
        config default holds unless something explicitly sets a different value.
        """
        changes = {n: v for n in _KEYS if (v := getattr(override, n)) is not None}
        return replace(self, **changes) if changes else self

    @property
    def key(self) -> tuple[Any, ...]:
        """The limit profile: workers are sandboxed at start, so they serve one profile each."""
        return tuple(getattr(self, name) for name in _KEYS)

    @property
    def isolated(self) -> bool:
        """Whether the worker must enter namespaces or change user at start."""
        return self.network is False or bool(self.private_tmp) or self.user is not None

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in _KEYS)


_KEYS: Final = tuple(f.name for f in fields(Limits))
#: The names of the limits, as submit options, decorator keywords and config keys.
RESOURCE_KEYS: Final = frozenset(_KEYS)


_FLAGS: Final = frozenset({"network", "private_tmp"})


def _parse(key: str, value: Any) -> Any:
    if key in _FLAGS or key == "user":
        if key == "user" and type(value) is int:
            value = str(value)  # a uid
        _check(key, value)
        return value
    if key in _SIZE_KEYS:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(
                f"limit {key!r} must be a number of bytes or a size such as '256M', got {value!r}"
            )
        try:
            return parse_size(value)
        except ValueError as exc:
            raise ValueError(f"limit {key!r}: {exc}") from None
    if key == "cpu":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(
                f"limit 'cpu' must be CPU seconds or a duration such as '2s', got {value!r}"
            )
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"limit 'cpu': {exc}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"limit {key!r} must be a whole number, got {value!r}")
    return value


def _check(key: str, value: object) -> None:
    if value is None:
        return
    if key in _FLAGS:
        if not isinstance(value, bool):
            raise ValueError(f"{key!r} must be true or false, got {value!r}")
        return
    if key == "user":
        if not isinstance(value, str) or not value:
            raise ValueError(f"'user' must be a user name or uid, got {value!r}")
        return
    if key == "cpu":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"limit 'cpu' must be a number of seconds, got {value!r}")
        if not (value > 0 and math.isfinite(value) and value <= MAX_CPU):
            raise ValueError(
                f"limit 'cpu' must be more than 0 and at most {MAX_CPU:.0f} seconds "
                f"(100 years), got {value!r}"
            )
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"limit {key!r} must be a whole number, got {value!r}")
    (minimum, reason), (maximum, most) = _RANGES[key]
    if value < minimum:
        raise ValueError(f"limit {key!r} is {value}, below the minimum of {reason}")
    if value > maximum:
        raise ValueError(f"limit {key!r} is {value}, above the maximum of {most}")
