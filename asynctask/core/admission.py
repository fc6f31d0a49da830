"""What a submitted task becomes: its options resolved against the function's and the daemon's
defaults, its queue (``"exclusive"``: a queue of the function's own), its state (scheduled when
it is due later), and its expiry. Pure: the caller passes the time, the sequence number, the ID,
and the interner that lets equal names and mappings share one object in memory."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, Protocol, TypeVar

from asynctask.model import PRIORITY_DEFAULT, LiveTask, SubmitSpec, TaskState

T = TypeVar("T")
M = TypeVar("M", bound=dict[str, Any])

#: ``queue = "exclusive"``: the function gets a queue of its own, named after it.
EXCLUSIVE = "exclusive"

#: Submit options kept in ``LiveTask.options`` as given, when set.
_CARRIED_OPTIONS = ("on_success", "on_failure", "limits", "resources")


class FunctionDefaults(Protocol):
    """One function's configured defaults (``[functions."mod:fn"]``); ``None``: not set."""

    @property
    def queue(self) -> str | None: ...
    @property
    def retries(self) -> int | None: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def priority(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class _NoDefaults:
    queue: str | None = None
    retries: int | None = None
    timeout: float | None = None
    priority: int | None = None


_NONE = _NoDefaults()


@dataclass(frozen=True, slots=True)
class TaskDefaults:
    """The daemon's defaults (``[retry] retries``, ``[workers] timeout``) and each function's."""

    retries: int
    timeout: float | None
    functions: Mapping[str, FunctionDefaults] = field(default_factory=dict)

    def of(self, function: str) -> FunctionDefaults:
        return self.functions.get(function, _NONE)


class Interning(Protocol):
    """Shares equal values between tasks (``daemon/interning.py``); identity is correct too."""

    def name(self, value: str) -> str: ...
    def mapping(self, value: M) -> M: ...
    def payload(self, value: bytes) -> bytes: ...


class _Identity:
    @staticmethod
    def name(value: str) -> str:
        return value

    @staticmethod
    def mapping(value: M) -> M:
        return value

    @staticmethod
    def payload(value: bytes) -> bytes:
        return value


IDENTITY: Interning = _Identity()


def first(explicit: T | None, configured: T | None, default: T) -> T:
    """Submit option, else the function's configured default, else the daemon's."""
    if explicit is not None:
        return explicit
    return configured if configured is not None else default


def queue_of(spec: SubmitSpec, defaults: TaskDefaults) -> str:
    """The task's queue: as submitted, else the function's, else its tenant's own."""
    return _queue(spec, defaults.of(spec.function))


def _queue(spec: SubmitSpec, configured: FunctionDefaults) -> str:
    queue = first(spec.queue, configured.queue, spec.tenant)
    return spec.function if queue == EXCLUSIVE else queue


@dataclass(frozen=True, slots=True)
class Admission:
    """What a spec makes of a task admitted at one instant, all but its number, ID and
    arguments: a ``submit_many`` of one function's calls computes it once for all of them."""

    tenant: str
    function: str
    queue: str
    priority: int
    state: TaskState
    options: dict[str, Any]
    labels: dict[str, str]
    retries: int
    timeout: float | None
    created_at: float
    due_at: float | None
    expires_at: float | None
    trace_id: str | None

    def task(self, seq: int, task_id: str, payload: bytes) -> LiveTask:
        return LiveTask(
            seq,
            self.tenant,
            task_id,
            self.function,
            self.queue,
            self.priority,
            self.state,
            payload,
            self.options,
            self.labels,
            self.retries,
            self.timeout,
            self.created_at,
            self.due_at,
            self.expires_at,
            0,
            None,
            None,
            None,
            None,
            None,
            False,
            self.trace_id,
        )


def admission(
    spec: SubmitSpec, now: float, defaults: TaskDefaults, shared: Interning = IDENTITY
) -> Admission:
    """What ``spec`` makes of a task admitted at ``now``, but for its number, ID and payload."""
    configured = defaults.of(spec.function)
    due = now + spec.delay if spec.delay else spec.run_at
    scheduled = due is not None and due > now
    retries = first(spec.retries, configured.retries, defaults.retries)
    timeout = first(spec.timeout, configured.timeout, defaults.timeout)
    options: dict[str, Any] = {"retries": retries, "timeout": timeout}
    expires_at = now + spec.ttl if spec.ttl is not None else None
    if expires_at is not None:
        options["expires_at"] = expires_at
    for name in _CARRIED_OPTIONS:
        value = getattr(spec, name)
        if value is not None:
            options[name] = value
    return Admission(
        tenant=shared.name(spec.tenant),
        function=shared.name(spec.function),
        queue=shared.name(_queue(spec, configured)),
        priority=first(spec.priority, configured.priority, PRIORITY_DEFAULT),
        state=TaskState.SCHEDULED if scheduled else TaskState.QUEUED,
        options=shared.mapping(options),
        labels=shared.mapping(spec.labels),
        retries=retries,
        timeout=timeout,
        created_at=now,
        due_at=due if scheduled else None,
        expires_at=expires_at,
        trace_id=spec.trace_id,
    )


#: Every field of a spec but its arguments and ID: specs equal in these make equal
#: ``Admission``s at one instant.
spec_shape: Callable[[SubmitSpec], tuple[Any, ...]] = attrgetter(
    *(f.name for f in fields(SubmitSpec) if f.name not in ("payload", "id"))
)


def admit(
    spec: SubmitSpec,
    task_id: str,
    seq: int,
    now: float,
    defaults: TaskDefaults,
    shared: Interning = IDENTITY,
) -> LiveTask:
    """The live task a validated spec becomes at ``now``."""
    return admission(spec, now, defaults, shared).task(seq, task_id, shared.payload(spec.payload))
