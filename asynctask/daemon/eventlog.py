"""The daemon's log events about scheduling: limit kills, AIMD moves, refusals, confinement.

The core decides and never logs (``core/``); this module watches the state it leaves behind and
writes one line, with machine-readable fields (``asynctask.logs``), when something changed that
an operator would want to see. It is called on every attempt outcome, so what it does per
outcome is a few dictionary lookups and integer compares; a line is written only on a change:

* ``limit_kill`` / ``timeout`` / ``worker_died``: an attempt was killed by a memory, CPU or file
  size limit, ran into its timeout, or took its worker down (warning);
* ``aimd``: a function's adaptive concurrency limit moved (``cut``, ``increase``, or ``reset``
  after an idle spell). Reading the limit costs about half a microsecond, too much for every
  outcome, so it is read only where it can have moved (``core/aimd.py``): it drops only on a
  throttle, and rises only on a success while it is below its ceiling (an idle reset returns it
  to its start value, which is the ceiling). So it is read after each throttle, and after each
  success of a function logged below its ceiling until it is back there; a success of any other
  function costs one lookup in an empty or small dictionary;
* ``refused``: back pressure refused a tenant's submits (warning). A flooding client is refused
  thousands of times a second, so a tenant gets at most one line per ``REFUSAL_LOG_INTERVAL``;
  the refusals in between are counted into that tenant's next line (``suppressed``);
* ``confined`` / ``released``: a tenant whose tasks kill or hang workers was confined to its
  own worker shards (``core/sharding.py``), and later let out; a new tenant leaving probation
  is ``released`` too. Release from a fault confinement is time-based, so a timer checks it at
  the moment it is due (faults in between push it on). Probation starts with every new tenant
  by design and is not logged; it shows in ``asynctask queues``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from asynctask.core.aimd import AimdLimit
from asynctask.core.scheduler import WORKER_FAULTS, Scheduler
from asynctask.core.sharding import FAULTS, PROBATION
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
        self._below_ceiling: dict[str, int] = {}  # function -> AIMD limit logged, if < max
        self._refusals: dict[str, tuple[float, int]] = {}  # tenant -> (last line, suppressed)
        self._confined: set[str] = set()  # tenants logged as confined for faults
        sharding = scheduler.settings.sharding
        # Probation applies only to a sharded pool in "faults" mode (``Scheduler.confinement``).
        self._probation = (
            sharding.probation if sharding.sharded and sharding.confinement == FAULTS else 0
        )
        self._graduated: set[str] = set()  # tenants past probation (clean_ends only grow)

    def __repr__(self) -> str:
        return (
            f"<EventLog aimd={self._below_ceiling} refusing={len(self._refusals)} "
            f"confined={sorted(self._confined)}>"
        )

    def outcome(self, task: LiveTask, error: dict[str, Any] | None, pid: int, now: float) -> None:
        """After the scheduler took in an attempt's outcome (``error`` None: it succeeded)."""
        kind = None if error is None else error.get("kind")
        if self._probation and kind not in WORKER_FAULTS and task.tenant not in self._graduated:
            self._check_probation(task.tenant, now)  # any attempt that spared its worker counts
        if error is None:
            if self._below_ceiling and task.function in self._below_ceiling:
                self._check_aimd(task.function, now)
            return
        if kind == ErrorKind.THROTTLED:
            self._check_aimd(task.function, now)
            return
        event = _KILL_EVENTS.get(kind) if isinstance(kind, str) else None
        if event is None:
            return
        log.warning(
            "attempt %d of %s/%s (%s) on worker %d: %s",
            task.attempts, task.tenant, task.id, task.function, pid, error.get("message"),
            extra={"event": event, "kind": kind, "tenant": task.tenant, "id": task.id,
                   "function": task.function, "attempt": task.attempts, "pid": pid},
        )  # fmt: skip
        if kind in WORKER_FAULTS and task.tenant not in self._confined:
            scheduler = self._scheduler
            if scheduler.confinement(scheduler.tenant(task.tenant, now), now) == FAULTS:
                self._confine(task.tenant, now)

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

    def _check_aimd(self, function: str, now: float) -> None:
        aimd = self._scheduler.function(function, now).aimd
        if aimd is None:
            self._below_ceiling.pop(function, None)
            return
        config = aimd.config
        limit = aimd.limit
        previous = self._below_ceiling.get(function, config.max_limit)
        if limit == previous:
            return
        if limit < config.max_limit:
            self._below_ceiling[function] = limit
        else:
            del self._below_ceiling[function]
        if limit < previous:
            reason = "cut"
        elif limit == config.start and limit - previous > 1:
            reason = "reset"
        else:
            reason = "increase"
        self._log_aimd(function, previous, limit, reason, aimd)

    def _check_probation(self, tenant_name: str, now: float) -> None:
        scheduler = self._scheduler
        tenant = scheduler.tenant(tenant_name, now)
        if tenant.clean_ends >= self._probation:
            self._graduated.add(tenant_name)
            self._released(tenant_name, PROBATION, scheduler.confinement(tenant, now))

    def _log_aimd(
        self, function: str, previous: int, limit: int, reason: str, aimd: AimdLimit
    ) -> None:
        attempts, throttles = aimd.window_counts
        log.info(
            "aimd: %s may run %d at once (was %d): %s; window %d attempts, %d throttled",
            function, limit, previous, reason, attempts, throttles,
            extra={"event": "aimd", "function": function, "limit": limit, "previous": previous,
                   "reason": reason, "max_limit": aimd.config.max_limit,
                   "window_attempts": attempts, "window_throttles": throttles},
        )  # fmt: skip

    def _confine(self, tenant_name: str, now: float) -> None:
        scheduler = self._scheduler
        tenant = scheduler.tenant(tenant_name, now)
        faults = tenant.faults
        assert faults is not None  # confined for faults: it has a fault record
        self._confined.add(tenant_name)
        sharded = scheduler.settings.sharding.sharded
        shards = list(scheduler.shards_of(tenant_name)) if sharded else None
        seconds = faults.confined_until - now
        count = faults.recent(scheduler.settings.sharding, now)[1]
        log.warning(
            "tenant %s confined%s for %.0fs: %d worker faults in the window",
            tenant_name, f" to shards {shards}" if shards else "", seconds, count,
            extra={"event": "confined", "tenant": tenant_name, "reason": FAULTS,
                   "shards": shards, "faults": count, "seconds": round(seconds, 3)},
        )  # fmt: skip
        self._later(seconds, lambda: self._check_release(tenant_name))

    def _check_release(self, tenant_name: str) -> None:
        """Due when the confinement was to end: log the release, or wait on if faults since
        then pushed the end on."""
        if tenant_name not in self._confined:
            return
        scheduler = self._scheduler
        now = self._clock()
        tenant = scheduler.tenant(tenant_name, now)
        reason = scheduler.confinement(tenant, now)
        if reason == FAULTS and tenant.faults is not None:
            self._later(
                tenant.faults.confined_until - now, lambda: self._check_release(tenant_name)
            )
            return
        self._confined.discard(tenant_name)
        self._released(tenant_name, FAULTS, reason)

    def _released(self, tenant_name: str, was: str, now_confined: str | None) -> None:
        log.info(
            "tenant %s released from %s confinement%s",
            tenant_name, was, f" (still: {now_confined})" if now_confined else "",
            extra={"event": "released", "tenant": tenant_name, "reason": was,
                   "confinement": now_confined},
        )  # fmt: skip
