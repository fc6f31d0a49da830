"""Task functions for ``test_eager.py`` (imported by reference, as a worker would)."""

from __future__ import annotations

import asyncio
from typing import Any

import asynctask

CALLS: list[Any] = []


@asynctask.task(retries=2)
def flaky(fail_times: int) -> int:
    """Fails its first ``fail_times`` attempts."""
    attempt = asynctask.current_task().attempt
    if attempt <= fail_times:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt


@asynctask.task
def add(a: int, b: int = 0) -> int:
    return a + b


@asynctask.task
def priority_kw(priority: str, width: int = 1) -> str:
    """Has a parameter named like a submit option: it must stay the function's own."""
    return f"{priority}:{width}"


@asynctask.task
async def async_double(n: int) -> int:
    await asyncio.sleep(0)
    return n * 2


def whoami() -> dict[str, Any]:
    ctx = asynctask.current_task()
    return {"id": ctx.id, "tenant": ctx.tenant, "attempt": ctx.attempt, "labels": ctx.labels}


def shape(value: Any) -> str:
    return type(value).__name__


class Opaque:
    """No wire encoding carries it."""


def returns_an_object() -> Opaque:
    return Opaque()


@asynctask.task(retries=5)
def give_up() -> None:
    raise asynctask.Fail("no point retrying")


@asynctask.task(on_success="tests.testing.eagertasks:record", retries=0)
def chained(n: int) -> int:
    return n + 1


def record(info: dict[str, Any]) -> None:
    CALLS.append(info)
