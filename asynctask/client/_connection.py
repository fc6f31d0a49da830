"""The only I/O of the clients: one connection to the daemon, written once per I/O style.

Everything above this (the ~30 calls, the handles) is written once, async, in
``_async/client.py`` and generated for blocking code (``scripts/unasync.py``). This module
cannot be generated, because the two styles move bytes differently on purpose:

- ``AsyncConnection`` pipelines. A reader task matches replies to requests by ``rid``, so many
  coroutines may have requests in flight on one socket.
- ``Connection`` does one blocking round trip at a time under a lock. That costs a producer
  nothing beyond the syscalls: no thread hop per call, as a loop-in-a-thread wrapper around
  ``AsyncConnection`` would add, and W1 (one ``submit`` per task) is exactly that producer.

Both greet the daemon first (``hello``, which also tells the frame limit), connect lazily on
the first call, and fail every error as an ``AsynctaskError``: ``DaemonUnavailable`` when
the socket cannot be reached or breaks, the daemon's own error otherwise. The blocking one
also reconnects when the daemon closed an idle connection (``[server] idle_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket as socketlib
import struct
import threading
from pathlib import Path
from typing import Any, Final, TypeVar, overload

import msgspec

from asynctask.client._calls import Reply, _Calls
from asynctask.errors import AsynctaskError, DaemonUnavailable, ProtocolError
from asynctask.protocol import DEFAULT_MAX_FRAME
from asynctask.protocol.framing import take_frames

R = TypeVar("R", bound=Reply)
#: How a reply body is decoded: to a plain map, or (a call that asks) to a ``Reply`` Struct.
Decoder = msgspec.msgpack.Decoder[Any]

_HEADER: Final = struct.Struct(">I")
_MAP: Final = msgspec.msgpack.Decoder()
_HEAD: Final = msgspec.msgpack.Decoder(Reply)


class ReplyFrames:
    """The client's reader of reply frames: ``protocol.FrameDecoder``'s framing (same limit,
    same ``ProtocolError``s), with the bodies decoded by msgspec, typed when the call asks.
    A reply that arrived whole in one read, the usual case, is decoded where it lies."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[memoryview]:
        """The bodies of the complete frames buffered so far, ``data`` appended."""
        if not self._buffer and len(data) >= 4:
            (length,) = _HEADER.unpack_from(data)
            if length == len(data) - 4 and length <= DEFAULT_MAX_FRAME:
                return [memoryview(data)[4:]]
        self._buffer += data
        return [memoryview(body) for body in take_frames(self._buffer, DEFAULT_MAX_FRAME)]


def decode_reply(body: memoryview, decoder: Decoder) -> Any:
    """One reply body as ``decoder`` reads it: a map, or a ``Reply``; ``ProtocolError`` if it
    is not msgpack, not a map, or (typed) not the shape the protocol gives that reply."""
    try:
        message = decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"a reply does not have the protocol's shape: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"frame is not valid msgpack: {exc}") from None
    if not isinstance(message, dict | Reply):
        raise ProtocolError(f"a frame must hold a msgpack map, not {type(message).__name__}")
    return message


def _envelope(message: Any) -> tuple[Any, Any, Any]:
    """``rid``, ``ok`` and ``error`` of a decoded reply, a map or a ``Reply``."""
    if isinstance(message, Reply):
        return message.rid, message.ok, message.error
    return message.get("rid"), message.get("ok"), message.get("error")


def _unavailable(path: Path, exc: OSError) -> DaemonUnavailable:
    return DaemonUnavailable(f"no daemon answering on {path} ({exc.strerror or exc})")


class AsyncConnection:
    """One asyncio connection, requests pipelined; (re)connects on the first call after it
    closed."""

    def __init__(self, path: Path, calls: _Calls, connect_timeout: float) -> None:
        self._path = path
        self._calls = calls
        self._connect_timeout = connect_timeout
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, tuple[asyncio.Future[Any], Decoder]] = {}
        self._connecting: asyncio.Lock | None = None  # made in the loop that first connects

    @property
    def summary(self) -> str:
        return f"pending={len(self._pending)}"

    async def connect(self) -> None:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None:
                return
            try:
                async with asyncio.timeout(self._connect_timeout):
                    reader, writer = await asyncio.open_unix_connection(str(self._path))
            except TimeoutError:
                raise DaemonUnavailable(
                    f"no daemon answering on {self._path} (no answer in {self._connect_timeout}s)"
                ) from None
            except OSError as exc:
                raise _unavailable(self._path, exc) from None
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read(reader))
            hello = self._calls.hello()
            self._calls.greeted(self._calls.reply(await self._roundtrip(hello)))

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
            self._reader_task = None

    @overload
    async def call(self, request: dict[str, Any]) -> dict[str, Any]: ...
    @overload
    async def call(self, request: dict[str, Any], reply: msgspec.msgpack.Decoder[R]) -> R: ...
    async def call(self, request: dict[str, Any], reply: Decoder = _MAP) -> Any:
        """Send ``request`` and return the daemon's reply to it, whatever its ``ok``: a map,
        or what ``reply`` decodes (a ``Reply``)."""
        if self._writer is None:
            await self.connect()
        return await self._roundtrip(request, reply)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        frames = ReplyFrames()
        reason: AsynctaskError = DaemonUnavailable("the daemon closed the connection")
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                for body in frames.feed(data):
                    rid, ok, error = _envelope(decode_reply(body, _HEAD))
                    pending = self._pending.pop(rid, None)
                    if pending is not None and not pending[0].done():
                        future, decoder = pending
                        try:
                            future.set_result(decode_reply(body, decoder))
                        except ProtocolError as exc:
                            future.set_exception(exc)
                            raise
                    elif ok is False and rid is None:
                        reason = AsynctaskError.from_wire(error)
        except ProtocolError as exc:
            reason = exc
        except OSError as exc:
            reason = DaemonUnavailable(f"connection to the daemon failed: {exc}")
        finally:
            writer, self._writer = self._writer, None
            if writer is not None:  # the daemon closed it (idle_timeout, or it stopped)
                writer.close()
            for future, _ in self._pending.values():
                if not future.done():
                    future.set_exception(reason)
            self._pending.clear()

    async def _roundtrip(self, request: dict[str, Any], reply: Decoder = _MAP) -> Any:
        writer = self._writer
        if writer is None:
            raise DaemonUnavailable("not connected to the daemon")
        data = self._calls.frame(request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request["rid"]] = (future, reply)
        writer.write(data)
        return await future


