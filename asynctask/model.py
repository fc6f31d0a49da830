"""Task states, the legal moves between them, and the small value types every layer shares.

The state machine, in one table (``TRANSITIONS``), as h11 keeps its own: every state change in
the daemon goes through ``check_transition``, and a test walks every entry. Rules it encodes:

* ``scheduled`` waits for a time (a delay, ``--at``, or a retry backoff); ``queued`` waits for
  capacity; ``running`` is one attempt on one worker.
* ``succeeded``, ``cancelled`` and ``expired`` are final. ``failed`` is final for the scheduler
  (it is the dead-letter queue) but an operator's ``retry`` may queue it again.
* A ``running`` task goes back to ``queued`` only when its attempt was interrupted by the daemon
  itself (shutdown or crash recovery), never by the task.

Times are seconds since the epoch (floats) inside the daemon and on the wire; ``format_time``
turns them into the ISO 8601 UTC strings of the ``--json`` output.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final


class TaskState(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


S = TaskState

TRANSITIONS: Final[dict[TaskState, frozenset[TaskState]]] = {
    S.SCHEDULED: frozenset({S.QUEUED, S.CANCELLED, S.EXPIRED}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED, S.EXPIRED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.SCHEDULED, S.QUEUED, S.CANCELLED}),
    S.FAILED: frozenset({S.QUEUED}),
    S.SUCCEEDED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
}

#: States in which a task still holds its ID: a submit with the same ID returns this task.
DEDUP_STATES: Final = frozenset({S.SCHEDULED, S.QUEUED, S.RUNNING, S.SUCCEEDED})
#: States the scheduler is done with.
FINAL_STATES: Final = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.EXPIRED})
#: States the daemon keeps in memory.
LIVE_STATES: Final = frozenset({S.SCHEDULED, S.QUEUED, S.RUNNING})
#: Live and not yet started: what ``pause`` by selector can hold.
WAITING_STATES: Final = frozenset({S.SCHEDULED, S.QUEUED})


class InvalidTransition(Exception):
    """A state change outside ``TRANSITIONS``: a bug in the daemon, never the user's input."""


def check_transition(old: TaskState, new: TaskState) -> None:
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(f"task cannot go from {old} to {new}")


class ErrorKind(StrEnum):
    """Why an attempt ended without success; decides retryability with the task's options."""

    EXCEPTION = "exception"  # the function raised: retryable
    FAIL = "fail"  # asynctask.Fail: never retried
    THROTTLED = "throttled"  # asynctask.Throttled: retried with backoff
    TIMEOUT = "timeout"  # wall-clock timeout: retryable
    WORKER_DIED = "worker_died"  # the worker process exited mid-attempt: retryable
    INTERRUPTED = "interrupted"  # the daemon stopped or died mid-attempt: retryable
    IMPORT = "import"  # module or function cannot be loaded: not retried
    BAD_RESULT = "bad_result"  # the return value cannot be msgpack-encoded: not retried
    HOOK = "hook"  # an on_worker_start or before_attempt hook raised: retryable
    MEMORY_LIMIT = "memory_limit"  # not retried unless the function opts in
    CPU_LIMIT = "cpu_limit"  # not retried unless the function opts in
    FILE_SIZE_LIMIT = "file_size_limit"  # a program killed by SIGXFSZ; not retried either


RETRYABLE_KINDS: Final = frozenset(
    {
        ErrorKind.EXCEPTION,
        ErrorKind.THROTTLED,
        ErrorKind.TIMEOUT,
        ErrorKind.WORKER_DIED,
        ErrorKind.INTERRUPTED,
        ErrorKind.HOOK,
    }
)

PRIORITY_MIN: Final = 0
PRIORITY_MAX: Final = 9
PRIORITY_DEFAULT: Final = 5
DEFAULT_TENANT: Final = "default"

# Checked with ``fullmatch``: ``$`` also matches before a final newline, which once let
# "dup" and "dup\n" be two tasks.
_FUNCTION_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_NAME_RE = re.compile(r"[A-Za-z0-9_.:@/-]{1,128}")
_ID_RE = re.compile(r"[\x21-\x7e]{1,200}")


