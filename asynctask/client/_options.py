"""The keyword arguments of the clients' calls, as ``TypedDict``s for ``**options: Unpack[...]``.

They exist for the user's type checker: a misspelt option (``priorty=7``) or a wrong type is
an error in their editor rather than a ``UsageError`` at run time. At run time they are plain
dicts and check nothing; the sets of names the clients validate against are read from them
(``SUBMIT_OPTIONS``, ``TASK_FILTERS``), so the typed list and the checked list cannot drift.
Every value may be ``None``, meaning "not given" (the command line passes its unset flags so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final, TypedDict

#: A task function: a ``module:function`` string, or a module-level (decorated) function.
FunctionRef = str | Callable[..., Any]
#: A duration: seconds, or a string such as ``"500ms"``, ``"30s"``, ``"5m"``.
Duration = float | str
#: A moment: an aware ``datetime``, epoch seconds, or ISO 8601 with an offset (or ``Z``).
Moment = datetime | float | str


class LimitOptions(TypedDict, total=False):
    """Per-attempt limits (``asynctask.resources.Limits``, same names; a test keeps them equal):
    sizes as bytes or ``"256M"``."""

    memory: int | str | None
    cpu: Duration | None
    open_files: int | None
    processes: int | None
    file_size: int | str | None
    network: bool | None
    private_tmp: bool | None
    #: Config only: the daemon refuses it on a submit (a client may not pick the account).
    user: str | None


class SubmitOptions(LimitOptions, total=False):
    """``submit``'s options (also ``submit_cmd``, ``submit_status``, ``cron_add``)."""

    task_id: str | None
    tenant: str | None
    queue: str | None
    priority: int | None
    delay: Duration | None
    run_at: Moment | None
    ttl: Duration | None
    retries: int | None
    timeout: Duration | None
    labels: dict[str, str] | None
    on_success: str | None
    on_failure: str | None
    trace_id: str | None


class TaskFilters(TypedDict, total=False):
    """What makes ``pause``/``resume`` act on the waiting tasks it matches, one by one."""

    task_id: str | None
    state: str | Iterable[str] | None
    prefix: str | None
    since: Moment | None
    until: Moment | None
    labels: dict[str, str] | None


class Selector(TaskFilters, total=False):
    """The tasks ``cancel``, ``retry`` and ``delete`` act on: one by ``task_id``, or all that
    match (``tenant`` defaults to the client's)."""

    tenant: str | None
    queue: str | None
    function: FunctionRef | None
    trace_id: str | None


class ListFilters(TypedDict, total=False):
    """``list``'s filters, newest first; ``limit`` caps the page (daemon default 100)."""

    tenant: str | None
    state: str | Iterable[str] | None
    queue: str | None
    function: str | None
    prefix: str | None
    since: Moment | None
    until: Moment | None
    labels: dict[str, str] | None
    trace_id: str | None
    limit: int | None


class TaskOptions(LimitOptions, total=False):
    """``@asynctask.task``'s keywords: submit defaults, the function's own limits
    (``concurrency``, ``rate``, ``burst``) and ``non_retryable``, checked in the worker."""

    queue: str
    priority: int
    retries: int
    timeout: Duration
    ttl: Duration
    on_success: FunctionRef
    on_failure: FunctionRef
    concurrency: int
    rate: str | float
    burst: float
    non_retryable: type[BaseException] | tuple[type[BaseException], ...] | list[type[BaseException]]
    retry_limit_kills: bool


SUBMIT_OPTIONS: Final = SubmitOptions.__optional_keys__
TASK_FILTERS: Final = TaskFilters.__optional_keys__
