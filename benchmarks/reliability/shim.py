"""Build and drive faultshim, the LD_PRELOAD library that fails or records one process's disk I/O.

Why a preload library: the daemon's storage errors (EIO, ENOSPC on a write or an fsync) and its
fsync points are the behaviour docs/contract.md "Robustness" and "Durable submit" promise about, and
neither a real failing disk nor a real power cut can be had on demand in a test. SQLite calls
libc's ``write``/``pwrite64``/``fdatasync`` through the PLT, so a preloaded library sees each one.

Interface (the full contract is the comment at the top of ``faultshim.c``)::

    from benchmarks.reliability import shim

    lib = shim.build()                 # path of the .so, or raises ShimUnavailable (skip reason)
    env = shim.shim_env(lib, home, control=tmp / "faults", report=tmp / "faults.log",
                        journal=tmp / "journal.bin", fail="fsync:1:EIO:always")
    # start the daemon with {**os.environ, **env}; only files under ``home`` are affected and only
    # in the daemon process itself (its forked workers pass through, exec'd programs lose
    # LD_PRELOAD).
    shim.set_faults(control, "fsync:1:EIO:always")   # the disk fails from the next fsync on
    shim.set_faults(control, "write:1:ENOSPC:always")
    shim.set_faults(control, "off")                  # the disk recovers
    shim.injected(report)                            # lines of faults injected so far
    shim.read_journal(journal)                       # [Record(op, t_ns, path, offset, data)]

Rules: ``OP:N:ERRNO[:MODE]``, comma separated. OP is ``write`` (write, pwrite, pwrite64, writev,
pwritev) or ``fsync`` (fsync, fdatasync); N counts that class's calls on affected files since the
rules were loaded (1-based); ERRNO is EIO, ENOSPC, EDQUOT, EROFS, EFBIG or a number, or
``delayMS`` (the call succeeds after sleeping MS milliseconds: a slow disk); MODE is ``once``
(default: only the N-th call fails) or ``always`` (the N-th and every later one). The first
matching rule applies.

``build`` compiles ``faultshim.c`` with gcc into ``$XDG_CACHE_HOME/asynctask-faultshim`` (else
``~/.cache/...``), named by the source's hash, so an edited source is rebuilt and an unchanged
one is not. Without gcc it installs Debian's ``gcc`` when running as root with apt-get, else it
raises ``ShimUnavailable`` whose message is the reason to skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).with_name("faultshim.c")


class ShimUnavailable(RuntimeError):
    """The shim cannot be built here (no gcc and no way to install it); the message says why."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "asynctask-faultshim"


def _gcc() -> str:
    found = shutil.which("gcc")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ShimUnavailable(
            "faultshim needs gcc: not installed, and installing it needs root and apt-get"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "gcc"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise ShimUnavailable(f"installing gcc failed ({' '.join(command)}): {done.stderr}")
    found = shutil.which("gcc")
    if not found:
        raise ShimUnavailable("apt-get installed gcc but it is not on PATH")
    return found


def build() -> Path:
    """The compiled library, built (once per source version) if need be."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"faultshim-{digest}.so"
    if target.exists():
        return target
    gcc = _gcc()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build to a temp name and rename: two test processes building at once never see half a file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        done = subprocess.run(
            [gcc, "-O2", "-Wall", "-shared", "-fPIC", "-o", tmp, str(SOURCE), "-ldl", "-lpthread"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise ShimUnavailable(f"gcc failed to build faultshim:\n{done.stderr}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def shim_env(
    lib: Path,
    prefix: Path,
    *,
    control: Path | None = None,
    report: Path | None = None,
    journal: Path | None = None,
    fail: str = "",
) -> dict[str, str]:
    """The environment variables that load the shim into a process started with them."""
    env = {"LD_PRELOAD": str(lib), "FAULTSHIM_PATH_PREFIX": str(prefix), "FAULTSHIM_FAIL": fail}
    if control is not None:
        env["FAULTSHIM_CONTROL"] = str(control)
    if report is not None:
        env["FAULTSHIM_REPORT"] = str(report)
    if journal is not None:
        env["FAULTSHIM_JOURNAL"] = str(journal)
    return env


def set_faults(control: Path, rules: str) -> None:
    """Replace the rules in force (``"off"``: none), atomically, as the shim re-reads them."""
    tmp = control.with_name(control.name + ".tmp")
    tmp.write_text(rules + "\n")
    os.replace(tmp, control)


def injected(report: Path) -> list[str]:
    """The faults the shim has injected so far, one line each (see ``faultshim.c``)."""
    try:
        return report.read_text().splitlines()
    except FileNotFoundError:
        return []


WRITE, SYNC, TRUNCATE, FAULT = 1, 2, 3, 4
_HEADER = struct.Struct("<IIqqqII")
_MAGIC = 0x314A5346


@dataclass(frozen=True, slots=True)
class Record:
    """One journal record (``FAULTSHIM_JOURNAL``): ``offset`` is the new length of a truncate
    and the errno of a fault; ``data`` is a write's bytes."""

    op: int
    t_ns: int
    path: str
    offset: int
    data: bytes = b""


def read_journal(path: Path) -> list[Record]:
    """Every complete record of a journal (a torn last record, from a kill, is dropped)."""
    raw = path.read_bytes() if path.exists() else b""
    records: list[Record] = []
    at = 0
    while at + _HEADER.size <= len(raw):
        magic, op, t_ns, offset, length, pathlen, _ = _HEADER.unpack_from(raw, at)
        if magic != _MAGIC:
            raise ValueError(f"journal {path} is corrupt at byte {at}")
        end = at + _HEADER.size + pathlen + length
        if end > len(raw):
            break
        name = raw[at + _HEADER.size : at + _HEADER.size + pathlen].decode(errors="replace")
        data = raw[at + _HEADER.size + pathlen : end]
        records.append(Record(op, t_ns, name, offset, bytes(data)))
        at = end
    return records
