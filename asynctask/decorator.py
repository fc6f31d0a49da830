"""``@asynctask.task``: attach submit defaults to a plain function and give it ``.submit``.

The function itself is returned unchanged (plus attributes), so workers import and call it like
any other function and tests can call it directly. Defaults apply on the client side at submit
time - the daemon never imports user code - and explicit submit options win over them.

For type checkers the result is a ``TaskFunction[P, R]``: the function's own signature
(``ParamSpec``) and return type, plus a typed ``submit``, so a user's ``mypy --strict`` checks
both ``resize("a.png", 200)`` and ``resize.submit("a.png", priority=7)``
(``tests/test_client_typing.py`` runs it on the README's code). The client types are imported
only for the type checker: a worker importing ``asynctask`` for ``Fail`` does not load them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast, overload

from asynctask.model import parse_rate
from asynctask.resources import RESOURCE_KEYS, Limits

if TYPE_CHECKING:
    from typing import Unpack

    from asynctask.client import AsyncClient, AsyncTaskHandle, Client, TaskHandle
    from asynctask.client._options import SubmitOptions, TaskOptions

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class TaskFunction(Protocol[P, R_co]):
    """What ``@asynctask.task`` returns: the function, called as before, plus ``submit``.

    ``submit`` takes the function's positional arguments, its keyword arguments as
    ``kwargs=``, and ``submit``'s options (which win over the decorator's defaults). It
    submits through ``client=``, by default a new ``Client()``; given an ``AsyncClient`` it
    returns the coroutine to await. Its arguments are ``Any``: the function's own parameters
    cannot be checked there because its keyword arguments travel in ``kwargs=``.
    """

    __name__: str
    __qualname__: str
    __asynctask_ref__: str
    __asynctask_options__: dict[str, Any]
    __asynctask_limits__: dict[str, float] | None
    __asynctask_non_retryable__: tuple[type[BaseException], ...]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    @overload
    def submit(
        self,
        *args: Any,
        client: AsyncClient,
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SubmitOptions],
    ) -> Coroutine[Any, Any, AsyncTaskHandle]: ...

    @overload
    def submit(
        self,
        *args: Any,
        client: Client | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SubmitOptions],
    ) -> TaskHandle: ...


_ALLOWED = frozenset({"queue", "priority", "retries", "timeout", "ttl", "on_success", "on_failure"})
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

    ``non_retryable=(ValueError, ...)``: when the function raises one of these, the task fails
    at once, without retries (the worker checks it; nothing about it travels on the wire).

    ``concurrency``, ``rate`` (``"20/s"``, or a number per second) and ``burst`` are the
    function's own limits rather than submit defaults: every submit carries them, the daemon
    applies them to the function at dispatch, and keys set for the function in the config file
    win over them (an operator can always override code).
    """
    unknown = set(defaults) - _ALLOWED - _LIMITS - _WORKER_SIDE - RESOURCE_KEYS
    if unknown:
        raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
    limits = _limits({key: defaults.pop(key) for key in _LIMITS & set(defaults)})
    non_retryable = _exception_classes(defaults.pop("non_retryable", ()))
    # memory=, cpu=, ... are checked now and travel with every submit (as submit options do)
    Limits.from_wire({key: defaults[key] for key in RESOURCE_KEYS & set(defaults)})

    def decorate(function: Callable[P, R]) -> TaskFunction[P, R]:
        ref = f"{function.__module__}:{function.__qualname__}"
        attrs: Any = function
        attrs.__asynctask_ref__ = ref
        attrs.__asynctask_options__ = {
            key: _ref(value) if key in ("on_success", "on_failure") else value
            for key, value in defaults.items()
        }
        attrs.__asynctask_limits__ = limits
        # Read by the worker that runs the function: these exceptions end the task as failed
        # at once (kind "fail"), whatever its retries.
        attrs.__asynctask_non_retryable__ = non_retryable

        def submit(*args: Any, client: Client | AsyncClient | None = None, **options: Any) -> Any:
            from asynctask.client import Client

            kwargs = options.pop("kwargs", None)
            active = client if client is not None else Client()
            return active.submit(function, *args, kwargs=kwargs, **options)

        attrs.submit = submit
        return cast("TaskFunction[P, R]", function)

    if fn is not None:
        return decorate(fn)
    return decorate


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
