"""Demo task functions: plain Python functions, sync or async, run in the daemon's workers."""

from __future__ import annotations

import asyncio
import hashlib

import asynctask


@asynctask.task(retries=2)
def add(a: int, b: int) -> int:
    return a + b


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def digest(text: str, rounds: int = 10_000) -> str:
    """A little CPU work: repeated SHA-256."""
    data = text.encode()
    for _ in range(rounds):
        data = hashlib.sha256(data).digest()
    return data.hex()[:16]


async def fetch(name: str, seconds: float = 0.2) -> str:
    """Stands in for I/O: async functions run on the worker's event loop."""
    await asyncio.sleep(seconds)
    return f"fetched {name}"


def flaky(succeed_on: int = 3) -> str:
    """Fails until its `succeed_on`-th attempt: shows retries with backoff."""
    attempt = asynctask.current_task().attempt
    if attempt < succeed_on:
        raise ConnectionError(f"downstream unavailable (attempt {attempt})")
    return f"succeeded on attempt {attempt}"


def reject(order: str) -> None:
    """asynctask.Fail ends a task at once, without retries (it lands in the dead letters)."""
    raise asynctask.Fail(f"order {order} is invalid")
