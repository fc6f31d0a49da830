"""The worker main: ``python -m asynctask.executor.child FD``.

Theory of operation
-------------------
The daemon pre-starts these processes so that a task costs a frame round trip, not an
interpreter start (docs/architecture.md, "The performance design"). Everything here serves
two goals:

* **Start fast.** Only the stdlib, msgpack (through ``asynctask.protocol`` and its value codec,
  ``protocol/values.py``), ``asynctask.model``, ``asynctask.errors`` and ``asynctask.hooks`` are
  imported at start-up. ``asyncio``, ``traceback`` and ``ctypes`` are imported the first time
  they are needed, so a pool of sync tasks never pays for them.
* **Never be killed by the task.** One task runs at a time, synchronously, in the main thread.
  Every exception the task raises - ``SystemExit`` and ``KeyboardInterrupt`` included - becomes a
  ``done`` frame with an error. Only what Python cannot catch (``os._exit``, a signal, a segfault)
  ends the worker, and the pool sees that as the process exiting.

Frames travel over ``FD``, one end of a Unix ``socketpair`` that the daemon passed down. It is a
separate descriptor, not stdin/stdout, so whatever the task prints goes to fd 1/2 (the pool points
those at the log file) and can never corrupt the framing.

Conversation (all frames are ``asynctask.protocol`` maps)::

    child -> {"op": "ready", "pid": PID}                                   once, at start
    pool  -> {"op": "run", "aid": N, "func": "pkg.mod:fn", "payload": b, "ctx": {...}}
    child -> {"op": "done", "aid": N, "ok": True, "result": b}             or
    child -> {"op": "done", "aid": N, "ok": False, "error": model.error_dict(...)}
    pool  -> {"op": "exit"}                                                exit 0; EOF does too

    child -> {"op": "declare", "aid": N, "options": {...}}   before running a function the
             worker imported for the first time: its ``@asynctask.task`` options
             (``__asynctask_defaults__``, ``{}`` for a plain function; see ``_declare_frame``)

What the worker sets on itself before its first frame (parent death, rlimits, the sandbox) is
``childstart.py``; turning a function reference into a callable is ``funcref.py``. Both are held
to the same import contract as this module.

One attempt: import the function's module (once per worker), run the ``on_worker_start`` hooks
not yet run, decode the arguments (``protocol/values.py``: a dataclass is rebuilt from a class
the imports made known), then in the thread that runs the task the ``before_attempt`` hooks,
the call, the result's encoding and the ``after_attempt`` hooks (``hooks.py``). A result that
cannot be encoded fails the attempt here, as ``bad_result``, before the daemon hears it ended.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from asynctask import hooks, protocol
from asynctask.errors import Fail, ProtocolError, Throttled
from asynctask.executor.capture import ATTEMPT, LOG_LEVEL_ENV, Capture, capture_logging
from asynctask.executor.childstart import (
    apply_limits,
    die_with_parent,
    extend_sys_path,
    in_own_pid_namespace,
    in_sandbox,
    reported_pid,
)
from asynctask.executor.funcref import ImportFailure, import_function, type_name
from asynctask.executor.reaper import become_subreaper, kill_descendants
from asynctask.executor.taskcontext import CURRENT, TaskContext
from asynctask.model import ErrorKind, error_dict
from asynctask.protocol.values import ValueEncodingError, pack_value, unpack_value

if TYPE_CHECKING:
    import asyncio


_RECV_SIZE: Final = 1 << 16
#: A done frame must fit the pool's decoder; leave room for the frame's other fields.
_MAX_RESULT: Final = protocol.DEFAULT_MAX_FRAME - 64 * 1024
#: Error texts are for people; a megabyte of repr would only bloat the database.
_MAX_MESSAGE: Final = 16 * 1024
_MAX_TRACEBACK: Final = 64 * 1024


class Worker:
    """One worker's state: the socket, the function cache and the event loop for async tasks."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._decoder = protocol.FrameDecoder()
        self._functions: dict[str, Callable[..., Any]] = {}
        self._declared: set[str] = set()  # functions whose options the daemon was told
        self._loop: asyncio.AbstractEventLoop | None = None
        self._send_lock = threading.Lock()  # a task's own threads print too
        self.capture = Capture(self._send)

    def serve(self) -> int:
        """Answer ``run`` frames until ``exit`` or EOF; the return value is the exit status."""
        self._send({"op": "ready", "pid": reported_pid()})
        while True:
            try:
                data = self._sock.recv(_RECV_SIZE)
            except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for safety
                continue
            except OSError:
                return 0  # the daemon side is gone: nobody is left to answer
            if not data:
                return 0
            status = self._dispatch(data)
            if status is not None:
                return status

    def _dispatch(self, data: bytes) -> int | None:
        """Decode what arrived and act on each frame; an exit status when the worker is done
        (``exit``, or bytes that are not frames)."""
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as exc:
            print(f"asynctask worker {os.getpid()}: {exc.message}", file=sys.stderr)
            return 2
        for message in messages:
            op = message.get("op")
            if op == "exit":
                return 0
            if not self._on_frame(op, message):
                print(f"asynctask worker: ignoring unknown op {op!r}", file=sys.stderr)
        return None

    def _on_frame(self, op: Any, message: dict[str, Any]) -> bool:
        """Act on one frame other than ``exit``; ``False`` for an op this worker does not know."""
        if op == "run":
            self._reply(self.run(message))
            return True
        return False

    def _send(self, message: dict[str, Any]) -> None:
        self._write_frame(protocol.encode_frame(message))

    def _reply(self, done: dict[str, Any]) -> None:
        """Send a done frame; if the task smuggled something unencodable into it, say so."""
        try:
            frame = protocol.encode_frame(done)
        except Exception as exc:  # msgpack raises TypeError, OverflowError, ValueError
            error = error_dict(
                ErrorKind.EXCEPTION,
                type_name(exc),
                f"the worker could not encode the attempt's outcome: {exc}",
            )
            frame = protocol.encode_frame(
                {"op": "done", "aid": done.get("aid"), "ok": False, "error": error}
            )
        self._write_frame(frame)

    def _write_frame(self, frame: bytes) -> None:
        with self._send_lock:
            self._sock.sendall(frame)

    def run(self, message: dict[str, Any]) -> dict[str, Any]:
        """Run one ``run`` frame and build its ``done`` frame; never raises."""
        aid = message.get("aid")
        started = time.monotonic()
        capture = self.capture
        capture.only = aid if isinstance(aid, int) else None
        try:
            prepared = self._prepare(message)
            if isinstance(prepared, dict):
                reply = prepared
            else:
                function, args, kwargs, context = prepared
                reply = _attempt(function, context, lambda: self._call(function, args, kwargs))
        except BaseException as exc:  # the task must never end the worker
            reply = {"ok": False, "error": _describe(exc)}
        finally:
            _flush_stdio()  # the task's output belongs to this attempt's log, before "done"
            kill_descendants(
                whole_namespace=in_sandbox()
            )  # nothing the attempt started outlives it (reaper.py)
            if capture.only is not None:
                capture.finish(capture.only)
            capture.only = None
        return {"op": "done", "aid": aid, "t0": started, **reply}

    def _prepare(
        self, message: dict[str, Any]
    ) -> tuple[Callable[..., Any], list[Any], dict[str, Any], TaskContext] | dict[str, Any]:
        """The function, arguments and context of a ``run`` frame, or the failed reply.

        The function's module is imported first, then the ``on_worker_start`` hooks it (or an
        earlier module) registered run (``hooks.py``), then the arguments are decoded: a
        dataclass argument is rebuilt from a class the imports made known."""
        ref = message.get("func")
        if not isinstance(ref, str):
            raise ImportFailure(f"the run frame has no function reference: {ref!r}")
        try:
            function = self._resolve(ref)
        except ImportFailure as exc:
            return {"ok": False, "error": _describe_import_failure(exc)}
        if ref not in self._declared:
            self._declared.add(ref)
            self._write_frame(_declare_frame(message.get("aid"), function))
        try:
            hooks.run_worker_start()
        except hooks.HookError as exc:
            return {"ok": False, "error": _describe_hook(exc)}
        args, kwargs = _decode_payload(message.get("payload"))
        return function, args, kwargs, _task_context(message.get("ctx"))

    def _call(self, function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Call the task function (``CURRENT`` is set); a coroutine is run to its end."""
        value = function(*args, **kwargs)
        if isinstance(value, Coroutine):
            # Created while CURRENT is set, so the asyncio task copies the task's context.
            value = self._run_coroutine(value)
        return value

    def _run_coroutine(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run an async task on the worker's one loop, created on first use and then kept.

        Keeping the loop lets an async task leave a connection pool or a client session bound
        to "the loop" for the next task, as it would in any long-running async program.
        """
        import asyncio  # only async tasks pay for importing asyncio

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        task = self._loop.create_task(coroutine)
        try:
            return self._loop.run_until_complete(task)
        except BaseException:
            if task.done() and not task.cancelled():
                task.exception()  # mark it retrieved: it is reported in the done frame instead
            raise

    def _resolve(self, ref: str) -> Callable[..., Any]:
        function = self._functions.get(ref)
        if function is None:
            function = import_function(ref)
            self._functions[ref] = function
        return function


class ConcurrentWorker(Worker):
    """A worker that runs up to ``slots`` attempts at once (``[workers] concurrency``).

    Async functions run as tasks on the worker's event loop, sync ones on a pool of ``slots``
    threads, so I/O-bound work overlaps without a process per attempt. The price is shared
    fate: the attempts share the process's memory, limits and crashes. The pool stops one
    attempt with a ``cancel`` frame; an async one is cancelled here and answers
    ``{"ok": False, "cancelled": True}``, but a thread cannot be stopped, so a sync one is left
    running and the pool kills the whole worker after its grace period.
    """

    def __init__(self, sock: socket.socket, slots: int) -> None:
        super().__init__(sock)
        self._slots = slots
        self._tasks: dict[Any, asyncio.Task[None]] = {}
        self._in_threads: set[Any] = set()
        self._started: set[Any] = set()
        self._cancelled: set[Any] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._loop_thread = threading.get_ident()

    def serve(self) -> int:
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._threads = ThreadPoolExecutor(self._slots, thread_name_prefix="asynctask-task")
        return loop.run_until_complete(self._serve())

    async def _serve(self) -> int:
        import asyncio

        self._sock.setblocking(False)
        reader, self._writer = await asyncio.open_unix_connection(sock=self._sock)
        self._send({"op": "ready", "pid": reported_pid()})
        while True:
            try:
                data = await reader.read(_RECV_SIZE)
            except OSError:
                return 0
            if not data:
                return 0
            status = self._dispatch(data)
            if status is not None:
                return status

    def _on_frame(self, op: Any, message: dict[str, Any]) -> bool:
        if op == "run":
            assert self._loop is not None
            self._tasks[message.get("aid")] = self._loop.create_task(self._run_one(message))
            return True
        if op == "cancel":
            self._cancel(message.get("aid"))
            return True
        return False

    def _cancel(self, aid: Any) -> None:
        task = self._tasks.get(aid)
        if task is None or aid in self._in_threads:
            return  # finished already, or a thread nobody can stop: the pool kills the worker
        if aid not in self._started:  # cancelled before its first step: it would never reply
            task.cancel()
            del self._tasks[aid]
            self._reply({"op": "done", "aid": aid, "ok": False, "cancelled": True})
            return
        self._cancelled.add(aid)
        task.cancel()

    async def _run_one(self, message: dict[str, Any]) -> None:
        import asyncio

        aid = message.get("aid")
        started = time.monotonic()
        self._started.add(aid)
        ATTEMPT.set(aid if isinstance(aid, int) else None)  # this asyncio task's own context
        try:
            prepared = self._prepare(message)
            if isinstance(prepared, dict):
                reply = prepared
            else:
                function, args, kwargs, context = prepared
                try:
                    reply = await self._attempt_async(aid, function, args, kwargs, context)
                except asyncio.CancelledError:
                    if aid not in self._cancelled:
                        raise
                    reply = {"ok": False, "cancelled": True}
        except BaseException as exc:  # the task must never end the worker
            reply = {"ok": False, "error": _describe(exc)}
        finally:
            self._tasks.pop(aid, None)
            self._started.discard(aid)
            self._cancelled.discard(aid)
            if not self._tasks:  # whose a process is cannot be told: only when none runs
                kill_descendants(whole_namespace=in_own_pid_namespace())
            if isinstance(aid, int):
                self.capture.finish(aid)
        self._reply({"op": "done", "aid": aid, "t0": started, **reply})

    async def _attempt_async(
        self,
        aid: Any,
        function: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        context: TaskContext,
    ) -> dict[str, Any]:
        """One attempt's reply. An async function runs, hooks and all, on the loop; a sync one
        runs in a task thread, and so do its hooks (per-thread state is the attempt's)."""
        import asyncio
        import contextvars
        import functools
        import inspect

        if inspect.iscoroutinefunction(function):
            return await _attempt_coroutine(function, args, kwargs, context)
        loop = asyncio.get_running_loop()

        def invoke() -> Any:
            value = function(*args, **kwargs)
            if isinstance(value, Coroutine):  # a sync function that returned a coroutine
                # Run on the loop; the handle copies this thread's context (CURRENT, ATTEMPT).
                value = asyncio.run_coroutine_threadsafe(value, loop).result()
            return value

        call = functools.partial(
            contextvars.copy_context().run, _attempt, function, context, invoke
        )
        self._in_threads.add(aid)
        try:
            return await loop.run_in_executor(self._threads, call)
        finally:
            self._in_threads.discard(aid)

    def _write_frame(self, frame: bytes) -> None:
        """From the loop's thread, or a task thread's print: frames keep their order."""
        writer = self._writer
        assert writer is not None
        if threading.get_ident() == self._loop_thread:
            writer.write(frame)
        else:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(writer.write, frame)


def _attempt(
    function: Callable[..., Any], context: TaskContext, invoke: Callable[[], Any]
) -> dict[str, Any]:
    """One attempt in the thread that runs it: the ``before_attempt`` hooks, the call, the
    result's encoding, the ``after_attempt`` hooks (``hooks.py``); its reply, never raises
    for what the task or a hook did."""
    token = CURRENT.set(context)
    try:
        reply, error = _before(context)
        if reply is None:
            try:
                value = invoke()
            except Exception as exc:
                reply, error = _failure(function, exc), exc
            except BaseException as exc:  # SystemExit, KeyboardInterrupt: the worker goes on
                reply, error = {"ok": False, "error": _describe(exc)}, exc
            else:
                reply, error = _success(value)
        _after(context, error)
        return reply
    finally:
        CURRENT.reset(token)


async def _attempt_coroutine(
    function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], context: TaskContext
) -> dict[str, Any]:
    """``_attempt`` for an async function on a concurrent worker's loop; a cancel still
    runs the ``after_attempt`` hooks (with the ``CancelledError``), then goes on."""
    import asyncio

    CURRENT.set(context)  # this asyncio task's own context: no reset needed
    reply, error = _before(context)
    if reply is None:
        try:
            value = await function(*args, **kwargs)
        except Exception as exc:
            reply, error = _failure(function, exc), exc
        except asyncio.CancelledError as exc:
            _after(context, exc)
            raise
        except BaseException as exc:
            reply, error = {"ok": False, "error": _describe(exc)}, exc
        else:
            reply, error = _success(value)
    _after(context, error)
    return reply