#: The flags of that peek as a plain int: ``IntFlag`` arithmetic on every call costs a
#: producer more than the syscall itself.
_PEEK: Final = int(socketlib.MSG_PEEK | socketlib.MSG_DONTWAIT)


def _closed_by_daemon(sock: socketlib.socket, readable: select.poll) -> bool:
    """Whether the daemon has closed ``sock`` (EOF waiting to be read). ``readable`` (a poll
    of ``sock``) says first whether anything at all waits: usually nothing, and that answer
    costs no exception, where a peek into an empty socket raises ``BlockingIOError``. If
    something does, one non-blocking peek tells EOF (or an error) from bytes."""
    if not readable.poll(0):
        return False
    try:
        return sock.recv(1, _PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _poll_of(sock: socketlib.socket) -> select.poll:
    readable = select.poll()
    readable.register(sock, select.POLLIN)
    return readable


class Connection:
    """One blocking Unix socket, one round trip at a time; thread-safe."""

    def __init__(self, path: Path, calls: _Calls, connect_timeout: float) -> None:
        self._path = path
        self._calls = calls
        self._connect_timeout = connect_timeout
        self._sock: socketlib.socket | None = None
        self._readable = select.poll()  # of ``_sock``, once connected
        self._frames = ReplyFrames()
        self._lock = threading.Lock()

    @property
    def summary(self) -> str:
        return f"connected={self._sock is not None}"

    def __del__(self) -> None:
        # A client is often created once and never closed; its socket goes with it quietly.
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()

    def connect(self) -> None:
        with self._lock:
            self._connect_locked()

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    @overload
    def call(self, request: dict[str, Any]) -> dict[str, Any]: ...
    @overload
    def call(self, request: dict[str, Any], reply: msgspec.msgpack.Decoder[R]) -> R: ...
    def call(self, request: dict[str, Any], reply: Decoder = _MAP) -> Any:
        """Send ``request`` and return the daemon's reply to it, whatever its ``ok``: a map,
        or what ``reply`` decodes (a ``Reply``)."""
        with self._lock:
            self._connect_locked()
            return self._roundtrip(request, reply)

    def _connect_locked(self) -> None:
        if self._sock is not None:
            if not _closed_by_daemon(self._sock, self._readable):
                return
            # Idle past ``[server] idle_timeout``: nothing was sent on it since, so the next
            # request goes on a new connection rather than failing with a broken pipe.
            self._sock.close()
            self._sock = None
        sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        sock.settimeout(self._connect_timeout)
        try:
            sock.connect(str(self._path))
        except OSError as exc:
            sock.close()
            raise _unavailable(self._path, exc) from None
        sock.settimeout(None)
        self._sock = sock
        self._readable = _poll_of(sock)
        self._frames = ReplyFrames()
        self._calls.greeted(self._calls.reply(self._roundtrip(self._calls.hello())))

    def _roundtrip(self, request: dict[str, Any], reply: Decoder = _MAP) -> Any:
        sock = self._sock
        assert sock is not None
        frame = self._calls.frame(request)  # refused before anything is sent
        try:
            sock.sendall(frame)
            while True:
                data = sock.recv(1 << 16)
                if not data:
                    raise DaemonUnavailable("the daemon closed the connection")
                for body in self._frames.feed(data):
                    message = decode_reply(body, reply)
                    rid, ok, error = _envelope(message)
                    if rid == request["rid"]:
                        return message
                    if ok is False and rid is None:
                        raise AsynctaskError.from_wire(error)
        except (OSError, AsynctaskError) as exc:
            sock.close()
            self._sock = None
            if isinstance(exc, AsynctaskError):
                raise
            raise DaemonUnavailable(f"connection to the daemon failed: {exc}") from None
