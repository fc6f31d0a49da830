"""``@asynctask.task``: attach options to a plain function and give it Celery-style calls.

The function itself is returned unchanged (plus attributes), so workers import and call it like
any other function and tests can call it directly. What it gains (docs/calling.md):

* ``f.submit(*args, **kwargs)`` and ``f.delay(*args, **kwargs)``: submit ``f(*args, **kwargs)``
  with the function's own arguments, nothing else; ``f.apply_async(args, kwargs, countdown=,
  eta=, expires=, priority=, task_id=, queue=)`` as Celery spells it;
* ``f.options(priority=..., delay=..., client=...)``: the submit options, and the client to use,
  for the calls of the object it returns (``.submit``, ``.delay``, ``.apply_async``);
* ``f.asubmit``, ``f.adelay``, ``f.aapply_async`` (also on ``f.options(...)``): the same for
  asyncio code, through an ``AsyncClient``.

Without ``client=``, calls go through the default client (``client/_default.py``: one
connection per thread, reused call after call, a new one after a fork; one ``AsyncClient`` per
event loop). Under ``asynctask.testing.eager()`` they run the task at once, in this process.

The decorator's options (``retries``, ``timeout``, ``queue``, ...) travel apart from a submit's
own (``TaskSpec.defaults``), and the worker that imports the function reports them to the
daemon too (``__asynctask_defaults__``, ``executor/child.py``), so they apply however the task
is submitted, by the function object or by its ``"module:function"`` name. Precedence, highest
first: the submit's options, the config file's ``[functions."..."]`` keys, the decorator's,
the daemon's defaults.

For type checkers the result is a ``TaskFunction[P, R]``: the function's own signature
(``ParamSpec``) and return type, so a user's ``mypy --strict`` checks ``resize("a.png", 200)``,
``resize.submit("a.png", 200)`` and ``resize.delay("a.png", width=200)`` against ``resize``'s
parameters (``tests/test_client_typing.py`` runs it on the README's code). The client is
imported only when a call submits: a worker importing ``asynctask`` for ``Fail`` does not load it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, cast, overload

from asynctask.model import PRIORITY_MAX, PRIORITY_MIN, is_name, parse_duration, parse_rate
from asynctask.resources import RESOURCE_KEYS, Limits

if TYPE_CHECKING:
    from typing import Unpack

    from asynctask.client import AsyncClient, AsyncTaskHandle, Client, TaskHandle
    from asynctask.client._options import Moment, SubmitOptions, TaskOptions

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class TaskCall(Generic[P]):
    """A function with submit options bound: what ``f.options(...)`` returns.

    ``f.options(priority=7, delay="5m").submit("a.png", width=200)`` submits
    ``f("a.png", width=200)`` with those options; ``client=`` picks the client (a ``Client``
    for the blocking calls, an ``AsyncClient`` for the ``a``-prefixed ones; default: the
    process-wide one). The object can be kept and called again.
    """

    __slots__ = ("_client", "_function", "_options")

    def __init__(
        self,
        function: Callable[..., Any],
        options: Mapping[str, Any],
        client: Client | AsyncClient | None = None,
    ) -> None:
        self._function = function
        self._options = dict(options)
        self._client = client

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self._options.items())
        return f"<TaskCall {getattr(self._function, '__asynctask_ref__', '?')} ({options})>"

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Submit ``f(*args, **kwargs)`` with the bound options; its handle."""
        return _blocking(self._client).submit(self._function, *args, kwargs=kwargs, **self._options)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """``submit``, as Celery spells it."""
        return self.submit(*args, **kwargs)

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: Moment | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
        task_id: str | None = None,
        queue: str | None = None,
    ) -> TaskHandle:
        """Celery's ``apply_async``: ``countdown`` (seconds) is our ``delay``, ``eta`` our
        ``run_at``, ``expires`` (seconds from now, or an aware ``datetime``) our ``ttl``.
        ``priority`` is ours, 0-9, higher first (Celery's depends on the broker)."""
        options = _celery_options(countdown, eta, expires, priority, task_id, queue)
        return _blocking(self._client).submit(
            self._function, *args, kwargs=kwargs, **{**self._options, **options}
        )

    async def asubmit(self, *args: P.args, **kwargs: P.kwargs) -> AsyncTaskHandle:
        """``submit`` through an ``AsyncClient`` (``client=``, else the event loop's default)."""
        client = _asyncio(self._client)
        return await client.submit(self._function, *args, kwargs=kwargs, **self._options)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncTaskHandle:
        """``asubmit``, as Celery would spell it."""
        return await self.asubmit(*args, **kwargs)

    async def aapply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: Moment | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
        task_id: str | None = None,
        queue: str | None = None,
    ) -> AsyncTaskHandle:
        """``apply_async`` through an ``AsyncClient``."""
        options = _celery_options(countdown, eta, expires, priority, task_id, queue)
        client = _asyncio(self._client)
        return await client.submit(
            self._function, *args, kwargs=kwargs, **{**self._options, **options}
        )


