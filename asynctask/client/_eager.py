"""Where eager mode (``asynctask.testing.eager()``) plugs into the clients.

The clients cannot import ``asynctask.testing`` (it imports them), so eager mode installs its
runner here and every submit, ``status`` and ``wait`` of ``AsyncClient`` and ``Client`` looks
here first: one attribute read when eager mode is off. ``HOOKS.AsyncRunner`` is what the
asyncio client calls; the generated blocking client calls ``HOOKS.Runner`` (``unasync`` strips
the ``Async`` prefix), so one source serves both.
"""

from __future__ import annotations

from typing import Any, Protocol

from asynctask.protocol.requests import TaskSpec


class Runner(Protocol):
    """Runs submitted tasks at once, in this process (``asynctask/testing/eager.py``)."""

    def submit(self, specs: list[TaskSpec]) -> list[tuple[str, str]]:
        """Run each spec now; their (id, tenant)."""
        ...

    def status(self, task_id: str, tenant: str) -> dict[str, Any]:
        """The task in the wire form of a ``status`` reply's ``task``; ``NotFound`` if none."""
        ...


class AsyncRunner(Protocol):
    """``Runner`` for the asyncio client: a coroutine function runs on the caller's loop."""

    async def submit(self, specs: list[TaskSpec]) -> list[tuple[str, str]]: ...

    async def status(self, task_id: str, tenant: str) -> dict[str, Any]: ...


class Hooks:
    """The runners eager mode installed, ``None`` when it is off. Attribute names in pairs, as
    ``unasync`` maps the async client's names onto the blocking client's."""

    __slots__ = ("AsyncRunner", "Runner")

    def __init__(self) -> None:
        self.Runner: Runner | None = None
        self.AsyncRunner: AsyncRunner | None = None


HOOKS = Hooks()
