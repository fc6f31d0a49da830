"""One copy of each equal value among the many tasks a backlog holds.

A million queued tasks mostly repeat a handful of tenant, function and queue names, one or two
options maps (retries, timeout) and no labels; made per task they cost about 450 bytes of
every task's 950 (``benchmarks/bench_daemon.py`` W6). The daemon passes each new or recovered
task's values through one ``Interner`` so that equal values share one object.

The shared maps are read-only by contract: nothing in the daemon mutates a task's ``options``
or ``labels`` after the task is made (a change builds a new map). Only maps of immutable values
are shared, and the table is bounded, so a stream of distinct values (a TTL's ``expires_at``
differs per task) costs a lookup, not memory.
"""

from __future__ import annotations

import sys
from typing import Any, Final, TypeVar

#: Distinct maps (and small payloads) remembered; beyond it new ones are simply not shared.
LIMIT: Final = 4_096
#: Payloads up to this size are shared (a call with no or small arguments); larger ones are
#: rarely equal and would make the table expensive.
SMALL_PAYLOAD: Final = 64

_IMMUTABLE: Final = (str, int, float, bool, bytes, type(None))
_EMPTY: Final[dict[str, Any]] = {}
M = TypeVar("M", bound=dict[str, Any])


class Interner:
    __slots__ = ("_maps", "_payloads")

    def __init__(self) -> None:
        self._maps: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
        self._payloads: dict[bytes, bytes] = {}

    def __repr__(self) -> str:
        return f"<Interner maps={len(self._maps)} payloads={len(self._payloads)}>"

    @staticmethod
    def name(value: str) -> str:
        """A tenant, function or queue name: ``sys.intern`` (the interpreter drops unused ones)."""
        return sys.intern(value) if type(value) is str else value

    def mapping(self, value: M) -> M:
        """The shared equal map, or ``value`` itself when it cannot or need not be shared."""
        if not value:
            return _EMPTY  # type: ignore[return-value]  # read-only by contract, like all shared
        try:
            key = tuple(value.items())
            if not all(type(item) in _IMMUTABLE for _, item in key):
                return value
            shared = self._maps.get(key)
        except TypeError:  # an unhashable key
            return value
        if shared is not None:
            return shared  # type: ignore[return-value]
        if len(self._maps) < LIMIT:
            self._maps[key] = value
        return value

    def payload(self, value: bytes) -> bytes:
        if len(value) > SMALL_PAYLOAD:
            return value
        shared = self._payloads.get(value)
        if shared is not None:
            return shared
        if len(self._payloads) < LIMIT:
            self._payloads[value] = value
        return value
