"""``@asynctask.task``: attach submit defaults to a plain function and give it ``.submit``.

The function itself is returned unchanged (plus attributes), so workers import and call it like
any other function and tests can call it directly. Defaults apply on the client side at submit
time - the daemon never imports user code - and explicit submit options win over them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_ALLOWED = frozenset({"queue", "priority", "retries", "timeout", "ttl", "on_success", "on_failure"})


def task(fn: F | None = None, /, **defaults: Any) -> Any:
    """Use as ``@task`` or ``@task(retries=5, timeout="30s", priority=7)``."""
    unknown = set(defaults) - _ALLOWED
    if unknown:
        raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")

    def decorate(function: F) -> F:
        ref = f"{function.__module__}:{function.__qualname__}"
        attrs: Any = function
        attrs.__asynctask_ref__ = ref
        attrs.__asynctask_options__ = {
            key: _ref(value) if key in ("on_success", "on_failure") else value
            for key, value in defaults.items()
        }

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


def _ref(value: Any) -> str:
    if isinstance(value, str):
        return value
    ref = getattr(value, "__asynctask_ref__", None)
    return ref if isinstance(ref, str) else f"{value.__module__}:{value.__qualname__}"
