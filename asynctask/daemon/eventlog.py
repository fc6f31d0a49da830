"""The daemon's log events about scheduling: limit kills, AIMD moves, refusals, confinement.

The core decides and never logs (``core/``); it reports what it changed as event records
(``core/events.py``) and this module writes one line for each, with machine-readable fields
(``asynctask.logs``). It keeps no copy of the core's state: what moved, from what to what and
why comes with the event. It is called on every attempt outcome, so when nothing changed it
costs one empty-list check:

* ``limit_kill`` / ``timeout`` / ``worker_died``: an attempt was killed by a memory, CPU or file
  size limit, ran into its timeout, or took its worker down (warning);
* ``aimd``: a function's adaptive concurrency limit moved (``cut``, ``increase``, or ``reset``
  after an idle spell; ``AimdMoved``);
* ``refused``: back pressure refused a tenant's submits (warning). A flooding client is refused
  thousands of times a second, so a tenant gets at most one line per ``REFUSAL_LOG_INTERVAL``;
  the refusals in between are counted into that tenant's next line (``suppressed``);
* ``confined`` / ``released``: a tenant whose tasks kill or hang workers was confined to its
  own worker shards (``core/sharding.py``), and later let out; a new tenant leaving probation
  is ``released`` too. Release from a fault confinement is time-based and nothing happens in
  the core when time passes, so a timer asks the core at the moment it is due
  (``Scheduler.confinement_due``; faults in between push it on). Probation starts with every
  new tenant by design and is not logged; it shows in ``asynctask queues``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from asynctask.core.events import AimdMoved, Confined, Event, Released
from asynctask.core.scheduler import Scheduler
from asynctask.errors import SubmitThrottled
from asynctask.model import ErrorKind, LiveTask

log = logging.getLogger("asynctask.daemon")

#: Seconds between two ``refused`` lines of one tenant.
REFUSAL_LOG_INTERVAL: Final = 5.0

_KILL_EVENTS: Final[dict[str, str]] = {
    ErrorKind.MEMORY_LIMIT: "limit_kill",
    ErrorKind.CPU_LIMIT: "limit_kill",
    ErrorKind.FILE_SIZE_LIMIT: "limit_kill",
    ErrorKind.TIMEOUT: "timeout",
    ErrorKind.WORKER_DIED: "worker_died",
}

#: ``later(delay, callback)``: run ``callback`` after ``delay`` seconds (the event loop's).
Later = Callable[[float, Callable[[], None]], object]


class EventLog:
    def __init__(self, scheduler: Scheduler, clock: Callable[[], float], later: Later) -> None:
        self._scheduler = scheduler
        self._clock = clock
        self._later = later
        self._refusals: dict[str, tuple[float, int]] = {}  # tenant -> (last line, suppressed)

    def __repr__(self) -> str:
        return f"<EventLog refusing={len(self._refusals)}>"

    def outcome(self, task: LiveTask, error: dict[str, Any] | None, pid: int, now: float) -> None:
        """After the scheduler took in an attempt's outcome (``error`` None: it succeeded)."""
        events = self._scheduler.take_events()
        for event in events:
            if not isinstance(event, Confined):
                self._write(event)
        if error is not None:
            kind = error.get("kind")
            name = _KILL_EVENTS.get(kind) if isinstance(kind, str) else None
            if name is not None:
                log.warning(
                    "attempt %d of %s/%s (%s) on worker %d: %s",
                    task.attempts, task.tenant, task.id, task.function, pid, error.get("message"),
                    extra={"event": name, "kind": kind, "tenant": task.tenant, "id": task.id,
                           "function": task.function, "attempt": task.attempts, "pid": pid},
                )  # fmt: skip
        for event in events:
            if isinstance(event, Confined):  # after the line of the attempt that earned it
                self._write(event)

    def refused(self, tenant_name: str, count: int, error: SubmitThrottled, now: float) -> None:
        """Back pressure refused ``count`` tasks of a tenant; at most one line per interval."""
        last, suppressed = self._refusals.get(tenant_name, (float("-inf"), 0))
        if now - last < REFUSAL_LOG_INTERVAL:
            self._refusals[tenant_name] = (last, suppressed + count)
            return
        self._refusals[tenant_name] = (now, 0)
        tenant = self._scheduler.tenant(tenant_name, now)
        log.warning(
            "refused %d task(s) of tenant %s: backlog %d of %d, retry after %.0fs "
            "(%d more refused since the last such line)",
            count, tenant_name, tenant.backlog, tenant.limits.max_backlog,
            error.retry_after or 0, suppressed,
            extra={"event": "refused", "tenant": tenant_name, "tasks": count,
                   "backlog": tenant.backlog, "max_backlog": tenant.limits.max_backlog,
                   "retry_after": error.retry_after, "suppressed": suppressed},
        )  # fmt: skip

    def _write(self, event: Event) -> None:
        if isinstance(event, AimdMoved):
            log.info(
                "aimd: %s may run %d at once (was %d): %s; window %d attempts, %d throttled",
                event.function, event.limit, event.previous, event.reason,
                event.window_attempts, event.window_throttles,
                extra={"event": "aimd", "function": event.function, "limit": event.limit,
                       "previous": event.previous, "reason": event.reason,
                       "max_limit": event.max_limit, "window_attempts": event.window_attempts,
                       "window_throttles": event.window_throttles},
            )  # fmt: skip
        elif isinstance(event, Confined):
            shards = list(event.shards) if event.shards else None
            log.warning(
                "tenant %s confined%s for %.0fs: %d worker faults in the window",
                event.tenant, f" to shards {shards}" if shards else "", event.seconds,
                event.faults,
                extra={"event": "confined", "tenant": event.tenant, "reason": event.reason,
                       "shards": shards, "faults": event.faults,
                       "seconds": round(event.seconds, 3)},
            )  # fmt: skip
            self._later(event.seconds, lambda: self._confinement_due(event.tenant))
        elif isinstance(event, Released):
            log.info(
                "tenant %s released from %s confinement%s",
                event.tenant, event.was, f" (still: {event.still})" if event.still else "",
                extra={"event": "released", "tenant": event.tenant, "reason": event.was,
                       "confinement": event.still},
            )  # fmt: skip

    def _confinement_due(self, tenant_name: str) -> None:
        """Due when a confinement was to end: the core reports the release, or says when it
        ends now that faults since pushed it on."""
        now = self._clock()
        until = self._scheduler.confinement_due(tenant_name, now)
        if until is not None:
            self._later(until - now, lambda: self._confinement_due(tenant_name))
        for event in self._scheduler.take_events():
            self._write(event)
