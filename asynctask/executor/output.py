"""``logs/workers.log``: what workers write to fd 1 and 2 themselves, private, capped, unforgeable.

An attempt's ``print`` and ``logging`` go to its own log (``capture.py``). What bypasses that -
a task calling ``os.write(1, ...)``, a C library, a thread the task started, a worker's own
start-up error - lands on the worker's file descriptors 1 and 2. Those used to be one shared
file opened 0644 by every worker: readable by every local user, unbounded, and a task could
write lines that looked like the daemon's.

Now each worker's fd 1 and 2 are the write end of a pipe of its own, and the daemon reads the
other end on its event loop (``WorkerOutput.pipe``), so:

* the file is opened by the daemon alone, 0600 and without following a symlink (``home.py``);
* a worker keeps at most ``max_bytes`` of output over its life; past it, one marker line says
  the rest is dropped, and a last line counts what was when the pipe closes. The pipe is read
  to its end whatever is kept, so a worker writing too much never blocks on a full pipe;
* every line written is prefixed ``<UTC time> worker <pid>: `` and its control characters
  (``\\r``, escape sequences, C1 codes, Unicode line separators) are escaped, so a task cannot
  forge a line or rewrite a terminal showing the file. A line longer than ``MAX_LINE`` bytes
  is split.

The pipe is read until every process holding its write end has closed it, so output written by
a worker just before it died is not lost (the read end is not the process transport's, which
the pool closes as soon as the worker exits).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Final

from asynctask.home import open_private
from asynctask.logs import utc_timestamp

log = logging.getLogger("asynctask.executor")

#: A line without an end is written once it is this long (and the rest follows as more lines).
MAX_LINE: Final = 4096

#: Control characters escaped in a line (tab is kept): C0, DEL, C1, Unicode line separators.
_ESCAPES: Final = {
    code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if code != 0x09
} | {0x2028: "\\u2028", 0x2029: "\\u2029"}


def escape(raw: bytes) -> str:
    """One line of a worker's output as text that cannot end the line or move a cursor."""
    return raw.decode("utf-8", "backslashreplace").translate(_ESCAPES)


def _pieces(line: bytes) -> list[bytes]:
    if len(line) <= MAX_LINE:
        return [line]
    return [line[start : start + MAX_LINE] for start in range(0, len(line), MAX_LINE)]


class _Reader(asyncio.Protocol):
    """The daemon's end of one worker's output pipe."""

    def __init__(self, output: WorkerOutput, pid: Callable[[], int]) -> None:
        self.output = output
        self.pid = pid  # the worker's; known once it is spawned, before it can write
        self.kept = 0
        self.dropped = 0
        self.partial = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.output._feed(self, data)

    def eof_received(self) -> bool | None:
        self.output._ended(self)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.output._ended(self)


class WorkerOutput:
    """Workers' fd 1/2 output into one private file; see the module docstring."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._failed = False
        self._readers: dict[_Reader, asyncio.ReadTransport] = {}

    def __repr__(self) -> str:
        return f"<WorkerOutput {self.path!r} max_bytes={self.max_bytes} pipes={len(self._readers)}>"

    async def pipe(self, pid: Callable[[], int]) -> int:
        """A new pipe for one worker's fd 1 and 2, read from now on; returns its write end,
        for the caller to hand to the worker and then close."""
        loop = asyncio.get_running_loop()
        self._file()  # the file exists once a worker does, as it did when workers wrote it
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        read_end = os.fdopen(read_fd, "rb", buffering=0)  # the transport closes it
        try:
            reader = _Reader(self, pid)
            transport, _ = await loop.connect_read_pipe(lambda: reader, read_end)
        except BaseException:
            os.close(write_fd)
            read_end.close()
            raise
        self._readers[reader] = transport
        return write_fd

    async def close(self, timeout: float) -> None:
        """Read what the pipes still hold (their writers are gone or going), for at most
        ``timeout`` seconds - an escaped grandchild may hold one open for ever - then close."""
        pending = [reader.done for reader in self._readers]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for reader, transport in list(self._readers.items()):
            transport.close()
            self._ended(reader)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _feed(self, reader: _Reader, data: bytes) -> None:
        lines = (reader.partial + data).split(b"\n")
        reader.partial = lines.pop()
        cut = len(reader.partial) - len(reader.partial) % MAX_LINE
        if cut:  # an unended line fills whole lines: write those now
            lines.append(reader.partial[:cut])
            reader.partial = reader.partial[cut:]
        self._write(reader, [piece for line in lines for piece in _pieces(line)])

    def _ended(self, reader: _Reader) -> None:
        if reader.done.done():
            return
        lines = [reader.partial] if reader.partial else []
        reader.partial = b""
        self._write(reader, lines)
        if reader.dropped:
            self._append(reader, [f"[asynctask: dropped {reader.dropped} bytes of output]"])
        reader.done.set_result(None)
        self._readers.pop(reader, None)

    def _write(self, reader: _Reader, lines: list[bytes]) -> None:
        kept: list[str] = []
        for line in lines:
            if reader.dropped or reader.kept + len(line) > self.max_bytes:
                if not reader.dropped:
                    kept.append(
                        f"[asynctask: output past max_worker_output ({self.max_bytes} bytes) "
                        "is dropped]"
                    )
                reader.dropped += len(line) + 1
                continue
            reader.kept += len(line) + 1
            kept.append(escape(line))
        if kept:
            self._append(reader, kept)

    def _append(self, reader: _Reader, lines: list[str]) -> None:
        fd = self._file()
        if fd is None:
            return
        prefix = f"{utc_timestamp(time.time())} worker {reader.pid()}: "
        text = "".join(f"{prefix}{line}\n" for line in lines)
        try:
            os.write(fd, text.encode())
        except OSError as exc:
            log.warning("cannot write the workers' output to %s: %s", self.path, exc)

    def _file(self) -> int | None:
        if self._fd is None and not self._failed:
            try:
                self._fd = open_private(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            except OSError as exc:
                self._failed = True  # said once; the output is dropped
                log.warning("cannot open %s (%s): workers' output is dropped", self.path, exc)
        return self._fd