class TaskFunction(Protocol[P, R_co]):
    """What ``@asynctask.task`` returns: the function, called as before, plus the calls that
    submit it (see the module docstring). ``submit``, ``delay`` and their async twins take the
    function's own arguments, checked against its signature; options go through ``options``.
    """

    __name__: str
    __qualname__: str
    __asynctask_ref__: str
    __asynctask_options__: dict[str, Any]
    __asynctask_defaults__: dict[str, Any]
    __asynctask_limits__: dict[str, float] | None
    __asynctask_non_retryable__: tuple[type[BaseException], ...]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Submit ``f(*args, **kwargs)`` through the default client; its handle.

        Before ``options`` existed, ``submit`` took submit options and ``client=`` as keywords
        and the function's keyword arguments as ``kwargs=``. That still works at run time,
        with a ``DeprecationWarning``, for a keyword the function does not accept: a keyword
        it accepts is always its own (``f.submit(priority=3)`` passes ``priority`` to a
        function that has that parameter). Given an ``AsyncClient`` that way, it returns
        the coroutine to await, as it did."""
        ...

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """``submit``, as Celery spells it."""
        ...

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: Moment | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
        task_id: str | None = None,
        queue: str | None = None,
    ) -> TaskHandle:
        """Celery's ``apply_async`` (see ``TaskCall.apply_async``)."""
        ...

    def asubmit(
        self, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, AsyncTaskHandle]: ...

    def adelay(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, AsyncTaskHandle]: ...

    def aapply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: Moment | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
        task_id: str | None = None,
        queue: str | None = None,
    ) -> Coroutine[Any, Any, AsyncTaskHandle]: ...

    def options(
        self, *, client: Client | AsyncClient | None = None, **options: Unpack[SubmitOptions]
    ) -> TaskCall[P]:
        """The calls above with these submit options (and client) bound."""
        ...


_ALLOWED = frozenset({"queue", "priority", "retries", "timeout", "ttl", "on_success", "on_failure"})
#: Options only the daemon reads, from the worker's report (never submit options).
_CODE_ONLY = frozenset({"retry_limit_kills"})
_LIMITS = frozenset({"concurrency", "rate", "burst"})
_WORKER_SIDE = frozenset({"non_retryable"})


@overload
def task(fn: Callable[P, R], /) -> TaskFunction[P, R]: ...


@overload
def task(
    fn: None = None, /, **defaults: Unpack[TaskOptions]
) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...