def is_function_ref(ref: str) -> bool:
    """``package.module:function`` (a dotted attribute path after the colon is allowed)."""
    return _FUNCTION_RE.fullmatch(ref) is not None


def is_name(name: str) -> bool:
    """Tenant and queue names: short, printable, no spaces."""
    return _NAME_RE.fullmatch(name) is not None


def is_task_id(task_id: str) -> bool:
    """Task IDs: 1-200 printable ASCII characters without spaces."""
    return _ID_RE.fullmatch(task_id) is not None


# ---------------------------------------------------------------------------------------------
# Durations, sizes and times as users write them.

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS: Final = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


#: The longest duration anything accepts (a delay, timeout, TTL, CPU limit, backoff): 100
#: years. Past it a time no longer fits a date (1e308 seconds once crashed ``status``).
MAX_SECONDS: Final = 100 * 365.25 * 86400.0


def parse_duration(text: str | float | int) -> float:
    """``500ms``, ``2s``, ``5m``, ``1h``, ``1d`` or a bare number of seconds; never negative,
    never more than ``MAX_SECONDS`` (100 years)."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if text < 0 or text != text:
            raise ValueError(f"a duration cannot be negative or NaN: {text!r}")
        seconds = float(text)
    else:
        match = _DURATION_RE.fullmatch(text)
        if not match:
            raise ValueError(f"not a duration: {text!r} (write e.g. 500ms, 2s, 5m, 1h, 1d)")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not seconds <= MAX_SECONDS:
        raise ValueError(
            f"a duration is at most 100 years ({MAX_SECONDS:.0f} seconds), got {text!r}"
        )
    return seconds


def parse_size(text: str | int) -> int:
    """``256M``, ``2G`` (binary units: K = 1024) or a bare number of bytes."""
    if isinstance(text, bool):
        raise ValueError(f"not a size: {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"a size cannot be negative: {text!r}")
        return text
    match = _SIZE_RE.fullmatch(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (write e.g. 256M, 2G)")
    unit = (match.group(2) or "").upper()[:1]
    size = float(match.group(1)) * _SIZE_UNITS[unit]
    if not math.isfinite(size):
        raise ValueError(f"not a size: {text!r} (too large)")
    return int(size)


_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*$")


def parse_rate(text: str | float | int) -> float:
    """``100/s``, ``5/m``, ``1000/h``, ``3/10s`` (or a bare number per second) as events/second."""
    if isinstance(text, bool):
        raise ValueError(f"not a rate: {text!r}")
    if isinstance(text, int | float):
        if not (text > 0 and math.isfinite(text)):
            raise ValueError(f"a rate must be positive and finite: {text!r}")
        return float(text)
    match = _RATE_RE.fullmatch(text)
    if not match:
        raise ValueError(f"not a rate: {text!r} (write e.g. 100/s, 5/m, 1000/h)")
    count = float(match.group(1))
    period = float(match.group(2) or 1) * _DURATION_UNITS[match.group(3)]
    if count <= 0 or period <= 0 or not math.isfinite(count / period):
        raise ValueError(f"a rate must be positive and finite: {text!r}")
    return count / period


def parse_time(text: str) -> float:
    """An ISO 8601 time with an offset or ``Z``, as epoch seconds."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"the time {text!r} needs an offset or Z (e.g. 2026-01-31T12:00:00Z)")
    return moment.timestamp()


def format_time(epoch: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds and ``Z``; ``None`` stays ``None``."""
    if epoch is None:
        return None
    stamp = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Every pair of Crockford digits, indexed by its 10 bits: an ID is 13 lookups, not 26 steps.
_CROCKFORD_PAIRS: Final = [high + low for high in _CROCKFORD for low in _CROCKFORD]


def new_task_id(now: float | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits, Crockford base32.

    IDs sort by creation time, so ``list --prefix`` and history pages stay in order.
    """
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    pairs = _CROCKFORD_PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in range(120, -10, -10)])


def error_dict(
    kind: ErrorKind, type_name: str, message: str, traceback: str = ""
) -> dict[str, Any]:
    """The ``error`` field of a task: why its last attempt did not succeed."""
    return {"kind": str(kind), "type": type_name, "message": message, "traceback": traceback}


