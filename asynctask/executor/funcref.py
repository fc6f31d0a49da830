"""A task's function reference (``pkg.mod:attr.path``) turned into the callable it names.

Every way that can fail - a malformed reference, a module that is missing or raises at import,
a missing attribute, something that is not callable - becomes an ``ImportFailure`` whose message
says exactly which, because the user reads it in the task's error, not in a worker's traceback.

Imported by the worker child: stdlib and ``asynctask.model`` only.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from asynctask.model import is_function_ref


class ImportFailure(Exception):
    """The function reference cannot be turned into a callable; carries the user-facing message."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause


def import_function(ref: str) -> Callable[..., Any]:
    """``pkg.mod:attr.path`` to a callable, or ``ImportFailure`` saying exactly what is wrong."""
    if not is_function_ref(ref):
        raise ImportFailure(
            f"cannot import {ref!r}: a function reference is written 'package.module:function'"
        )
    module_name, _, attr_path = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            raise ImportFailure(
                f"cannot import {ref!r}: no module named {exc.name!r} on the worker's sys.path "
                f"(the working directory {os.getcwd()!r} and the configured paths)",
                exc,
            ) from None
        raise ImportFailure(
            f"cannot import {ref!r}: importing module {module_name!r} failed: "
            f"{type_name(exc)}: {exc}",
            exc,
        ) from None
    except BaseException as exc:  # any error in the module's top level code
        raise ImportFailure(
            f"cannot import {ref!r}: importing module {module_name!r} failed: "
            f"{type_name(exc)}: {exc}",
            exc,
        ) from None
    parts = attr_path.split(".")
    for depth, part in enumerate(parts):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            missing = ".".join(parts[: depth + 1])
            raise ImportFailure(
                f"cannot import {ref!r}: module {module_name!r} has no attribute {missing!r}", exc
            ) from None
    unwrapped = getattr(target, "__asynctask_fn__", None)
    if unwrapped is not None:
        target = unwrapped  # an @asynctask.task object: call the plain function it wraps
    if not callable(target):
        raise ImportFailure(
            f"cannot import {ref!r}: it is a {type(target).__name__} object, not a callable"
        )
    function: Callable[..., Any] = target
    return function


def type_name(exc: BaseException) -> str:
    """``ValueError`` for builtins, ``package.module.Class`` for everything else."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"