def task(fn: Callable[..., Any] | None = None, /, **defaults: Any) -> Any:
    """Use as ``@task`` or ``@task(retries=5, timeout="30s", priority=7)``.

    ``queue``, ``priority``, ``retries``, ``timeout``, ``ttl``, ``on_success``, ``on_failure``
    and the resource limits (``memory``, ``cpu``, ...) are the function's defaults: a submit's
    own options win over them, and so do the config file's ``[functions."..."]`` keys. They
    apply however the task is submitted (by name too: the worker that imports the function
    tells the daemon). They are checked here, when the module is imported.

    ``non_retryable=(ValueError, ...)``: when the function raises one of these, the task fails
    at once, without retries (the worker checks it; nothing about it travels on the wire).

    ``retry_limit_kills=True``: an attempt killed for going over a limit (memory, CPU time,
    timeout...) is retried like any failure, within ``retries``; by default such a kill ends
    the task at once. The daemon reads it from the worker's report of the function (a killed
    worker can say nothing more), so it holds however the task was submitted.

    ``concurrency``, ``rate`` (``"20/s"``, or a number per second) and ``burst`` are the
    function's own limits rather than submit defaults: every submit through the function
    object carries them, the daemon applies them to the function at dispatch, and keys set for
    the function in the config file win over them (an operator can always override code).
    """
    unknown = set(defaults) - _ALLOWED - _CODE_ONLY - _LIMITS - _WORKER_SIDE - RESOURCE_KEYS
    if unknown:
        raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
    limits = _limits({key: defaults.pop(key) for key in _LIMITS & set(defaults)})
    non_retryable = _exception_classes(defaults.pop("non_retryable", ()))
    code_only = {key: defaults.pop(key) for key in _CODE_ONLY & set(defaults)}
    options = {
        key: _ref(value) if key in ("on_success", "on_failure") else value
        for key, value in defaults.items()
    }
    wire = _code_defaults(options)
    if "retry_limit_kills" in code_only:
        kills = code_only["retry_limit_kills"]
        if not isinstance(kills, bool):
            raise ValueError(f"retry_limit_kills must be True or False, not {kills!r}")
        wire["retry_limit_kills"] = kills

    def decorate(function: Callable[P, R]) -> TaskFunction[P, R]:
        ref = f"{function.__module__}:{function.__qualname__}"
        attrs: Any = function
        attrs.__asynctask_ref__ = ref
        attrs.__asynctask_options__ = options
        # The options as the daemon takes them (``protocol.requests.CodeDefaults``): sent with
        # a submit through the function, and by the worker that imports it.
        attrs.__asynctask_defaults__ = wire
        attrs.__asynctask_limits__ = limits
        # Read by the worker that runs the function: these exceptions end the task as failed
        # at once (kind "fail"), whatever its retries.
        attrs.__asynctask_non_retryable__ = non_retryable
        plain: TaskCall[P] = TaskCall(function, {})
        accepts = _Accepts(function)

        def submit(*args: Any, **kwargs: Any) -> Any:
            own, options, client = accepts.split(kwargs)
            if options is None:
                return plain.submit(*args, **own)
            active = client if client is not None else _default()
            return active.submit(function, *args, kwargs=own, **options)

        def options_(*, client: Client | AsyncClient | None = None, **options: Any) -> TaskCall[P]:
            return TaskCall(function, options, client)

        attrs.submit = submit
        attrs.delay = plain.submit
        attrs.apply_async = plain.apply_async
        attrs.asubmit = plain.asubmit
        attrs.adelay = plain.asubmit
        attrs.aapply_async = plain.aapply_async
        attrs.options = options_
        return cast("TaskFunction[P, R]", function)

    if fn is not None:
        return decorate(fn)
    return decorate


class _Accepts:
    """Which keywords of ``f.submit(...)`` are the function's own, and which are options given
    the old way (``priority=7``, ``client=``, ``kwargs=``): any keyword the function does not
    accept but ``submit`` used to. Its signature is read at the first call that needs it."""

    __slots__ = ("_function", "_names", "_var_keyword")

    def __init__(self, function: Callable[..., Any]) -> None:
        self._function = function
        self._names: frozenset[str] | None = None
        self._var_keyword = False

    def split(
        self, kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any] | None, Client | AsyncClient | None]:
        """(the function's keywords, the old-style options or None, the old-style client)."""
        if not kwargs:
            return kwargs, None, None
        from asynctask.client._options import SUBMIT_OPTIONS

        legacy = SUBMIT_OPTIONS | {"client", "kwargs"}
        if legacy.isdisjoint(kwargs):
            return kwargs, None, None
        names = self._accepted()
        if self._var_keyword:
            return kwargs, None, None
        old = {key for key in kwargs if key in legacy and key not in names}
        if not old:
            return kwargs, None, None
        warnings.warn(
            f"{self._function.__qualname__}.submit() got {', '.join(sorted(old))}, which it "
            "takes as submit options the old way; pass options with .options(...).submit(...) "
            "and the function's keyword arguments as keywords",
            DeprecationWarning,
            stacklevel=3,
        )
        own = {key: value for key, value in kwargs.items() if key not in old}
        options = {key: kwargs[key] for key in old}
        client = options.pop("client", None)
        own.update(options.pop("kwargs", None) or {})
        return own, options, client

    def _accepted(self) -> frozenset[str]:
        if self._names is None:
            import inspect  # only a call with old-style keywords pays for it

            try:
                parameters = list(inspect.signature(self._function).parameters.values())
            except (TypeError, ValueError):  # no signature to read: every keyword is its own
                parameters = []
                self._var_keyword = True
            if any(p.kind is p.VAR_KEYWORD for p in parameters):
                self._var_keyword = True
            kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            self._names = frozenset(p.name for p in parameters if p.kind in kinds)
        return self._names


