"""Attempt logs: what each attempt wrote to stdout and stderr, one file per attempt.

Files, not SQLite rows: output arrives in many small pieces while the attempt runs, and
appending them to the page cache costs microseconds on the event loop, where a row per piece
would compete with the submits for the one writer. Nothing here is fsynced - a log is a
diagnostic, not part of the durable record, and a crash may lose its last lines.

Layout: ``<home>/logs/attempts/<seq>.<attempt>.log``. ``seq`` (not the task ID) names the
task because it is unique for the life of the database - an ID deleted and submitted again
is a new task with new logs - and it is a plain integer, safe in a file name whatever the
tenant or ID. A file exists only for an attempt that wrote something.

Each attempt keeps at most ``max_bytes``; past it one marker line says how much was dropped
(written when the attempt ends, so it has the total).

Private and never through a symlink (``home.py``): every file is opened relative to the
directory's descriptor, taken once without following a symlink, with ``O_NOFOLLOW`` and mode
0600. Task code runs as the daemon's uid (and may plant a link at the next attempt's file name),
so an open that fails is logged once for the attempt and its output dropped; it never stops
the daemon, and reading a task's logs never reads through a link either.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from asynctask.home import open_dir, open_private
from asynctask.server.loglimit import LogLimiter, held_back

log = logging.getLogger("asynctask.daemon")

#: Open files kept for running attempts: beyond it the oldest is closed (and reopened on its
#: next write), so a pool with thousands of concurrent attempts cannot run out of descriptors.
MAX_OPEN: Final = 256
#: Bytes beyond ``max_bytes`` a finished log may hold: its marker line (under 100 bytes).
MARKER_ROOM: Final = 256


@dataclass(slots=True)
class _Open:
    attempt: int
    fd: int | None
    size: int
    dropped: int
    failed: bool = False  # its file could not be opened: its output is dropped


@dataclass(frozen=True, slots=True)
class AttemptLog:
    attempt: int
    size: int  # bytes in the file so far
    data: bytes  # from the requested offset on


class AttemptLogs:
    def __init__(self, root: Path, max_bytes: int, home: Path | None = None) -> None:
        self.root = root
        self.home = home  # no directory between it and ``root`` is followed if a symlink
        self.max_bytes = max_bytes
        self._open: dict[int, _Open] = {}  # by seq: a task runs one attempt at a time
        self._dir_fd: int | None = None
        self._limiter = LogLimiter(10.0)

    def __repr__(self) -> str:
        return f"<AttemptLogs {str(self.root)!r} open={len(self._open)}>"

    def name(self, seq: int, attempt: int) -> str:
        return f"{seq}.{attempt}.log"

    def append(self, seq: int, attempt: int, text: str) -> None:
        if self.max_bytes <= 0:
            return  # logs are off
        state = self._open.get(seq)
        if state is not None and state.attempt != attempt:
            self.finish(seq)
            state = None
        if state is None:
            state = self._open[seq] = _Open(attempt, None, 0, 0)
            state.size = self._size(seq, state)
        data = text.encode("utf-8", "replace")
        room = self.max_bytes - state.size
        if room <= 0 or state.failed:
            state.dropped += len(data)
            return
        if len(data) > room:
            state.dropped += len(data) - room
            data = data[:room]
        fd = self._fd(seq, state)
        if fd is None:
            return
        try:
            os.write(fd, data)  # readers (logs --follow) see it at once; still no fsync
        except OSError as exc:  # a full disk: the line is dropped, and said so once in a while
            state.dropped += len(data)
            self._write_failed(seq, state, exc)
            return
        state.size += len(data)

    def _write_failed(self, seq: int, state: _Open, exc: OSError) -> None:
        """Why a limiter: on a full disk every line a task prints fails, and a log line (with
        a traceback) per printed line buried the daemon's log: 1,200 lines in a second."""
        held = self._limiter.allow(exc.errno)
        if held is not None:
            log.warning(
                "attempt %d of task %d: output dropped, its log cannot be written (%s)%s",
                state.attempt, seq, exc, held_back(held),
                extra={"event": "log_write_failed", "seq": seq, "attempt": state.attempt},
            )  # fmt: skip

    def finish(self, seq: int) -> int | None:
        """The task's attempt ended: write the truncation marker if output was dropped; close.
        Returns the attempt's number, or None if it wrote nothing (it has no file)."""
        state = self._open.pop(seq, None)
        if state is None:
            return None
        if state.dropped and not state.failed:
            fd = self._fd(seq, state)
            if fd is not None:
                with contextlib.suppress(OSError):  # still full: the marker goes too
                    os.write(
                        fd,
                        f"\n[asynctask: output truncated: {state.dropped} more bytes after "
                        f"the first {self.max_bytes}]\n".encode()
                        if state.size >= self.max_bytes
                        else f"\n[asynctask: {state.dropped} bytes of output could not be "
                        "written (disk full?)]\n".encode(),
                    )
        if state.fd is not None:
            os.close(state.fd)
        return state.attempt

    def read(self, seq: int, attempts: int, offsets: dict[int, int]) -> list[AttemptLog]:
        """Each attempt's output that has a file, from ``offsets[attempt]`` (default 0)."""
        logs: list[AttemptLog] = []
        try:
            dir_fd = self._dir()
        except OSError as exc:
            log.warning("cannot open the attempt logs %s: %s", self.root, exc)
            return logs
        for attempt in range(1, attempts + 1):
            try:
                fd = open_private(self.name(seq, attempt), os.O_RDONLY, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot read the log of attempt %d of task %d: %s", attempt, seq, exc)
                continue
            try:
                size = os.fstat(fd).st_size
                start = min(max(0, offsets.get(attempt, 0)), size)
                data = os.pread(fd, size - start, start)
            finally:
                os.close(fd)
            logs.append(AttemptLog(attempt, size, data))
        return logs

    def contents(self, seq: int, attempt: int) -> bytes | None:
        """An ended attempt's whole log (its marker included), to copy elsewhere
        (``sharedlogs.py``); None if it has no file. At most ``max_bytes`` and a marker's room
        are read: task code runs as the daemon's uid and could grow the file behind our back.
        It may run in a thread, so it opens the directory for itself (as ``unlink``)."""
        try:
            dir_fd = open_dir(self.root, under=self.home)
        except FileNotFoundError:
            return None
        try:
            try:
                fd = open_private(self.name(seq, attempt), os.O_RDONLY, dir_fd=dir_fd)
            except FileNotFoundError:
                return None
            try:
                size = min(os.fstat(fd).st_size, max(0, self.max_bytes) + MARKER_ROOM)
                data = bytearray()
                while len(data) < size:
                    chunk = os.pread(fd, size - len(data), len(data))
                    if not chunk:
                        break
                    data += chunk
                return bytes(data)
            finally:
                os.close(fd)
        finally:
            os.close(dir_fd)

    def running(self) -> list[tuple[int, int]]:
        """The (seq, attempt) of every attempt with output not yet finished."""
        return [(seq, state.attempt) for seq, state in self._open.items()]

    def delete(self, seq: int, attempts: int) -> None:
        """Remove a deleted task's logs (its attempts 1 to ``attempts``)."""
        self.finish(seq)
        self.unlink((seq, attempt) for attempt in range(1, attempts + 1))

    def unlink(self, attempts: Iterable[tuple[int, int]]) -> None:
        """Remove these (seq, attempt) logs. It may run in a thread, so it opens the directory
        for itself (``close`` may close the shared descriptor meanwhile)."""
        try:
            dir_fd = open_dir(self.root, under=self.home)
        except FileNotFoundError:
            return
        try:
            for seq, attempt in attempts:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.name(seq, attempt), dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        for seq in list(self._open):
            self.finish(seq)
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def open(self) -> None:
        """Take the directory now (the daemon does at start-up, before any task runs)."""
        self._dir()

    def _dir(self) -> int:
        """The directory, opened once without following a symlink: a link planted at its
        path later is never followed (``home.py`` refused one there at start-up)."""
        if self._dir_fd is None:
            self._dir_fd = open_dir(self.root, under=self.home)
        return self._dir_fd

    def _size(self, seq: int, state: _Open) -> int:
        try:
            info = os.stat(self.name(seq, state.attempt), dir_fd=self._dir(), follow_symlinks=False)
        except OSError:
            return 0  # none yet; or the directory is unusable, which opening it will log
        return info.st_size

    def _fd(self, seq: int, state: _Open) -> int | None:
        if state.fd is None and not state.failed:
            if sum(1 for s in self._open.values() if s.fd is not None) >= MAX_OPEN:
                for other in self._open.values():
                    if other.fd is not None:
                        os.close(other.fd)
                        other.fd = None
                        break
            name = self.name(seq, state.attempt)
            try:
                state.fd = open_private(
                    name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, dir_fd=self._dir()
                )
            except OSError as exc:
                state.failed = True
                log.warning(
                    "attempt %d of task %d: cannot open its log %s (%s); its output is dropped",
                    state.attempt, seq, self.root / name, exc,
                    extra={"event": "log_refused", "seq": seq, "attempt": state.attempt},
                )  # fmt: skip
        return state.fd