def _before(context: TaskContext) -> tuple[dict[str, Any] | None, BaseException | None]:
    """The failed reply and its cause if a ``before_attempt`` hook raised, else two Nones."""
    try:
        hooks.run_before_attempt(context)
    except hooks.HookError as exc:
        return {"ok": False, "error": _describe_hook(exc)}, exc.cause
    return None, None


def _after(context: TaskContext, error: BaseException | None) -> None:
    """The ``after_attempt`` hooks; one that raises is told in the attempt's log only."""
    for name, exc in hooks.run_after_attempt(context, error):
        trace = _traceback_text(exc)
        print(
            f"asynctask: after_attempt hook {name} raised {type_name(exc)}: {_message(exc)}"
            f" (the attempt's outcome stands)\n{trace}",
            file=sys.stderr,
            end="" if trace.endswith("\n") else "\n",
        )


def _describe_hook(exc: hooks.HookError) -> dict[str, Any]:
    """A hook's error: kind ``hook``, unless it raised ``Fail``, ``Throttled`` or
    ``MemoryError``, which mean what they mean in a task."""
    error = _describe(exc.cause)
    if error["kind"] == ErrorKind.EXCEPTION.value:
        error["kind"] = ErrorKind.HOOK.value
    error["message"] = _shorten(
        f"{exc.stage} hook {exc.hook} raised: {error['message']}", _MAX_MESSAGE
    )
    return error


