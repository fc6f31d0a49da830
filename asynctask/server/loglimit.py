"""Log lines that a client can trigger, rate-limited per peer uid.

Any local user may connect and send garbage; if each bad frame wrote a line, one loop of
connects would fill the disk and bury the lines that matter. ``LogLimiter`` lets one line per
key (a peer uid) through per ``interval``; the lines held back are counted, and the next line
let through says how many there were. Time is an argument (``clock``), so tests step it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable


class LogLimiter:
    __slots__ = ("_clock", "_interval", "_max_keys", "_windows")

    def __init__(
        self,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 4096,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._max_keys = max_keys
        #: key -> [time of the last line let through, lines held back since]
        self._windows: dict[Hashable, list[float]] = {}

    def __repr__(self) -> str:
        held = sum(int(window[1]) for window in self._windows.values())
        return f"<LogLimiter keys={len(self._windows)} held_back={held}>"

    def allow(self, key: Hashable) -> int | None:
        """``None``: drop this line (it is counted). Otherwise write it, noting the returned
        number of lines held back since the previous one for ``key``."""
        now = self._clock()
        window = self._windows.get(key)
        if window is not None and now - window[0] < self._interval:
            window[1] += 1
            return None
        if window is None and len(self._windows) >= self._max_keys:
            self._prune(now)
        self._windows[key] = [now, 0]
        return 0 if window is None else int(window[1])

    def _prune(self, now: float) -> None:
        """Forget quiet keys; if every key is recent, forget them all (a burst from more uids
        than ``max_keys`` then logs a little more, but memory stays bounded)."""
        stale = [key for key, window in self._windows.items() if now - window[0] >= self._interval]
        for key in stale:
            del self._windows[key]
        if len(self._windows) >= self._max_keys:
            self._windows.clear()


def held_back(count: int) -> str:
    """The suffix of a line that follows ``count`` held-back ones."""
    return f" ({count} similar lines held back)" if count else ""