class LiveTask:
    """A task the daemon holds in memory: scheduled, queued or running.

    Mutable and slotted, because a 1,000,000-task backlog lives in these: the core changes
    ``state``, ``attempts`` and the times as it decides; the daemon persists what changed. The
    fields are defined in ``taskfields.py``; what follows is generated from it.
    """

    # <generated taskfields:LiveTask>
    __slots__ = (
        "attempts",
        "created_at",
        "due_at",
        "error",
        "errors",
        "expires_at",
        "finished_at",
        "function",
        "held",
        "id",
        "labels",
        "options",
        "payload",
        "priority",
        "queue",
        "queued_at",
        "result",
        "retries",
        "seq",
        "started_at",
        "state",
        "tenant",
        "timeout",
        "trace",
        "trace_id",
    )

    def __init__(  # positional too: recovery builds a million, keywords cost 4x
        self,
        seq: int,
        tenant: str,
        id: str,
        function: str,
        queue: str,
        priority: int,
        state: TaskState,
        payload: bytes,
        options: dict[str, Any],
        labels: dict[str, str],
        retries: int,
        timeout: float | None,
        created_at: float,
        due_at: float | None = None,
        expires_at: float | None = None,
        attempts: int = 0,
        started_at: float | None = None,
        finished_at: float | None = None,
        result: bytes | None = None,
        error: dict[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
        held: bool = False,
        trace_id: str | None = None,
        trace: list[list[float | None]] | None = None,
    ) -> None:
        self.seq = seq
        self.tenant = tenant
        self.id = id
        self.function = function
        self.queue = queue
        self.priority = priority
        self.state = state
        self.payload = payload
        self.options = options
        self.labels = labels
        self.retries = retries
        self.timeout = timeout
        self.created_at = created_at
        self.due_at = due_at
        self.expires_at = expires_at
        self.attempts = attempts
        self.started_at = started_at
        self.finished_at = finished_at
        self.result = result
        self.error = error
        self.errors = errors
        self.held = held
        self.trace_id = trace_id
        self.trace = trace
        self.queued_at = 0.0  # when it last became ready; set by the scheduler

    # </generated taskfields:LiveTask>

    def __repr__(self) -> str:
        return (
            f"<LiveTask {self.tenant}/{self.id} seq={self.seq} {self.state} "
            f"p{self.priority} attempts={self.attempts}>"
        )

    def move(self, new: TaskState) -> None:
        """Change state through the transition table."""
        check_transition(self.state, new)
        self.state = new


# ---------------------------------------------------------------------------------------------
# Requests as the daemon receives them, after the server validated the wire messages.


@dataclass(frozen=True, slots=True)
class SubmitSpec:
    """One task to submit, validated; ``None`` means "the function's or daemon's default"."""

    function: str
    payload: bytes
    tenant: str = DEFAULT_TENANT
    id: str | None = None
    queue: str | None = None
    priority: int | None = None
    delay: float | None = None
    run_at: float | None = None
    ttl: float | None = None
    retries: int | None = None
    timeout: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    on_success: str | None = None
    on_failure: str | None = None
    #: The function's limits declared in code: {"concurrency"?: int, "rate"?: per second,
    #: "burst"?: tokens}, from ``@asynctask.task(concurrency=..., rate=..., burst=...)``.
    limits: dict[str, float] | None = None
    #: The attempt's resource limits (``resources.Limits`` in wire form), over the daemon's.
    resources: dict[str, Any] | None = None
    #: The caller's trace ID (e.g. a W3C trace-id), stored so its tasks can be found by it.
    trace_id: str | None = None
    #: The function's ``@asynctask.task`` options (``protocol.requests.CodeDefaults``, checked),
    #: sent by a submit through the function object: below the options above and the config.
    defaults: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A history query; ``tenants=None`` means every tenant the caller may see."""

    tenants: tuple[str, ...] | None = None
    states: tuple[TaskState, ...] = ()
    queue: str | None = None
    function: str | None = None
    prefix: str | None = None
    since: float | None = None
    until: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    limit: int = 100
    trace_id: str | None = None
    #: Where the page starts: the (created_at, seq) of the previous page's last task, from
    #: the opaque ``cursor`` of a ``list`` request (``asynctask.cursor``); None: the newest.
    before: tuple[float, int] | None = None
