"""The ``top`` loop: poll, draw, read keys, act - one thread, no timers.

Each turn waits in ``select`` on stdin until a key arrives or the next poll is due, so an idle
view costs one ``stats`` request per interval and nothing in between, while a key is answered at
once (a pause or resume also polls at once, so its effect shows without waiting the interval).
A ``nodes`` request rides along at most every ``NODES_EVERY`` seconds (``NodesPoll``): the
members of a cluster change at heartbeat pace, not per frame.

A daemon that stops answering does not end the view: the last frame stays, the status line says
why, and the next poll tries again. Only the first poll is allowed to fail the command (exit 3),
before the screen is taken, so ``top`` against no daemon prints one line like every command.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from rich.console import Console
from rich.live import Live

from asynctask.errors import AsynctaskError, UsageError
from asynctask.tui.keys import KeyParser, cbreak, read_keys
from asynctask.tui.render import Layout, frame
from asynctask.tui.view import Action, Snapshot, ViewState, on_key

ONCE_WIDTH = 160  # --once into a pipe: wide enough for every column


class StatsClient(Protocol):
    """What ``top`` needs of ``asynctask.Client``."""

    def stats(self, tenant: str | None = None) -> dict[str, Any]: ...

    def pause(self, tenant: str | None = None, queue: str | None = None) -> int: ...

    def resume(self, tenant: str | None = None, queue: str | None = None) -> int: ...

    def nodes(self) -> dict[str, Any]: ...


#: Seconds between two ``nodes`` requests of ``top`` (a heartbeat is a third of a lease, 3.3 s
#: at the defaults, so a node that comes or goes shows within a few seconds).
NODES_EVERY = 5.0


@dataclass(slots=True)
class NodesPoll:
    """The last ``nodes`` reply, asked again once ``every`` seconds have passed (``now`` is the
    caller's monotonic clock). A daemon that refuses the op (an older one: "unknown op") is not
    asked again; any other error keeps the last reply, as ``poll`` keeps the last snapshot."""

    every: float = NODES_EVERY
    reply: dict[str, Any] | None = None
    due: float = float("-inf")
    supported: bool = True

    def poll(self, client: StatsClient, now: float) -> dict[str, Any] | None:
        if self.supported and now >= self.due:
            self.due = now + self.every
            try:
                self.reply = client.nodes()
            except UsageError:
                self.supported, self.reply = False, None
            except AsynctaskError:
                pass
        return self.reply


def perform(client: StatsClient, action: Action, state: ViewState) -> ViewState:
    """Pause or resume a queue; the outcome (or the daemon's refusal) goes to the status line."""
    where = f"{action.tenant}/{action.queue}"
    call = client.pause if action.kind == "pause" else client.resume
    try:
        changed = call(tenant=action.tenant, queue=action.queue)
    except AsynctaskError as exc:
        return replace(state, message=f"{action.kind} {where}: {exc.message}")
    verb = "paused" if action.kind == "pause" else "resumed"
    message = f"{verb} {where}" if changed else f"{where} was already {verb}"
    return replace(state, message=message)


def poll(client: StatsClient, snapshot: Snapshot, state: ViewState) -> tuple[Snapshot, ViewState]:
    """A fresh snapshot, or the old one and the reason on the status line."""
    try:
        fresh = client.stats()
    except AsynctaskError as exc:
        return snapshot, replace(state, message=f"daemon: {exc.message}")
    lost = state.message.startswith("daemon: ")
    return fresh, replace(state, message="" if lost else state.message)


def run_top(
    client: StatsClient,
    *,
    tenant: str | None = None,
    interval: float = 1.0,
    once: bool = False,
    source: str = "",
) -> None:
    """``asynctask top``: print one frame (``once``), or run the live view until ``q``.

    Raises ``UsageError`` without a terminal on stdin and stdout (there is nothing to draw on
    and no keys to read), and whatever the first ``stats`` raises (no daemon: exit 3)."""
    if interval <= 0:
        raise UsageError("--interval must be positive")
    state = ViewState(tenant=tenant)
    if once:
        snapshot = client.stats()
        nodes = NodesPoll().poll(client, time.monotonic())
        console = Console(width=None if sys.stdout.isatty() else ONCE_WIDTH)
        layout = Layout(console.width, None, interactive=False)
        console.print(frame(snapshot, state, layout, source, nodes))
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("top needs a terminal on stdin and stdout; use --once to print one frame")
    snapshot = client.stats()
    _live(client, snapshot, state, interval, source)


@contextlib.contextmanager
def _terminated_as_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C does (the default action would leave the terminal in cbreak
    mode on the alternate screen): exit status 143, as a shell reports a SIGTERM death. Ctrl-C
    raises ``KeyboardInterrupt`` even where ``top`` was started with SIGINT ignored (a
    background job of a non-interactive shell inherits that): a view that Ctrl-C cannot quit
    would hold the terminal."""

    def leave(signum: int, _: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, previous)


def _live(
    client: StatsClient, snapshot: Snapshot, state: ViewState, interval: float, source: str
) -> None:
    console = Console()
    parser = KeyParser()
    fd = sys.stdin.fileno()
    live = Live(
        console=console,
        screen=True,
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    members = NodesPoll()
    with _terminated_as_exit(), cbreak(fd), live:
        due = time.monotonic() + interval
        while True:
            nodes = members.poll(client, time.monotonic())
            layout = Layout(console.width, console.height)
            live.update(frame(snapshot, state, layout, source, nodes), refresh=True)
            for key in read_keys(fd, parser, due - time.monotonic()):
                state, action = on_key(snapshot, state, key)
                if action is None:
                    continue
                if action.kind == "quit":
                    return
                state = perform(client, action, state)
                due = 0.0  # show the effect now
            if time.monotonic() >= due:
                snapshot, state = poll(client, snapshot, state)
                due = time.monotonic() + interval
