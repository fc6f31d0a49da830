"""The daemon's end of the fork server (``zygote.py``): ask for a worker, hear when one exits.

The pool starts one ``ForkServer`` and spawns workers through it: ``fork`` sends the worker's
environment, working directory and descriptors and returns its pid once forked. The worker's
exit arrives through the ``on_exit(pid, returncode)`` given to ``fork``, as the process-exit
callback would for a worker the pool had spawned itself - possibly before ``fork`` returns, for
a worker that dies at once. If the fork server itself dies, its workers die with it (their
parent-death signal): each one's ``on_exit`` hears ``None`` for a return code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from asynctask import protocol
from asynctask.executor.zygote import MAX_RECORD

log = logging.getLogger("asynctask.executor")

#: How long the fork server may take to say it is ready.
START_TIMEOUT = 15.0


ExitCallback = Callable[[int, "int | None"], None]


class ForkServerError(RuntimeError):
    """The fork server could not start, or could not fork one worker."""


class _Exited(asyncio.SubprocessProtocol):
    def __init__(self, server: ForkServer) -> None:
        self._server = server

    def process_exited(self) -> None:
        self._server._lost("the fork server exited")


class ForkServer:
    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._process: asyncio.SubprocessTransport | None = None
        self._ready: asyncio.Future[int] | None = None
        self._pending: dict[int, tuple[asyncio.Future[int], ExitCallback]] = {}
        self._next_id = 1
        self._children: dict[int, ExitCallback] = {}  # forked, exit not yet reported
        self.pid = 0
        self.alive = False

    def __repr__(self) -> str:
        return f"<ForkServer pid={self.pid} alive={self.alive} children={len(self._children)}>"

    @property
    def running(self) -> bool:
        """Whether its process may still exist (started, and not reaped by ``close``)."""
        return self._process is not None and self._process.get_returncode() is None

    async def start(
        self, python: str, env: Mapping[str, str], cwd: str | None, output: int | None
    ) -> None:
        """Start it and wait until it has imported the worker runtime; ``ForkServerError``
        if it cannot."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        self._sock = ours
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._readable)
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: _Exited(self),
                python,
                "-m",
                "asynctask.executor.zygote",
                str(theirs.fileno()),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                cwd=cwd,
                env=dict(env),
            )
            self._process = transport
            self.pid = self._process.get_pid()
            async with asyncio.timeout(START_TIMEOUT):
                await self._ready
        except (OSError, TimeoutError, ForkServerError) as exc:
            await self.close()
            raise ForkServerError(f"the fork server did not start: {exc}") from exc
        finally:
            theirs.close()
        self.alive = True

    async def fork(
        self,
        env: Mapping[str, str],
        cwd: str,
        args: Sequence[str],
        fds: Sequence[int],
        on_exit: ExitCallback,
    ) -> int:
        """Fork one worker; its pid. ``ForkServerError`` if it could not."""
        if not self.alive or self._sock is None:
            raise ForkServerError("the fork server is not running")
        ident = self._next_id
        self._next_id += 1
        record = protocol.pack(
            {"op": "fork", "id": ident, "env": dict(env), "cwd": cwd, "args": list(args)}
        )
        if len(record) > MAX_RECORD:
            raise ForkServerError("the worker's environment is too large to send")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[ident] = (future, on_exit)
        try:
            socket.send_fds(self._sock, [record], list(fds))
        except OSError as exc:
            del self._pending[ident]
            raise ForkServerError(f"cannot reach the fork server: {exc}") from exc
        return await future

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(MAX_RECORD)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._lost("the fork server closed its socket")
                return
            try:
                message = protocol.unpack(data)
            except Exception:
                message = None
            if isinstance(message, dict):
                self._on_message(message)

    def _on_message(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "exited":
            pid, code = message.get("pid"), message.get("code")
            callback = self._children.pop(pid, None) if isinstance(pid, int) else None
            if callback is not None:
                assert isinstance(pid, int)
                _call(callback, pid, code if isinstance(code, int) else None)
        elif op in ("forked", "failed"):
            entry = self._pending.pop(cast(int, message.get("id")), None)
            if entry is None:
                return
            future, on_exit = entry
            pid = message.get("pid")
            if op == "forked" and isinstance(pid, int) and pid > 0:
                self._children[pid] = on_exit  # before anyone awaits: its exit may come next
                if not future.done():
                    future.set_result(pid)
            elif not future.done():
                future.set_exception(ForkServerError(str(message.get("error", "fork failed"))))
        elif op == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(int(message.get("pid") or 0))

    def _lost(self, why: str) -> None:
        if self._sock is None:
            return
        was_alive = self.alive
        self.alive = False
        error = ForkServerError(why)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        orphans = self._children
        self._children = {}
        if was_alive and orphans:
            log.warning("%s; its %d worker(s) die with it", why, len(orphans))
        for pid, callback in orphans.items():
            _call(callback, pid, None)

    async def close(self) -> None:
        """Stop it (its remaining workers die with it) and wait until it is reaped."""
        process = self._process
        self._lost("the fork server was stopped")  # closing our end makes it exit
        if process is None:
            return
        self._process = None
        for attempt in range(700):
            if process.get_returncode() is not None:
                break
            if attempt == 200:  # 2 s: it did not see the close
                with contextlib.suppress(OSError):
                    os.killpg(self.pid, signal.SIGKILL)
            await asyncio.sleep(0.01)
        process.close()


def _call(callback: ExitCallback, pid: int, code: int | None) -> None:
    # A bug in the pool's callback must not stop the other workers' exits from being heard.
    try:
        callback(pid, code)
    except Exception:
        log.exception("the exit callback of worker %d failed", pid)
