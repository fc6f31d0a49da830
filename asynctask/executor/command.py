"""Command tasks: a program run as a task (``asynctask submit --cmd -- prog args...``).

``run_command`` is an ordinary task function, so a command gets everything a Python task gets
- the worker's sandbox, timeouts (the program is in the worker's process group, which a timeout
kills whole), retries, cancel and log capture. Its stdout and stderr are read line by line
and written to the attempt's captured streams, so ``asynctask logs --follow`` shows them
while it runs. Exit code 0 succeeds with ``{"exit_code": 0}``; another code fails the attempt
(retried as the task's retries allow) unless it is one of ``final_exit_codes``, which end the
task at once (``asynctask.Fail``). A program that cannot be started at all fails at once too:
a retry would not find it either.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from typing import IO, Any, Final

from asynctask.errors import Fail

#: The function reference the client and the command line submit for a command.
REF: Final = "asynctask.executor.command:run_command"
#: stderr lines quoted in the error of a failed command.
TAIL_LINES: Final = 5


class CommandFailed(Exception):
    """The program exited with a code other than 0 (retryable)."""


def run_command(
    argv: Sequence[str],
    final_exit_codes: Sequence[int] = (),
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> dict[str, Any]:
    if not argv or not all(isinstance(arg, str) for arg in argv):
        raise Fail(f"a command is a non-empty list of strings, not {argv!r}")
    environment = None if env is None else {**os.environ, **env}
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=cwd,
        )
    except OSError as exc:
        raise Fail(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
    assert process.stdout is not None
    assert process.stderr is not None
    tail = _relay(process.stdout, process.stderr)
    code = process.wait()
    if code == 0:
        return {"exit_code": 0}
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    last = " | ".join(tail)
    message = f"{argv[0]} {how}" + (f": {last}" if last else "")
    if code in final_exit_codes:
        raise Fail(message)
    raise CommandFailed(message)


def _relay(stdout: IO[bytes], stderr: IO[bytes]) -> deque[str]:
    """Copy both pipes to ``sys.stdout``/``sys.stderr`` as lines arrive, until both close;
    return the last lines of stderr."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    targets = {stdout.fileno(): sys.stdout, stderr.fileno(): sys.stderr}
    pending = {stdout.fileno(): b"", stderr.fileno(): b""}
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        selector.register(stderr, selectors.EVENT_READ)
        while selector.get_map():
            for key, _ in selector.select():
                fd = key.fd
                chunk = os.read(fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    lines = [pending[fd]] if pending[fd] else []
                    pending[fd] = b""
                else:
                    *lines, pending[fd] = (pending[fd] + chunk).split(b"\n")
                    lines = [line + b"\n" for line in lines]
                for line in lines:
                    text = line.decode("utf-8", "replace")
                    targets[fd].write(text)
                    if fd == stderr.fileno() and text.strip():
                        tail.append(text.strip())
    return tail
