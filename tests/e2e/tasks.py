"""Task functions the end-to-end tests submit (workers import them as tests.e2e.tasks)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import asynctask


def add(a: int, b: int) -> int:
    return a + b


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


def echo(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


def whoami() -> dict[str, object]:
    ctx = asynctask.current_task()
    return {"id": ctx.id, "tenant": ctx.tenant, "attempt": ctx.attempt, "labels": ctx.labels}


def boom(message: str) -> None:
    raise ValueError(message)


def give_up(message: str) -> None:
    raise asynctask.Fail(message)


def touch(path: str) -> str:
    """Append a line per attempt, so a test can count runs."""
    with open(path, "a") as handle:
        handle.write(f"{asynctask.current_task().attempt}\n")
    return path


def _host_pid() -> int:
    """This worker's pid as the host sees it (``os.getpid()`` is of the worker sandbox's pid
    namespace)."""
    return int(os.environ.get("ASYNCTASK_WORKER_PID") or os.getpid())


def sleep_first_attempt(seconds: float, marker: str) -> int:
    """On attempt 1: record the pid in ``marker`` and sleep; later attempts return at once."""
    attempt = asynctask.current_task().attempt
    if attempt == 1:
        Path(marker).write_text(str(_host_pid()))
        time.sleep(seconds)
    return attempt


def die_first_attempt() -> int:
    attempt = asynctask.current_task().attempt
    if attempt == 1:
        os._exit(17)
    return attempt


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def unpackable() -> object:
    return object()


def throttle_while(flag: str) -> str:
    """Raises Throttled while the file ``flag`` exists: a downstream that is overloaded."""
    if Path(flag).exists():
        raise asynctask.Throttled("downstream overloaded", retry_after=0.05)
    return "ok"


def crash() -> None:
    """A poison task: kills its worker."""
    os._exit(3)


def hang() -> None:
    """A poison task: holds its worker until the timeout kills it."""
    time.sleep(3600)


@asynctask.task(concurrency=1)
def one_at_a_time(seconds: float) -> list[float]:
    """Declares its own limit in code: never two of these at once, however many workers."""
    started = time.time()
    time.sleep(seconds)
    return [started, time.time()]


def fail_while(flag: str) -> int:
    """Raises while the file ``flag`` exists (a broken downstream); then returns the attempt."""
    if Path(flag).exists():
        raise RuntimeError("downstream is down")
    return asynctask.current_task().attempt


def remember(info: dict[str, object]) -> dict[str, object]:
    """A destination: returns what it was told about the finished task."""
    return info


@asynctask.task(non_retryable=(KeyError,))
def lookup(table: dict[str, int], key: str) -> int:
    """A missing key will not appear on a retry; anything else might be transient."""
    if key == "flaky":
        raise RuntimeError("transient")
    return table[key]


def fail_before(attempt: int) -> int:
    """Raises on every attempt before ``attempt`` (each with its own message), then succeeds."""
    current = asynctask.current_task().attempt
    if current < attempt:
        raise ValueError(f"attempt {current} is too early")
    return current


def fork_and_sleep(pid_file: str, seconds: float) -> None:
    """Writes its own pid and a sleeping grandchild's to ``pid_file``, then sleeps."""
    child = os.fork()
    if child == 0:  # the grandchild: sleep, never return into the worker's code
        try:
            time.sleep(seconds)
        finally:
            os._exit(0)
    # In the worker sandbox the grandchild's pid is one of the worker's pid namespace, which
    # the host cannot look up; the namespace itself it can: it is gone when all in it are.
    namespace = os.readlink("/proc/self/ns/pid")
    Path(pid_file + ".tmp").write_text(f"{_host_pid()} {child} {namespace}")
    os.replace(pid_file + ".tmp", pid_file)
    time.sleep(seconds)


async def async_nap(seconds: float) -> int:
    """I/O-bound: waits on the worker's loop; returns its worker's pid."""
    await asyncio.sleep(seconds)
    return _host_pid()


def nap(seconds: float) -> int:
    """I/O-bound, sync: sleeps in its thread; returns its worker's pid."""
    time.sleep(seconds)
    return _host_pid()


def talk(lines: int, marker: str, seconds: float) -> str:
    """Prints a numbered line, then waits for ``marker`` to exist (or ``seconds``) between
    the halves: a test can read the log while the task still runs."""
    import logging

    for n in range(lines):
        print(f"line {n}")
    logging.getLogger("talk").warning("half way")
    deadline = time.monotonic() + seconds
    while not Path(marker).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    print("done talking")
    return "talked"


def busy_wait_in_named_function(marker: str) -> None:
    """Spins inside a function whose name the stack shows, until ``marker`` exists."""
    while not Path(marker).exists():
        sum(range(1000))


def flood(size: int) -> None:
    """Writes ``size`` bytes of output."""
    chunk = "x" * 1023 + "\n"
    for _ in range(size // 1024):
        print(chunk, end="")


@asynctask.task(memory="200M")
def declared_hog(megabytes: int) -> int:
    return len([bytearray(1 << 20) for _ in range(megabytes)])


def run_when(go: str, ledger: str) -> int:
    """Append ``<attempt>`` to ``ledger`` as it starts, then wait (up to a minute) for the file
    ``go`` and return the attempt: a test holds the task running while it breaks the disk."""
    attempt = asynctask.current_task().attempt
    with open(ledger, "a") as handle:
        handle.write(f"{attempt}\n")
    deadline = time.monotonic() + 60
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return attempt


def talk_when(go: str, ledger: str, lines: int) -> int:
    """``run_when``, then print ``lines`` lines, flushing each (each is its own log write)."""
    attempt = run_when(go, ledger)
    for n in range(lines):
        print(f"line {n}", flush=True)
    return attempt


def ledgered(ledger: str, seconds: float) -> int:
    """Append ``<id> <attempt> <host pid>`` to ``ledger`` as the attempt starts (one write, so
    lines of concurrent workers never mix), sleep ``seconds`` and return the attempt: a test
    counts how many times each task ran, and where."""
    task = asynctask.current_task()
    line = f"{task.id} {task.attempt} {_host_pid()}\n".encode()
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    time.sleep(seconds)
    return task.attempt
