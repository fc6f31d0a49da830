"""The fork server: ``python -m asynctask.executor.zygote FD`` forks workers ready-made.

Theory of operation
-------------------
One tenant per worker (``core/slots.py``) means a worker is started whenever capacity moves
from one tenant to another, not once per daemon. An interpreter start costs ~60 ms of CPU;
a fork of a process that has already imported the worker runtime costs a few. So the pool
starts this process once: it imports ``asynctask.executor.child`` (and what that needs to run
an attempt) but *no user code*, and then only forks. Each child becomes a worker exactly as
``python -m asynctask.executor.child FD`` would (``child.main``), with the environment, working
directory and descriptors the pool sends for it. What one tenant's code does in its worker can
never reach the fork server or a sibling: the fork server never imports or runs task code.

Control channel (a ``SOCK_SEQPACKET`` socketpair: one record = one msgpack map, with the
worker's descriptors attached as ``SCM_RIGHTS`` to the ``fork`` record)::

    zygote -> {"op": "ready", "pid": PID}                                 once, at start
    pool   -> {"op": "fork", "id": N, "env": {...}, "cwd": DIR, "args": [...]} + [channel, out?]
    zygote -> {"op": "forked", "id": N, "pid": PID}   or   {"op": "failed", "id": N, "error": S}
    zygote -> {"op": "exited", "pid": PID, "code": C}     C as Popen.returncode (-N: signal N)

The workers are the fork server's children, so it reaps them and reports each exit; the pool
treats that report as the process-exit callback it gets for a worker it spawned itself. The
fork server dies with the daemon (parent-death signal) and its workers die with it (theirs).
It is single-threaded - a fork of a threaded process could inherit a lock held mid-update -
and waits in ``select`` on the control socket and a self-pipe that SIGCHLD writes to.

Forked workers share the fork server's hash seed (``PYTHONHASHSEED``); ``random`` reseeds in
every child (CPython registers that at fork), and ``os.urandom``/``secrets`` are unaffected.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import sys
import traceback
from typing import Any, Final

from asynctask import protocol
from asynctask.executor import child, childstart

#: Largest control record (a worker's environment and arguments).
MAX_RECORD: Final = 1 << 20
_MAX_FDS: Final = 4


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m asynctask.executor.zygote FD", file=sys.stderr)
        return 2
    if not childstart.die_with_parent():
        return 1
    control = socket.socket(fileno=int(args[0]))
    control.set_inheritable(False)
    _preload()
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # the wakeup fd is what we want
    _send(control, {"op": "ready", "pid": os.getpid()})
    private = (control.fileno(), wake_read, wake_write)
    while True:
        readable, _, _ = select.select([control.fileno(), wake_read], [], [])
        if wake_read in readable:
            while True:
                try:
                    if not os.read(wake_read, 4096):
                        break
                except BlockingIOError:
                    break
            _reap(control)
        if control.fileno() in readable:
            try:
                data, fds, _, _ = socket.recv_fds(control, MAX_RECORD, _MAX_FDS)
            except ConnectionResetError:
                data, fds = b"", []
            if not data:
                return 0  # the daemon closed its end: its workers die with us
            try:
                request = protocol.unpack(data)
            except Exception:
                request = None
            if not isinstance(request, dict) or request.get("op") != "fork":
                for fd in fds:
                    os.close(fd)
                continue
            _fork(control, request, fds, private)
        _reap(control)


def _preload() -> None:
    """Import what every worker needs before it runs a task - the sandbox, limits, reaper,
    ctypes - so each fork starts with them (importing the sandbox alone costs ~3 ms), then
    move the fork server's objects to the GC's permanent generation, so that a child's
    collections do not write to, and so copy, the pages it shares with the fork server."""
    import ctypes  # noqa: F401 - childstart.die_with_parent, reaper: every worker uses them
    import faulthandler  # noqa: F401 - childstart.dump_stacks_on_sigusr1
    import json  # noqa: F401 - childstart.apply_limits

    import asynctask.executor.landlock  # the sandbox without namespaces
    import asynctask.executor.limits
    import asynctask.executor.reaper
    import asynctask.executor.sandbox  # noqa: F401 - every worker enters it

    gc.collect()
    gc.freeze()


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(control, {"op": "exited", "pid": pid, "code": os.waitstatus_to_exitcode(status)})


def _fork(
    control: socket.socket, request: dict[str, Any], fds: list[int], private: tuple[int, ...]
) -> None:
    ident = request.get("id")
    env, cwd, args = request.get("env"), request.get("cwd"), request.get("args")
    if (
        not fds
        or not isinstance(env, dict)
        or not isinstance(cwd, str)
        or not isinstance(args, list)
    ):
        for fd in fds:
            os.close(fd)
        _send(control, {"op": "failed", "id": ident, "error": "a malformed fork request"})
        return
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        _send(control, {"op": "failed", "id": ident, "error": f"fork: {exc}"})
        return
    if pid == 0:  # the worker-to-be: never returns into the loop above
        code = 70
        try:
            code = _become_worker(env, cwd, [str(a) for a in args], fds, private)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    _send(control, {"op": "forked", "id": ident, "pid": pid})


def _become_worker(
    env: dict[str, Any], cwd: str, args: list[str], fds: list[int], private: tuple[int, ...]
) -> int:
    """In the fresh child: what ``subprocess`` would have set up, then the worker's main."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in private:
        os.close(fd)
    os.setsid()
    channel, *output = fds
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if output:
        os.dup2(output[0], 1)
        os.dup2(output[-1], 2)
        for fd in set(output):
            os.close(fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in env.items()})
    os.environ[childstart.PARENT_PID_ENV] = str(os.getppid())
    sys.argv = [child.__file__, str(channel), *args]  # as ``python -m ...child FD`` has it
    return child.main(sys.argv[1:])


def _send(control: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the daemon is gone; the next recv says so
        control.send(protocol.pack(message))


if __name__ == "__main__":
    sys.exit(main())