def _declare_frame(aid: Any, function: Callable[..., Any]) -> bytes:
    """The ``declare`` frame of a function this worker has just imported: the options its
    ``@asynctask.task(...)`` gave it, so that the daemon applies them however the task was
    submitted (by name too) without ever importing user code. Sent once per function per
    worker, before its first attempt runs; ``{}`` for a plain function (its options were
    removed). The daemon checks it as its tenant's input, not as the truth; options that
    cannot even be encoded are sent as a value it refuses, so the task still runs."""
    options = getattr(function, "__asynctask_defaults__", None)
    if not isinstance(options, dict):
        options = {}
    try:
        return protocol.encode_frame({"op": "declare", "aid": aid, "options": options})
    except Exception:  # msgpack raises TypeError, OverflowError, ValueError
        return protocol.encode_frame({"op": "declare", "aid": aid, "options": "unencodable"})


def _failure(function: Callable[..., Any], exc: Exception) -> dict[str, Any]:
    """The reply for an exception the task raised; ``non_retryable`` ones fail at once."""
    final = getattr(function, "__asynctask_non_retryable__", ())
    error = _describe(exc)
    if final and isinstance(exc, final):
        # Declared with @asynctask.task(non_retryable=...): retrying cannot help.
        error["kind"] = ErrorKind.FAIL.value
        error["non_retryable"] = True
    return {"ok": False, "error": error}


