"""Each attempt's output, sent to the daemon as ``log`` frames while the attempt runs.

The worker replaces ``sys.stdout`` and ``sys.stderr`` with ``AttemptStream`` objects. A write
made on behalf of an attempt is buffered per attempt and line, and sent as
``{"op": "log", "aid": N, "stream": "stdout" | "stderr", "data": text}`` when a line ends, when
the buffer passes ``FLUSH_AT`` characters, or when the attempt ends (before its ``done`` frame,
so the log of a finished attempt is complete when the daemon hears of the end). Python
``logging`` writes to ``sys.stderr`` (its last-resort handler, and a ``StreamHandler`` made
inside a task), so it is captured too. A write outside any attempt (a module's import-time
print) goes to the original stream, the workers' shared log.

Which attempt a write belongs to: with one attempt per worker, whichever runs - any thread the
task started included. With several at once, the attempt whose context the writing code runs
in (a ``ContextVar``, which async tasks and the worker's task threads inherit); a thread a task
starts itself has a fresh context, and its output goes to the workers' log.

Python ``logging``: a plain program shows only warnings, through ``logging.lastResort``, and
only while no handler is configured. The worker makes ``AttemptLogHandler`` that last resort,
at ``[workers] log_level`` (``LOG_LEVEL_ENV``; default ``info``), and lowers the root logger to
that level, so ``logging.info()`` in a task lands in its attempt's log as a line
``<time> INFO <logger>: <message>`` on stderr. Being the last resort, not a root handler, keeps
every logging configuration a task makes (``basicConfig``, ``dictConfig``, a handler of its
own) in charge of what it covers, with no line written twice; a logger with a handler of its
own (a library's ``NullHandler``) is not captured, exactly as Python would not show it. What
it writes counts toward ``[workers] max_log_bytes`` like the rest of the attempt's output.

Output written to file descriptors 1 and 2 directly (C extensions, child processes) bypasses
``sys.stdout``; command tasks pipe their program's output through here on purpose
(``command.py``). This module is stdlib only: the worker imports it at start-up.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final, TextIO

#: Characters buffered per attempt and stream before a frame goes out without a line end.
FLUSH_AT: Final = 8192

#: The level from which task code's ``logging`` goes to the attempt's log: ``debug``,
#: ``info``, ``warning``, ``error``, or ``off`` (Python's default: no capture set up).
LOG_LEVEL_ENV: Final = "ASYNCTASK_LOG_LEVEL"
#: How a record reads in the attempt's log.
LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The attempt whose context this code runs in, when several share the worker.
ATTEMPT: Final[ContextVar[int | None]] = ContextVar("asynctask_attempt", default=None)


class Capture:
    """Routes the worker's ``sys.stdout``/``sys.stderr`` to per-attempt ``log`` frames."""

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._buffers: dict[tuple[int, str], list[str]] = {}
        self._sizes: dict[tuple[int, str], int] = {}
        self.only: int | None = None  # the attempt of a one-at-a-time worker
        self.stdout = AttemptStream(self, "stdout", sys.stdout)
        self.stderr = AttemptStream(self, "stderr", sys.stderr)

    def install(self) -> None:
        sys.stdout = self.stdout
        sys.stderr = self.stderr

    def attempt(self) -> int | None:
        aid = ATTEMPT.get()
        return self.only if aid is None else aid

    def write(self, aid: int, stream: str, text: str) -> None:
        key = (aid, stream)
        with self._lock:
            buffer = self._buffers.setdefault(key, [])
            buffer.append(text)
            size = self._sizes.get(key, 0) + len(text)
            self._sizes[key] = size
            if "\n" not in text and size < FLUSH_AT:
                return
            data = "".join(buffer)
            del self._buffers[key]
            del self._sizes[key]
        self._send({"op": "log", "aid": aid, "stream": stream, "data": data})

    def finish(self, aid: int) -> None:
        """Send what the attempt left unterminated; call before its ``done`` frame."""
        for stream in ("stdout", "stderr"):
            key = (aid, stream)
            with self._lock:
                buffer = self._buffers.pop(key, None)
                self._sizes.pop(key, None)
            if buffer:
                self._send({"op": "log", "aid": aid, "stream": stream, "data": "".join(buffer)})


class AttemptStream(io.TextIOBase):
    """A text stream that belongs to whichever attempt writes to it."""

    def __init__(self, capture: Capture, name: str, original: TextIO | None) -> None:
        super().__init__()
        self._capture = capture
        self._name = name
        self._original = original

    @property
    def name(self) -> str:
        return f"<asynctask {self._name}>"

    @property
    def encoding(self) -> str:  # type: ignore[override]  # read-only here, as on a real stream
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        aid = self._capture.attempt()
        if aid is None:
            if self._original is not None:
                self._original.write(text)
        elif text:
            self._capture.write(aid, self._name, text)
        return len(text)

    def flush(self) -> None:
        if self._capture.attempt() is None and self._original is not None:
            self._original.flush()

    def fileno(self) -> int:
        """The real descriptor (1 or 2), for code that hands it to a child process; what is
        written to it goes to the workers' log, not the attempt's."""
        if self._original is None:
            raise io.UnsupportedOperation("fileno")
        return self._original.fileno()


class AttemptLogHandler(logging.Handler):
    """``logging``'s last resort in a worker: a record, formatted, to the attempt's stderr
    (``Capture``); outside an attempt to the worker's own, with the task fields that
    ``asynctask.task_logger`` adds, since that log is every attempt's."""

    def __init__(self, capture: Capture, level: int) -> None:
        super().__init__(level)
        self._capture = capture
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            task_id = getattr(record, "task_id", None)
            if task_id is not None and self._capture.attempt() is None:
                text += (
                    f" [task {task_id} tenant {getattr(record, 'tenant', '')}"
                    f" attempt {getattr(record, 'attempt', '')}]"
                )
            self._capture.stderr.write(text + "\n")
        except Exception:
            self.handleError(record)


def capture_logging(capture: Capture, level_name: str) -> AttemptLogHandler | None:
    """Make task code's ``logging`` at ``level_name`` and above go to its attempt's log (see
    the module docstring); the handler, or ``None`` for ``off``."""
    if level_name == "off":
        return None
    level = logging.getLevelName(level_name.upper())
    if not isinstance(level, int):
        level = logging.INFO  # the daemon checked the config; a hand-started worker may not
    handler = AttemptLogHandler(capture, level)
    logging.lastResort = handler
    logging.root.setLevel(level)
    return handler