def _default() -> Client:
    from asynctask.client._default import default_client

    return default_client()


def _blocking(client: Client | AsyncClient | None) -> Client:
    if client is None:
        return _default()
    from asynctask.client import AsyncClient

    if isinstance(client, AsyncClient):
        raise TypeError(
            "this call blocks: it needs a Client; with an AsyncClient use "
            "asubmit, adelay or aapply_async"
        )
    return client


def _asyncio(client: Client | AsyncClient | None) -> AsyncClient:
    from asynctask.client import AsyncClient

    if client is None:
        from asynctask.client._default import default_async_client

        return default_async_client()
    if not isinstance(client, AsyncClient):
        raise TypeError(
            "asubmit, adelay and aapply_async need an AsyncClient; with a Client use "
            "submit, delay or apply_async"
        )
    return client


def _celery_options(
    countdown: float | None,
    eta: Moment | None,
    expires: float | datetime | None,
    priority: int | None,
    task_id: str | None,
    queue: str | None,
) -> dict[str, Any]:
    """``apply_async``'s Celery names as our submit options."""
    options: dict[str, Any] = {}
    if countdown is not None:
        options["delay"] = countdown
    if eta is not None:
        options["run_at"] = eta
    if expires is not None:
        if isinstance(expires, datetime):
            if expires.tzinfo is None:
                raise ValueError("expires needs a timezone-aware datetime")
            left = (expires - datetime.now(UTC)).total_seconds()
            options["ttl"] = max(0.0, left)
        else:
            options["ttl"] = expires
    for name, value in (("priority", priority), ("task_id", task_id), ("queue", queue)):
        if value is not None:
            options[name] = value
    return options


def _code_defaults(options: Mapping[str, Any]) -> dict[str, Any]:
    """The decorator's options in the daemon's form (``protocol.requests.CodeDefaults``):
    seconds for durations, ``Limits`` wire form for resources. Checked now, so that a mistake
    fails the import of the module rather than a submit or the worker's report."""
    wire: dict[str, Any] = {}
    if "queue" in options:
        queue = options["queue"]
        if not isinstance(queue, str) or not is_name(queue):
            raise ValueError(f"queue must be a queue name, not {queue!r}")
        wire["queue"] = queue
    if "priority" in options:
        priority = options["priority"]
        if type(priority) is not int or not PRIORITY_MIN <= priority <= PRIORITY_MAX:
            raise ValueError(
                f"priority must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX}, "
                f"not {priority!r}"
            )
        wire["priority"] = priority
    if "retries" in options:
        retries = options["retries"]
        if type(retries) is not int or retries < 0:
            raise ValueError(f"retries must be a whole number of 0 or more, not {retries!r}")
        wire["retries"] = retries
    for name in ("timeout", "ttl"):
        if name in options:
            wire[name] = parse_duration(options[name])
    for name in ("on_success", "on_failure"):
        if name in options:
            wire[name] = options[name]
    resources = {key: options[key] for key in RESOURCE_KEYS & set(options)}
    if "user" in resources:
        raise ValueError("user can only be set in the daemon's [workers] config")
    if resources:
        wire["resources"] = Limits.from_wire(resources).to_wire()
    return wire


def _exception_classes(raw: Any) -> tuple[type[BaseException], ...]:
    classes = raw if isinstance(raw, tuple | list) else (raw,)
    for item in classes:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"non_retryable takes exception classes, not {item!r}")
    return tuple(classes)


def _limits(raw: dict[str, Any]) -> dict[str, float] | None:
    """Check limits when the module is imported, not at the first submit."""
    limits: dict[str, float] = {}
    concurrency = raw.get("concurrency")
    if concurrency is not None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(
                f"concurrency must be a whole number of 1 or more, not {concurrency!r}"
            )
        limits["concurrency"] = concurrency
    if raw.get("rate") is not None:
        limits["rate"] = parse_rate(raw["rate"])
    burst = raw.get("burst")
    if burst is not None:
        if isinstance(burst, bool) or not isinstance(burst, int | float) or not burst >= 1:
            raise ValueError(f"burst must be a number of 1 or more, not {burst!r}")
        limits["burst"] = float(burst)
    return limits or None


def _ref(value: Any) -> str:
    if isinstance(value, str):
        return value
    ref = getattr(value, "__asynctask_ref__", None)
    return ref if isinstance(ref, str) else f"{value.__module__}:{value.__qualname__}"