def _success(value: Any) -> tuple[dict[str, Any], BaseException | None]:
    """The reply for a returned value: packed, or a bad-result error (and its exception, for
    the ``after_attempt`` hooks)."""
    try:
        result = pack_value(value, "result")
    except ValueEncodingError as exc:  # says where in the value, and its type
        return {"ok": False, "error": _bad_result(str(exc), value)}, exc
    except Exception as exc:  # a broken __eq__/__hash__/property the encoder touched
        return {"ok": False, "error": _bad_result(f"{type(exc).__name__}: {exc}", value)}, exc
    if len(result) > _MAX_RESULT:
        reason = f"the packed result is {len(result)} bytes, more than the {_MAX_RESULT}-byte limit"
        return {"ok": False, "error": _bad_result(reason, None)}, ValueError(reason)
    return {"ok": True, "result": result}, None


def _decode_payload(payload: Any) -> tuple[list[Any], dict[str, Any]]:
    """The msgpack ``[args, kwargs]`` pair, with its values' types (``protocol/values.py``); a
    clear ``ValueError`` when it is anything else (bad ext values from a hostile client
    included: the attempt fails, the worker goes on)."""
    if not isinstance(payload, bytes):
        raise ValueError(f"the task payload must be msgpack bytes, not {type(payload).__name__}")
    try:
        decoded = unpack_value(payload)
    except ValueError as exc:  # ValueDecodingError: it says what is wrong
        raise ValueError(f"the task payload cannot be unpacked: {exc}") from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != 2
        or not isinstance(decoded[0], list)
        or not isinstance(decoded[1], dict)
        or not all(isinstance(key, str) for key in decoded[1])
    ):
        raise ValueError(
            "the task payload must be msgpack of [args_list, kwargs_map_with_str_keys], "
            f"not {_shorten(repr(decoded), 200)}"
        )
    return decoded[0], decoded[1]


