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
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

#: Open files kept for running attempts: beyond it the oldest is closed (and reopened on its
#: next write), so a pool with thousands of concurrent attempts cannot run out of descriptors.
MAX_OPEN: Final = 256


@dataclass(slots=True)
class _Open:
    attempt: int
    file: IO[bytes] | None
    size: int
    dropped: int


@dataclass(frozen=True, slots=True)
class AttemptLog:
    attempt: int
    size: int  # bytes in the file so far
    data: bytes  # from the requested offset on


class AttemptLogs:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._open: dict[int, _Open] = {}  # by seq: a task runs one attempt at a time

    def __repr__(self) -> str:
        return f"<AttemptLogs {str(self.root)!r} open={len(self._open)}>"

    def path(self, seq: int, attempt: int) -> Path:
        return self.root / f"{seq}.{attempt}.log"

    def append(self, seq: int, attempt: int, text: str) -> None:
        if self.max_bytes <= 0:
            return  # logs are off
        state = self._open.get(seq)
        if state is not None and state.attempt != attempt:
            self.finish(seq)
            state = None
        if state is None:
            path = self.path(seq, attempt)
            size = path.stat().st_size if path.exists() else 0
            state = self._open[seq] = _Open(attempt, None, size, 0)
        data = text.encode("utf-8", "replace")
        room = self.max_bytes - state.size
        if room <= 0:
            state.dropped += len(data)
            return
        if len(data) > room:
            state.dropped += len(data) - room
            data = data[:room]
        file = self._file(seq, state)
        file.write(data)
        file.flush()  # readers (logs --follow) see it at once; still no fsync
        state.size += len(data)

    def finish(self, seq: int) -> None:
        """The task's attempt ended: write the truncation marker if output was dropped; close."""
        state = self._open.pop(seq, None)
        if state is None:
            return
        if state.dropped:
            file = self._file(seq, state)
            file.write(
                f"\n[asynctask: output truncated: {state.dropped} more bytes after the "
                f"first {self.max_bytes}]\n".encode()
            )
        if state.file is not None:
            state.file.close()

    def read(self, seq: int, attempts: int, offsets: dict[int, int]) -> list[AttemptLog]:
        """Each attempt's output that has a file, from ``offsets[attempt]`` (default 0)."""
        logs = []
        for attempt in range(1, attempts + 1):
            path = self.path(seq, attempt)
            try:
                with path.open("rb") as file:
                    size = os.fstat(file.fileno()).st_size
                    start = min(max(0, offsets.get(attempt, 0)), size)
                    file.seek(start)
                    data = file.read(size - start)
            except FileNotFoundError:
                continue
            logs.append(AttemptLog(attempt, size, data))
        return logs

    def delete(self, seq: int, attempts: int) -> None:
        """Remove a deleted task's logs (its attempts 1 to ``attempts``)."""
        self.finish(seq)
        for attempt in range(1, attempts + 1):
            with contextlib.suppress(FileNotFoundError):
                self.path(seq, attempt).unlink()

    def close(self) -> None:
        for seq in list(self._open):
            self.finish(seq)

    def _file(self, seq: int, state: _Open) -> IO[bytes]:
        if state.file is None:
            if sum(1 for s in self._open.values() if s.file is not None) >= MAX_OPEN:
                for other in self._open.values():
                    if other.file is not None:
                        other.file.close()
                        other.file = None
                        break
            self.root.mkdir(parents=True, exist_ok=True)  # the home exists (and is 0700) by now
            state.file = self.path(seq, state.attempt).open("ab")
        return state.file
