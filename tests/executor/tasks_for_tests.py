"""Task functions the executor tests' workers import as ``tests.executor.tasks_for_tests:fn``."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import asynctask
from asynctask.errors import Fail, Throttled
from asynctask.executor.taskcontext import current_task


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: Any, **kwargs: Any) -> list[Any]:
    return [list(args), kwargs]


async def async_mul(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a * b


def returns_coroutine(value: int) -> Any:
    """A plain function that hands back a coroutine: the worker must still await it."""
    return async_mul(value, 2)


def boom(message: str) -> None:
    raise ValueError(message)


class CustomError(Exception):
    pass


def raise_custom() -> None:
    raise CustomError("custom")


def fail(message: str) -> None:
    raise Fail(message)


def throttled(retry_after: float | None) -> None:
    raise Throttled("slow down", retry_after=retry_after)


def out_of_memory() -> None:
    raise MemoryError("no more")


def bad_result() -> object:
    return object()


def call_exit(code: int) -> None:
    sys.exit(code)


def interrupt() -> None:
    raise KeyboardInterrupt


async def async_exit() -> None:
    await asyncio.sleep(0)
    raise SystemExit(4)


def context() -> dict[str, Any]:
    task = current_task()
    return {"id": task.id, "tenant": task.tenant, "attempt": task.attempt, "labels": task.labels}


async def async_context() -> dict[str, Any]:
    async def inner() -> str:
        return current_task().id

    return {"id": await asyncio.create_task(inner())}


def print_and_return(text: str) -> str:
    print(text)
    print(text, file=sys.stderr)
    return text


def pid() -> int:
    return os.getpid()


def hard_exit(code: int) -> None:
    os._exit(code)


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def sleep_with_grandchild(pid_file: str, seconds: float) -> str:
    """Fork a grandchild that sleeps too, and tell the test its pid through ``pid_file``."""
    child = os.fork()
    if child == 0:  # the grandchild: sleep, never return into the worker's code
        try:
            time.sleep(seconds)
        finally:
            os._exit(0)
    with open(pid_file + ".tmp", "w") as handle:
        handle.write(str(child))
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(seconds)
    return "slept"


def ignore_sigterm_and_sleep(seconds: float) -> str:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)
    return "slept"


class Wrapped:
    """Stands in for an ``@asynctask.task`` object: the worker calls ``__asynctask_fn__``."""

    def __init__(self, fn: Any) -> None:
        self.__asynctask_fn__ = fn


decorated = Wrapped(add)


class Namespace:
    @staticmethod
    def nested(x: int) -> int:
        return x + 1


not_callable = 42


def big_result(size: int) -> bytes:
    return b"x" * size


def corrupt_frame_socket() -> None:
    """Write a frame header no decoder accepts into the worker's frame socket (argv[1])."""
    os.write(int(sys.argv[1]), b"\xff\xff\xff\xff")
    time.sleep(30)


def window(seconds: float) -> list[float]:
    """Sleeps in a thread; returns when it ran, and its pid and task ID (concurrency tests)."""
    started = time.time()
    time.sleep(seconds)
    return [started, time.time(), os.getpid(), current_task().id]


async def async_window(seconds: float) -> list[float]:
    """Sleeps on the worker's loop; returns when it ran, and its pid and task ID."""
    started = time.time()
    await asyncio.sleep(seconds)
    return [started, time.time(), os.getpid(), current_task().id]


def chatty(tag: str, seconds: float = 0.0) -> str:
    """Writes through print, a thread of its own, logging, and a line left unterminated."""
    import logging
    import threading

    print(f"{tag} line 1")
    thread = threading.Thread(target=print, args=(f"{tag} from a thread",))
    thread.start()
    thread.join()
    time.sleep(seconds)
    logging.getLogger("task").warning("%s warned", tag)
    sys.stdout.write(f"{tag} no newline")
    return tag


async def async_chatty(tag: str, seconds: float) -> str:
    print(f"{tag} before")
    await asyncio.sleep(seconds)
    print(f"{tag} after")
    return tag


def hog_memory(megabytes: int) -> int:
    """Allocates and touches ``megabytes`` MiB, a chunk at a time."""
    chunks = []
    for _ in range(megabytes):
        chunks.append(bytearray(1 << 20))  # zero-filled: the pages are touched
    return len(chunks)


def spin() -> None:
    """Burns CPU until something stops it."""
    while True:
        pass


def fork_many(count: int) -> int:
    """Forks up to ``count`` sleeping children; returns how many it could."""
    made = 0
    try:
        for _ in range(count):
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            made += 1
    except OSError:
        pass
    return made


def write_bytes(path: str, size: int) -> int:
    with open(path, "wb") as handle:
        chunk = b"x" * (1 << 20)
        for _ in range(size // len(chunk)):
            handle.write(chunk)
    return size


def rlimits() -> list[int]:
    import resource

    return [
        resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        resource.getrlimit(resource.RLIMIT_CORE)[0],
    ]


def connect(port: int) -> str:
    """Tries a TCP connection to 127.0.0.1:``port``; says how it went."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as exc:
        return f"failed: {exc}"
    return "connected"


def whoami() -> list[int]:
    return [os.getuid(), os.getgid()]


def log_levels(tag: str) -> str:
    """Logs at three levels through a logger with no handler of its own."""
    import logging

    log = logging.getLogger("levels")
    log.debug("%s debug", tag)
    log.info("%s info", tag)
    log.warning("%s warning", tag)
    return tag


def configure_logging_and_log(tag: str) -> str:
    """A task that sets up logging itself, as a script would: its handler, its format."""
    import logging

    logging.basicConfig(format="own %(levelname)s %(message)s")
    logging.getLogger("mine").info("%s info", tag)
    return tag


def log_from_threads(tag: str, seconds: float) -> str:
    """Logs from the attempt's thread, after a pause (on a concurrent worker, while another
    attempt logs too)."""
    import logging

    logging.getLogger("threads").info("%s start", tag)
    time.sleep(seconds)
    logging.getLogger("threads").info("%s end", tag)
    return tag


@asynctask.task(retries=0, timeout="1s", queue="q")
def declared_sleep(seconds: float) -> str:
    """Declares options in code: its worker reports them before its first attempt."""
    time.sleep(seconds)
    return "slept"


def forge_declare(aid: int) -> str:
    """Hostile task code: a declare frame for attempt ``aid``, not its own, written into the
    worker's frame socket (argv[1]) with options the daemon would otherwise take."""
    from asynctask import protocol

    frame = protocol.encode_frame({"op": "declare", "aid": aid, "options": {"retries": 0}})
    os.write(int(sys.argv[1]), frame)
    return "forged"
