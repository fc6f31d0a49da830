"""``@asynctask.task``: attach submit defaults to a plain function and give it ``.submit``.

The function itself is returned unchanged (plus attributes), so workers import and call it like
any other function and tests can call it directly. Defaults apply on the client side at submit
time - the daemon never imports user code - and explicit submit options win over them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asynctask.model import parse_rate

F = TypeVar("F", bound=Callable[..., Any])

_ALLOWED = frozenset({"queue", "priority", "retries", "timeout", "ttl", "on_success", "on_failure"})
_LIMITS = frozenset({"concurrency", "rate", "burst"})


def task(fn: F | None = None, /, **defaults: Any) -> Any:
    """Use as ``@task`` or ``@task(retries=5, timeout="30s", priority=7)``.

    ``concurrency``, ``rate`` (``"20/s"``, or a number per second) and ``burst`` are the
    function's own limits rather than submit defaults: every submit carries them, the daemon
    applies them to the function at dispatch, and keys set for the function in the config file
    win over them (an operator can always override code).
    """
    unknown = set(defaults) - _ALLOWED - _LIMITS
    if unknown:
        raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
    limits = _limits({key: defaults.pop(key) for key in _LIMITS & set(defaults)})

    def decorate(function: F) -> F:
        ref = f"{function.__module__}:{function.__qualname__}"
        attrs: Any = function
        attrs.__asynctask_ref__ = ref
        attrs.__asynctask_options__ = {
            key: _ref(value) if key in ("on_success", "on_failure") else value
            for key, value in defaults.items()
        }
        attrs.__asynctask_limits__ = limits

        def submit(*args: Any, client: Any = None, **options: Any) -> Any:
            from asynctask.client import Client

            kwargs = options.pop("kwargs", None)
            active = client if client is not None else Client()
            return active.submit(function, *args, kwargs=kwargs, **options)

        attrs.submit = submit
        return function

    if fn is not None:
        return decorate(fn)
    return decorate


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