def _task_context(ctx: Any) -> TaskContext:
    ctx = ctx if isinstance(ctx, dict) else {}
    labels = ctx.get("labels")
    return TaskContext(
        id=str(ctx.get("id", "")),
        tenant=str(ctx.get("tenant", "")),
        attempt=int(ctx.get("attempt", 0)),
        labels=dict(labels) if isinstance(labels, dict) else {},
    )


def _describe(exc: BaseException) -> dict[str, Any]:
    """The error dict of an exception the task (or its payload) raised."""
    if isinstance(exc, ImportFailure):
        return _describe_import_failure(exc)
    if isinstance(exc, Fail):
        kind = ErrorKind.FAIL
    elif isinstance(exc, Throttled):
        kind = ErrorKind.THROTTLED
    elif isinstance(exc, MemoryError):
        kind = ErrorKind.MEMORY_LIMIT
    else:
        kind = ErrorKind.EXCEPTION
    error = error_dict(
        kind, type_name(exc), _shorten(_message(exc), _MAX_MESSAGE), _traceback_text(exc)
    )
    # A retry_after that is not a number is no hint (and might not even encode).
    if isinstance(exc, Throttled) and isinstance(exc.retry_after, int | float):
        error["retry_after"] = float(exc.retry_after)
    return error


def _describe_import_failure(exc: ImportFailure) -> dict[str, Any]:
    cause = exc.cause
    return error_dict(
        ErrorKind.IMPORT,
        type_name(cause) if cause is not None else "ImportError",
        _shorten(exc.message, _MAX_MESSAGE),
        _traceback_text(cause) if cause is not None else "",
    )


