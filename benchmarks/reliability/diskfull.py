"""Disk-full run: the daemon's home on a small tmpfs that a filler file fills up.

docs/contract.md "Robustness": a storage error (disk full) fails the affected requests with a typed
error (``storage``), never acknowledges what was not committed, keeps reads working, and service
resumes without a restart once space returns. This check mounts a tmpfs (root only), starts a
daemon whose home is on it, has it run some tasks, fills the disk, then:

0. submits ``running`` tasks of 0.3 s just before the fill, so that they finish (and their
   outcomes are committed, or not) while the disk is full;
1. submits until the daemon refuses (the WAL may still have room for a few) and records each
   refusal's error class, wire code and message;
2. reads (``status`` of every acknowledged task) while the disk is full;
3. frees the space and polls until a submit is acknowledged again - same daemon process;
4. waits for every acknowledged task to finish, then compares the daemon's view of each task
   (``status``) with the database row and, after a restart, with the daemon's view again: an
   acknowledged task missing anywhere is lost, a disagreement is a memory/database split.

``run_eio`` runs the same sequence with faultshim failing every fsync with EIO instead (no
root needed): the "I/O error" half of the promise.

    .venv/bin/python -m benchmarks.reliability.diskfull [--size 24M]
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from asynctask.errors import AsynctaskError, NotFound
from benchmarks.reliability import shim
from benchmarks.reliability.common import Daemon, config_text, poll, sweep_cgroups

CONFIG = "[workers]\nmin_workers = 1\nmax_workers = 1\n"
PAYLOAD = "x" * 2048  # an argument big enough that the WAL fills within a few hundred submits


class MountUnavailable(RuntimeError):
    """A tmpfs cannot be mounted here (not root, or mount refused); the message says why."""


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size``, unmounted (and its mount point removed) on the way out."""
    if os.geteuid() != 0:
        raise MountUnavailable("mounting a tmpfs needs root")
    point = Path(tempfile.mkdtemp(prefix="asynctask-diskfull-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        point.rmdir()
        raise MountUnavailable(f"mount -t tmpfs failed: {done.stderr.strip()}")
    try:
        yield point
    finally:
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)
        point.rmdir()


def fill(path: Path) -> int:
    """Write ``path`` until the file system is full; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as filler:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            block = bytes(chunk)
            while True:
                try:
                    filler.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                written += chunk
    return written


@dataclass
class Report:
    size: str = ""
    filler_mib: float = 0.0
    acked_before: int = 0
    acked_while_full: int = 0
    refused: int = 0
    refusal: str = ""  # class, code and message of the first refusal
    refusal_code: str = ""
    reads_ok: bool = False
    resumed_after_s: float | None = None
    same_process: bool = False
    lost: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)  # daemon and database disagree
    changed_by_restart: list[str] = field(default_factory=list)
    #: refused submits that exist afterwards (allowed: a commit whose reply was lost; but the
    #: client was told it failed, so it may submit again or give up on a task that runs)
    refused_present: list[str] = field(default_factory=list)
    #: An I/O error (not a full disk): the daemon must stop with EXIT_STORAGE_LOST (75) for its
    #: supervisor, since the kernel may have dropped its unwritten pages (fsyncgate), and the
    #: one request in flight is told its outcome is unknown. This is its exit code.
    fatal: bool = False
    exit_code: int | None = None
    in_doubt: list[str] = field(default_factory=list)  # refused as "unknown"
    error: str = ""

    @property
    def typed(self) -> bool:
        return self.refusal_code == "storage"

    def summary(self) -> str:
        resumed = (
            f"resumed {self.resumed_after_s:.2f} s after space returned"
            + ("" if self.same_process else " (in a NEW process)")
            if self.resumed_after_s is not None
            else "did NOT resume"
        )
        return (
            f"{self.size}"
            + (f", filler {self.filler_mib:.1f} MiB" if self.filler_mib else "")
            + f"; {self.acked_before} acked "
            f"before full, {self.acked_while_full} acked while full, {self.refused} refused "
            f"(first: {self.refusal or 'none'}); typed storage error: "
            f"{'yes' if self.typed else 'NO'}; reads "
            f"{'after the restart' if self.fatal else 'while full'}: "
            f"{'ok' if self.reads_ok else 'FAILED'}; {resumed}; lost {len(self.lost)}, "
            f"daemon/database disagree {len(self.split)}, changed by a restart "
            f"{len(self.changed_by_restart)}, refused but present afterwards "
            f"{len(self.refused_present)}"
            + (
                f"; stopped with exit code {self.exit_code} for a restart, "
                f"{len(self.in_doubt)} refused as of unknown outcome"
                if self.fatal
                else ""
            )
            + (f"; error: {self.error}" if self.error else "")
        )


def _db_states(home: Path) -> dict[str, str]:
    db = sqlite3.connect(f"file:{home / 'asynctask.db'}?mode=ro", uri=True, timeout=10)
    try:
        return dict(db.execute("SELECT id, state FROM tasks").fetchall())
    finally:
        db.close()


def _states(daemon: Daemon, ids: list[str]) -> dict[str, str]:
    client = daemon.client()
    out: dict[str, str] = {}
    for task_id in ids:
        try:
            out[task_id] = str(client.status(task_id).state)
        except NotFound:
            out[task_id] = "not found"
    return out


def run(
    size: str = "24M",
    before: int = 20,
    running: int = 4,
    max_submits: int = 3000,
    keep_log: Path | None = None,
) -> Report:
    """The whole check on a full tmpfs; raises ``MountUnavailable`` when it cannot mount."""
    report = Report(size=f"tmpfs {size}")
    with tmpfs(size) as mount:
        daemon = Daemon(mount / "home", config=config_text("full", CONFIG))
        try:
            filler = mount / "filler"

            def fill_up() -> None:
                report.filler_mib = fill(filler) / 2**20

            _run(daemon, report, before, running, max_submits, fill_up, filler.unlink)
        except (AsynctaskError, RuntimeError, TimeoutError, OSError) as exc:
            report.error = f"{type(exc).__name__}: {exc}"[:500]
        finally:
            daemon.kill9()
            sweep_cgroups()
            if keep_log is None:
                daemon.log.unlink(missing_ok=True)
            else:
                keep_log.write_bytes(daemon.log.read_bytes())
    return report


def run_eio(
    lib: Path,
    rules: str = "fsync:1:EIO:always",
    before: int = 20,
    running: int = 4,
    max_submits: int = 3000,
) -> Report:
    """The same sequence with the disk failing by faultshim's ``rules`` instead of filling up
    (no root needed): an I/O error on fsync, by default."""
    report = Report(size=f"faultshim {rules}")
    with tempfile.TemporaryDirectory(prefix="asynctask-eio-") as tmp:
        work = Path(tmp)
        control = work / "faults"
        home = work / "home"
        env = shim.shim_env(lib, home, control=control, report=work / "faults.log")
        daemon = Daemon(home, config=config_text("full", CONFIG), env=env)
        try:
            report.fatal = True
            _run(
                daemon,
                report,
                before,
                running,
                max_submits,
                fail=lambda: shim.set_faults(control, rules),
                recover=lambda: shim.set_faults(control, "off"),
            )
        except (AsynctaskError, RuntimeError, TimeoutError, OSError) as exc:
            report.error = f"{type(exc).__name__}: {exc}"[:500]
        finally:
            daemon.kill9()
            sweep_cgroups()
    return report


def _run(
    daemon: Daemon,
    report: Report,
    before: int,
    running: int,
    max_submits: int,
    fail: Callable[[], None],
    recover: Callable[[], None],
) -> None:
    daemon.start()
    client = daemon.client()
    acked: list[str] = []
    for i in range(before):
        client.submit("benchmarks.tasks:noop", task_id=f"before-{i}")
        acked.append(f"before-{i}")
    poll(lambda: client.ping()["tasks"]["live"] == 0, 60, "tasks before the fill")
    # These finish while the disk is full: their outcomes cannot be committed then.
    for i in range(running):
        client.submit("benchmarks.tasks:work", 0.3, task_id=f"running-{i}")
        acked.append(f"running-{i}")
    report.acked_before = len(acked)
    fail()
    full_since = time.monotonic()
    first_pid = daemon.pid
    refused: list[str] = []
    for i in range(max_submits):
        task_id = f"full-{i}"
        try:
            client.submit("benchmarks.tasks:work", 0.0, PAYLOAD, task_id=task_id)
        except AsynctaskError as exc:
            report.refused += 1
            refused.append(task_id)
            if "unknown" in exc.message:
                report.in_doubt.append(task_id)
            if not report.refusal:
                report.refusal = f"{type(exc).__name__} code={exc.code}: {exc.message}"[:300]
                report.refusal_code = exc.code
            if report.refused >= 5:
                break
            continue
        acked.append(task_id)
        report.acked_while_full += 1
    if report.fatal:  # it stops for a restart: reads are served again by the next process
        assert daemon.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            report.exit_code = daemon.proc.wait(30)
    try:
        if report.fatal:
            recover()
            daemon.start()
            client = daemon.client()
        states = _states(daemon, acked)
        report.reads_ok = all(state != "not found" for state in states.values())
    except (AsynctaskError, RuntimeError):
        report.reads_ok = False
    # keep it full until the running tasks have had time to finish
    time.sleep(max(0.0, full_since + 0.3 * running + 1.0 - time.monotonic()))
    recover()
    freed = time.monotonic()

    def submit_works() -> bool:
        try:
            client.submit("benchmarks.tasks:noop", task_id="after-0")
        except AsynctaskError:
            return False
        return True

    with contextlib.suppress(TimeoutError):
        poll(submit_works, 30, "a submit after space returned", interval=0.1)
        report.resumed_after_s = time.monotonic() - freed
        acked.append("after-0")
    report.same_process = daemon.alive() and daemon.pid == first_pid
    if not daemon.alive():
        daemon.start()  # it died: the rest of the check needs one
        client = daemon.client()
    with contextlib.suppress(TimeoutError):
        poll(lambda: client.ping()["tasks"]["live"] == 0, 60, "the final drain")
    # refused IDs too: the daemon must not remember a submit the database does not have
    seen = _states(daemon, acked + refused)
    stored = _db_states(daemon.home)
    for task_id in acked + refused:
        if seen[task_id] == "not found" and task_id not in stored:
            if task_id in acked:
                report.lost.append(task_id)
        elif seen[task_id] != stored.get(task_id, "not found"):
            report.split.append(
                f"{task_id}: daemon {seen[task_id]}, database {stored.get(task_id)}"
            )
    report.refused_present = [
        f"{task_id}: daemon {seen[task_id]}, database {stored.get(task_id)}"
        for task_id in refused
        if (seen[task_id] != "not found" or task_id in stored) and task_id not in report.in_doubt
    ]
    daemon.stop()
    daemon.start()
    again = _states(daemon, acked + refused)
    report.changed_by_restart = [
        f"{task_id}: {seen[task_id]} -> {again[task_id]}"
        for task_id in acked + refused
        if again[task_id] != seen[task_id]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="24M")
    args = parser.parse_args()
    try:
        print(run(args.size).summary())
    except MountUnavailable as exc:
        print(f"disk-full check skipped: {exc}")
    print(run_eio(shim.build()).summary())


if __name__ == "__main__":
    main()
