"""Live updates for open consoles, by server-sent events (``/events``), with no polling storm.

One loop runs while at least one console is open. Once per ``TICK`` it renders each distinct
view once (a view is a page and the set of tenants its viewers may see: consoles of the same
scope share it) and pushes the text to every console of that view whose last update differs.
So the daemon's work per tick is one ``stats`` per open scope, plus one ``status`` and ``logs``
per followed task, whatever the number of open tabs; a console gets at most one update a
second, none while nothing changes, and a keep-alive comment every ``KEEPALIVE`` seconds.

A console that does not read its updates keeps only the newest (a queue of one); one whose
session expires, or whose scope changes (a reload of ``[auth.users]``), gets an ``end`` event
and is closed. At most ``MAX_STREAMS`` are open at once, so streams never take every one of
the HTTP server's connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Final

log = logging.getLogger(__name__)

#: Seconds between updates (at most one update per console per tick).
TICK: Final = 1.0
#: Seconds of silence after which a comment keeps proxies from closing the stream.
KEEPALIVE: Final = 15.0
#: Event streams open at once (``httpserver.MAX_CONNECTIONS`` is 32).
MAX_STREAMS: Final = 16

#: Renders a view: its HTML, or ``None`` when it is gone (the task was deleted).
Render = Callable[[Hashable], Awaitable[str | None]]


@dataclass(eq=False)
class _Console:
    view: Hashable
    personal: Callable[[str], str]  # the shared text made this console's (its CSRF token)
    alive: Callable[[], bool]  # its session is still valid, its scope unchanged
    updates: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(1))
    last: str | None = None


class Live:
    """The open consoles and the loop that updates them; ``render`` is called once per view
    per tick."""

    def __init__(self, render: Render, tick: float = TICK, keepalive: float = KEEPALIVE) -> None:
        self._render = render
        self._tick = tick
        self._keepalive = keepalive
        self._consoles: set[_Console] = set()
        self._loop: asyncio.Task[None] | None = None
        self._closed = False
        self.renders = 0  # views rendered since start (tests: shared, not one per console)

    def __repr__(self) -> str:
        return f"<Live consoles={len(self._consoles)} renders={self.renders}>"

    @property
    def full(self) -> bool:
        return len(self._consoles) >= MAX_STREAMS or self._closed

    def views(self) -> set[Hashable]:
        """The views some console has open now."""
        return {console.view for console in self._consoles}

    async def follow(
        self, view: Hashable, personal: Callable[[str], str], alive: Callable[[], bool]
    ) -> AsyncGenerator[bytes, None]:
        """One console's event stream: ``update`` events with the view's HTML, ``end`` when
        the view is gone or the session is over."""
        console = _Console(view, personal, alive)
        self._consoles.add(console)
        if self._loop is None or self._loop.done():
            self._loop = asyncio.ensure_future(self._run())
        try:
            yield b"retry: 5000\n\n"
            while True:
                try:
                    async with asyncio.timeout(self._keepalive):
                        text = await console.updates.get()
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if text is None:
                    yield b"event: end\ndata: \n\n"
                    return
                yield _event("update", console.personal(text))
        finally:
            self._consoles.discard(console)

    async def close(self) -> None:
        """End every stream (the daemon stops) and the loop."""
        self._closed = True
        for console in list(self._consoles):
            _offer(console, None)
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def _run(self) -> None:
        while self._consoles:
            await asyncio.sleep(self._tick)
            await self.update()

    async def update(self) -> None:
        """One tick: each view rendered once, pushed to its consoles where it changed."""
        by_view: dict[Hashable, list[_Console]] = {}
        for console in list(self._consoles):
            if not console.alive():
                _offer(console, None)
                continue
            by_view.setdefault(console.view, []).append(console)
        for view, consoles in by_view.items():
            try:
                text = await self._render(view)
            except Exception as exc:  # one view's failure never stops the others
                log.warning("web console: live view %r failed: %r", view, exc)
                continue
            self.renders += 1
            for console in consoles:
                if text is None or text != console.last:
                    console.last = text
                    _offer(console, text)


def _offer(console: _Console, text: str | None) -> None:
    """Replace what the console has not read yet: it only ever needs the newest."""
    with contextlib.suppress(asyncio.QueueEmpty):
        console.updates.get_nowait()
    console.updates.put_nowait(text)


def _event(name: str, data: str) -> bytes:
    """An SSE event. A bare CR ends a line in SSE too: a task's log with one could otherwise
    start a field of its own, so CRs become newlines first."""
    lines = data.replace("\r\n", "\n").replace("\r", "\n")
    lines = "".join(f"data: {line}\n" for line in lines.split("\n"))
    return f"event: {name}\n{lines}\n".encode()
