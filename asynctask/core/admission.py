"""What a submitted task becomes: its options resolved against the function's and the daemon's
defaults, its queue (``"exclusive"``: a queue of the function's own), its state (scheduled when
it is due later), and its expiry. Pure: the caller passes the time, the sequence number, the ID,
and the interner that lets equal names and mappings share one object in memory.

Each option is the first that is set of: the submit's own; the config file's
``[functions."mod:fn"]`` key; the function's code (``@asynctask.task(...)``: sent with a submit
through the function object, else what a worker that imported the function last reported for
this tenant, ``TaskDefaults.code``); the daemon's default. The options that the submit or the
config set are named in the task's ``options["fixed"]``; a worker's report (``code_options``)
may still set the others for an attempt that is already running. Only a task with such an
option carries the key, so the common submit (by name, no options) stores nothing more."""

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
_CARRIED_OPTIONS = ("on_success", "on_failure", "limits")

#: The options a worker's report of the function's code may set on a running task, when the
#: submit and the config left them to the code (not named in ``options["fixed"]``).
PER_ATTEMPT = ("retries", "timeout", "on_success", "on_failure")


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
    #: The options each tenant's function declared in code, as its workers last reported them
    #: (``CodeDefaults.to_dict`` form), by (tenant, function); the daemon keeps it up to date.
    code: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)

    def of(self, function: str) -> FunctionDefaults:
        return self.functions.get(function, _NONE)

    def code_of(self, spec: SubmitSpec) -> Mapping[str, Any]:
        """The code's options for ``spec``: sent with it, else the last reported."""
        if spec.defaults is not None:
            return spec.defaults
        return self.code.get((spec.tenant, spec.function), _NO_CODE)


_NO_CODE: Mapping[str, Any] = {}


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


def first(explicit: T | None, configured: T | None, default: T, code: T | None = None) -> T:
    """Submit option, else the function's configured default, else its code's, else the
    daemon's."""
    if explicit is not None:
        return explicit
    if configured is not None:
        return configured
    return code if code is not None else default


def queue_of(spec: SubmitSpec, defaults: TaskDefaults) -> str:
    """The task's queue: as submitted, else the function's (config, then code), else its
    tenant's own."""
    return _queue(spec, defaults.of(spec.function), defaults.code_of(spec))


def _queue(spec: SubmitSpec, configured: FunctionDefaults, code: Mapping[str, Any]) -> str:
    queue = first(spec.queue, configured.queue, spec.tenant, code.get("queue"))
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
    code = defaults.code_of(spec)
    due = now + spec.delay if spec.delay else spec.run_at
    scheduled = due is not None and due > now
    retries = first(spec.retries, configured.retries, defaults.retries, code.get("retries"))
    timeout = first(spec.timeout, configured.timeout, defaults.timeout, code.get("timeout"))
    options: dict[str, Any] = {"retries": retries, "timeout": timeout}
    ttl = spec.ttl if spec.ttl is not None else code.get("ttl")
    expires_at = now + ttl if ttl is not None else None
    if expires_at is not None:
        options["expires_at"] = expires_at
    for name in _CARRIED_OPTIONS:
        value = getattr(spec, name)
        if value is None and name != "limits":
            value = code.get(name)
        if value is not None:
            options[name] = value
    resources = _resources(spec.resources, code.get("resources"))
    if resources is not None:
        options["resources"] = resources
    fixed = _fixed(spec, configured)
    if fixed:
        options["fixed"] = fixed
    return Admission(
        tenant=shared.name(spec.tenant),
        function=shared.name(spec.function),
        queue=shared.name(_queue(spec, configured, code)),
        priority=first(spec.priority, configured.priority, PRIORITY_DEFAULT, code.get("priority")),
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


def _resources(
    explicit: dict[str, Any] | None, code: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The attempt's resource limits: the submit's, each over the code's."""
    if not code:
        return explicit
    return {**code, **(explicit or {})}


def _fixed(spec: SubmitSpec, configured: FunctionDefaults) -> str:
    """The names of ``PER_ATTEMPT`` that the submit or the config set, comma separated: one
    short string, so that equal options maps are still shared (interning)."""
    taken = (
        spec.retries is not None or configured.retries is not None,
        spec.timeout is not None or configured.timeout is not None,
        spec.on_success is not None,
        spec.on_failure is not None,
    )
    return ",".join(name for name, set_ in zip(PER_ATTEMPT, taken, strict=True) if set_)


def code_options(task_options: Mapping[str, Any], code: Mapping[str, Any]) -> dict[str, Any]:
    """The options of a task that is already running, once a worker reported its function's
    ``code`` (``CodeDefaults.to_dict`` form): each option left to the code (not in
    ``options["fixed"]``) that the code sets now replaces the task's. ``task_options`` itself
    is not changed (it may be shared); the result is a new map, equal to it when the report
    changes nothing."""
    fixed = str(task_options.get("fixed", "")).split(",")
    changed = dict(task_options)
    for name in PER_ATTEMPT:
        value = code.get(name)
        if value is not None and name not in fixed:
            changed[name] = value
    return changed


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
