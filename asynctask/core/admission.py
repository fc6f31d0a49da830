"""What a submitted task becomes: its options resolved against the function's and the daemon's
defaults, its queue (``"exclusive"``: a queue of the function's own), its state (scheduled when
it is due later), and its expiry. Pure: the caller passes the time, the sequence number, the ID,
and the interner that lets equal names and mappings share one object in memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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


def admit(
    spec: SubmitSpec,
    task_id: str,
    seq: int,
    now: float,
    defaults: TaskDefaults,
    shared: Interning = IDENTITY,
) -> LiveTask:
    """The live task a validated spec becomes at ``now``."""
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
    return LiveTask(
        seq=seq,
        tenant=shared.name(spec.tenant),
        id=task_id,
        function=shared.name(spec.function),
        queue=shared.name(_queue(spec, configured)),
        priority=first(spec.priority, configured.priority, PRIORITY_DEFAULT),
        state=TaskState.SCHEDULED if scheduled else TaskState.QUEUED,
        payload=shared.payload(spec.payload),
        options=shared.mapping(options),
        labels=shared.mapping(spec.labels),
        retries=retries,
        timeout=timeout,
        created_at=now,
        due_at=due if scheduled else None,
        expires_at=expires_at,
        trace_id=spec.trace_id,
    )