def _bad_result(reason: str, value: Any) -> dict[str, Any]:
    """Kind ``bad_result``, not retried: the function ran to its end, and running it again
    would repeat its side effects only to return the same value (docs/worker.md)."""
    shown = "" if value is None else f" (returned a {type(value).__name__})"
    return error_dict(
        ErrorKind.BAD_RESULT,
        "TypeError",
        _shorten(f"the return value cannot be encoded{shown}: {reason}", _MAX_MESSAGE),
    )


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as inner:  # a broken __str__ must not lose the error
        return f"<str() of the exception failed: {type(inner).__name__}>"


def _traceback_text(exc: BaseException) -> str:
    """The traceback from the task's first frame on: the worker's own frames are noise."""
    try:
        import traceback  # only failing tasks pay for importing traceback

        tb = exc.__traceback__
        while tb is not None and _is_plumbing(tb):
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:  # e.g. MemoryError again; the kind and message remain
        return ""
    if len(text) > _MAX_TRACEBACK:
        text = "[...]\n" + text[-_MAX_TRACEBACK:]  # the end says where it was raised
    return text


def _is_plumbing(tb: TracebackType) -> bool:
    name = tb.tb_frame.f_globals.get("__name__", "")
    return (
        tb.tb_frame.f_code.co_filename == __file__  # as ``-m``, this module is ``__main__``
        or name in ("asynctask.executor.funcref", "asynctask.hooks")
        or name == "asyncio"
        or name.startswith(("asyncio.", "importlib"))
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 5] + "[...]"


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # a task may have closed or replaced them
            pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2 or not all(arg.isdigit() for arg in args) or args[1:] == ["0"]:
        print("usage: python -m asynctask.executor.child FD [CONCURRENCY]", file=sys.stderr)
        return 2
    slots = int(args[1]) if len(args) == 2 else 1
    if not die_with_parent():
        print(f"asynctask worker {os.getpid()}: the daemon is gone; exiting", file=sys.stderr)
        return 1
    become_subreaper()  # orphans of the task's processes stay below us (reaper.py)
    sock = socket.socket(fileno=int(args[0]))
    sock.set_inheritable(False)  # programs the task starts must not hold the frame socket
    extend_sys_path()
    limits_error = apply_limits(sock.fileno())  # may give up root: after what needs it
    if limits_error:
        print(f"asynctask worker {os.getpid()}: {limits_error}", file=sys.stderr)
        return 2
    if not in_sandbox() and not die_with_parent():  # again: a setuid clears it
        print(f"asynctask worker {os.getpid()}: the daemon is gone; exiting", file=sys.stderr)
        return 1
    if in_sandbox():
        # The sandbox forked us (pid 2 of its namespace); a fork does not inherit the flag.
        become_subreaper()
    if slots > 1:
        concurrent = ConcurrentWorker(sock, slots)
        concurrent.capture.install()
        capture_logging(concurrent.capture, os.environ.get(LOG_LEVEL_ENV, "info"))
        status = concurrent.serve()
        _flush_stdio()
        os._exit(status)  # not sys.exit: it would wait for task threads nobody waits for
    worker = Worker(sock)
    worker.capture.install()
    capture_logging(worker.capture, os.environ.get(LOG_LEVEL_ENV, "info"))
    try:
        return worker.serve()
    except BrokenPipeError:
        return 0  # the daemon closed its end while we answered: it no longer wants the answer
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
