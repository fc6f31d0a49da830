"""``asynctask inspect``: a running attempt's worker process, read from ``/proc``, and its stack.

The stack comes from the worker itself: at start-up it registers ``faulthandler`` for
``SIGUSR1`` (``executor/child.py``), writing every thread's Python stack to a per-worker file
opened for append. The signal handler runs in C and returns to the task where it was, so the
task is not disturbed beyond the time to write a few lines. The daemon empties the file,
signals, and waits until the dump has stopped growing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any, Final

from asynctask.home import open_dir, open_private

#: ``faulthandler`` writes the dump in one go; it has ended when the file stops growing.
STACK_TIMEOUT: Final = 2.0
_SETTLE: Final = 0.05
#: Open files listed by name (the count is always complete).
MAX_FILES_LISTED: Final = 50


def stack_path(directory: Path, pid: int) -> Path:
    return directory / f"stack-{pid}.txt"


def process_info(pid: int) -> dict[str, Any]:
    """RSS, CPU time, threads, open files and child processes of ``pid`` (raises
    ``ProcessLookupError`` if it is gone)."""
    proc = Path(f"/proc/{pid}")
    try:
        status = (proc / "status").read_text()
        stat = (proc / "stat").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = int(fields.get("VmRSS", "0 kB").split()[0])
    after_name = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_seconds = (int(after_name[11]) + int(after_name[12])) / ticks
    files: list[str] = []
    count = 0
    try:
        entries = os.listdir(proc / "fd")
    except OSError:
        entries = []
    for entry in sorted(entries, key=lambda e: int(e) if e.isdigit() else 0):
        count += 1
        if len(files) < MAX_FILES_LISTED:
            try:
                files.append(f"{entry} -> {os.readlink(proc / 'fd' / entry)}")
            except OSError:
                continue
    return {
        "pid": pid,
        "rss": rss_kib * 1024,
        "cpu_seconds": round(cpu_seconds, 3),
        "threads": int(fields.get("Threads", "1").strip()),
        "open_files": count,
        "files": files,
        "children": _descendants(pid),
    }


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
        except OSError:
            continue
        kids = [int(child) for child in text.split()]
        found += kids
        pending += kids
    return found


async def dump_stack(pid: int, path: Path, home: Path | None = None) -> str:
    """Every thread's Python stack in worker ``pid``, via its ``faulthandler`` file.

    The file is opened without following a symlink, nor one at a directory below ``home``
    (``home.py``): the worker runs task code, which could have replaced its file with a link
    to one the daemon must not empty."""
    try:
        dir_fd = open_dir(path.parent, under=home)
        try:  # empty it; the worker appends
            fd = open_private(path.name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        return f"(no stack: {exc})"
    try:
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + STACK_TIMEOUT
        size = -1
        while time.monotonic() < deadline:
            await asyncio.sleep(_SETTLE)
            # A few hundred bytes in the page cache: microseconds, not worth a thread.
            current = os.fstat(fd).st_size
            if current and current == size:
                break
            size = current
        text = os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")
    finally:
        os.close(fd)
    return text or "(the worker wrote no stack in time)"
