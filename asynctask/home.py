"""Prepare and verify the daemon's home before anything is written to it.

Why: the home holds every tenant's arguments, results and output, and the daemon often runs as
root. A home another user owns or can write lets that user plant a symlink where a log goes -
``logs/attempts -> /etc/cron.d`` made a root daemon write task-controlled bytes into a system
directory - and files created with the default umask (0644) let every local user read the
database and the logs. README.md, "Private state": the home is never readable by other
users, and the daemon never follows a symlink inside it.

What ``prepare_home`` does, once at start-up (the daemon, and ``daemon --detach`` before it
creates the log):

* the home and each directory the daemon uses in it (``logs/``, ``logs/attempts/``, ``run/``)
  must be a real directory (not a symlink) owned by the daemon's uid and not writable by group
  or others; anything else is refused with a ``UsageError`` naming the path and the fix - never
  repaired, since what another user could write may already hold their plants;
* the home is set to 0700, or 0711 in shared mode (``[auth.users]`` names users who must reach
  the socket inside it: they may traverse, not list or read); the directories inside to 0700;
* the daemon's files (database, WAL, SHM, pid, lock, everything in ``logs/`` and ``run/``) must
  not be symlinks either; any with a mode looser than 0600 - left by an older version - is
  tightened, and the caller logs what was. ``logs/attempts/`` may hold a million files, so it
  is walked only when the directory itself was looser than 0700 (an older version's): once it
  is 0700, nobody else can reach a file in it whatever its mode;
* the home's config (``asynctask.toml``) must not be writable by anyone but the daemon's user
  (or root): it names the code the daemon runs;
* the database is created empty at 0600 if missing: SQLite gives the WAL and SHM files it
  creates later the database file's mode.

Files are then opened with ``open_private``: ``O_NOFOLLOW`` (a symlink planted later, e.g. by a
task running as the daemon's uid, makes the open fail instead of being followed), created 0600
whatever the umask, and refused unless they are a regular file with one link. The daemon also
sets its umask to 0o077, so anything a library creates in the home is private too.

Parents of the home are not checked: they are the operator's choice (``--home``), and a sticky
``/tmp`` is a common and safe one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

from asynctask.errors import UsageError
from asynctask.paths import CONFIG_NAME, DATABASE_NAME, LOCK_NAME, LOG_DIR, PID_NAME, RUN_DIR

PRIVATE_FILE: Final = 0o600
PRIVATE_DIR: Final = 0o700
#: Shared mode: other users may reach the socket by name, never list or read the home.
SHARED_HOME: Final = 0o711
#: The process-wide umask of the daemon: what a library creates in the home is private too.
UMASK: Final = 0o077

ATTEMPTS_DIR: Final = "attempts"  # inside LOG_DIR
#: The directories inside the home the daemon uses, parents first.
DIRECTORIES: Final = (LOG_DIR, f"{LOG_DIR}/{ATTEMPTS_DIR}", RUN_DIR)
#: The daemon's files at the top of the home (SQLite's WAL, SHM and rollback journal too).
TOP_FILES: Final = (
    DATABASE_NAME,
    f"{DATABASE_NAME}-wal",
    f"{DATABASE_NAME}-shm",
    f"{DATABASE_NAME}-journal",
    PID_NAME,
    LOCK_NAME,
)

_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def verify_home(home: Path) -> None:
    """Create ``home`` (0700) if it is missing, and refuse it unless it is a real directory
    owned by the daemon's uid that others cannot write. Changes nothing that exists: the
    daemon calls it before it takes the home's lock, ``prepare_home`` after."""
    try:
        home.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    except OSError as exc:
        if not os.path.islink(home):
            raise UsageError(f"cannot create the home {home}: {exc.strerror}") from None
    fd = _open_dir(home, None, str(home))
    try:
        _check_dir(fd, home)
    finally:
        os.close(fd)


def prepare_home(home: Path, *, shared: bool, sqlite: bool = True) -> list[str]:
    """Create or verify ``home`` (see the module docstring); returns what was tightened, as
    ``"<path> 0o644 -> 0o600"`` lines for the caller to log. Raises ``UsageError``.

    ``sqlite=False``: the store is elsewhere (``[store] url``), so no empty database file is
    made, which ``doctor`` and an operator would take for the store."""
    tightened: list[str] = []
    verify_home(home)
    fd = _open_dir(home, None, str(home))
    try:
        _check_dir(fd, home)  # again, on this descriptor: what is changed below is what was checked
        _set_mode(fd, home, SHARED_HOME if shared else PRIVATE_DIR, tightened)
        for name in TOP_FILES:
            _check_file(fd, name, home / name, tightened)
        _check_config(fd, home / CONFIG_NAME)
        if sqlite:
            _create_private(fd, DATABASE_NAME)
        for relative in DIRECTORIES:
            path = home / relative
            with contextlib.suppress(FileExistsError):
                os.mkdir(relative, PRIVATE_DIR, dir_fd=fd)
            sub = _open_dir(path, fd, relative)
            try:
                _check_dir(sub, path)
                was = stat.S_IMODE(os.fstat(sub).st_mode)
                _set_mode(sub, path, PRIVATE_DIR, tightened)
                if relative != f"{LOG_DIR}/{ATTEMPTS_DIR}" or was & ~PRIVATE_DIR:
                    for name in _entries(sub):
                        _check_file(sub, name, path / name, tightened)
            finally:
                os.close(sub)
    finally:
        os.close(fd)
    return tightened


def open_private(path: str | Path, flags: int, *, dir_fd: int | None = None) -> int:
    """Open a file of the home without following a symlink; created 0600, tightened to 0600
    if it was looser. Raises ``OSError`` (``ELOOP`` for a symlink) and refuses anything but a
    regular file with one link (a FIFO would block the daemon, a hard link write elsewhere)."""
    fd = os.open(
        path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, PRIVATE_FILE, dir_fd=dir_fd
    )
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise OSError(f"{path}: not a regular file with one link; refusing to use it")
        if stat.S_IMODE(info.st_mode) & ~PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir(path: Path, *, under: Path | None = None) -> int:
    """A directory of the home, opened without following a symlink, for ``dir_fd`` use;
    raises ``OSError`` (``ELOOP`` or ``ENOTDIR`` for a symlink). With ``under`` (the home),
    no component below it is followed either - ``O_NOFOLLOW`` alone covers only the last."""
    if under is None:
        return os.open(path, _DIR_FLAGS)
    fd = os.open(under, _DIR_FLAGS)
    try:
        for part in path.relative_to(under).parts:
            fd, parent = os.open(part, _DIR_FLAGS, dir_fd=fd), fd
            os.close(parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_dir(path: Path, dir_fd: int | None, name: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if os.path.islink(path):
            raise UsageError(
                f"{path} is a symlink; the daemon never follows one in its home: remove it "
                "(and make the home a real directory)"
            ) from None
        raise UsageError(f"{path}: cannot open it as a directory: {exc.strerror}") from None


def _check_dir(fd: int, path: Path) -> None:
    info = os.fstat(fd)
    uid = os.geteuid()
    if info.st_uid != uid:
        raise UsageError(
            f"{path} is owned by uid {info.st_uid}, not the daemon's uid {uid}: "
            f"use a home the daemon's user owns (chown {uid} {path})"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UsageError(
            f"{path} is writable by {_who(info.st_mode)} (mode {stat.S_IMODE(info.st_mode):o}):"
            f" others may have planted files in it; check it, then chmod go-w {path}"
        )


def _who(mode: int) -> str:
    both = mode & stat.S_IWGRP and mode & stat.S_IWOTH
    return "group and others" if both else "group" if mode & stat.S_IWGRP else "others"


def _set_mode(fd: int, path: Path, wanted: int, tightened: list[str]) -> None:
    was = stat.S_IMODE(os.fstat(fd).st_mode)
    if was != wanted:
        os.fchmod(fd, wanted)
        if was & ~wanted:
            tightened.append(f"{path} {was:#o} -> {wanted:#o}")


def _check_file(dir_fd: int, name: str, path: Path, tightened: list[str]) -> None:
    """A file of the daemon's: refuse a symlink or another user's; tighten a loose mode."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UsageError(
            f"{path} is a symlink; the daemon never follows one in its home: remove it"
        )
    if info.st_uid != os.geteuid():
        raise UsageError(
            f"{path} is owned by uid {info.st_uid}, not the daemon's uid {os.geteuid()}: "
            "remove it or chown it"
        )
    if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & ~PRIVATE_FILE:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd
        )
        try:
            was = stat.S_IMODE(os.fstat(fd).st_mode)
            os.fchmod(fd, was & PRIVATE_FILE)
        finally:
            os.close(fd)
        tightened.append(f"{path} {was:#o} -> {was & PRIVATE_FILE:#o}")


def _check_config(dir_fd: int, path: Path) -> None:
    """The home's config decides what the daemon imports and runs (``[workers] paths``): one
    another user can write is refused. It is only read, so a symlink (to /etc, say) is fine."""
    try:
        info = os.stat(path.name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if info.st_uid not in (os.geteuid(), 0) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UsageError(
            f"{path} can be changed by users other than the daemon's (owner uid {info.st_uid}, "
            f"mode {stat.S_IMODE(info.st_mode):o}): chown it to the daemon's user, chmod go-w"
        )


def _create_private(dir_fd: int, name: str) -> None:
    with contextlib.suppress(FileExistsError):
        os.close(open_private(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, dir_fd=dir_fd))


def _entries(dir_fd: int) -> Iterator[str]:
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            yield entry.name


def lock_home(home: Path) -> IO[str]:
    """One daemon per home: a second one would share the database and the workers' fate. The
    returned file holds the lock for as long as it is open (the daemon's life)."""
    path = home / LOCK_NAME
    try:  # never through a symlink
        handle = os.fdopen(open_private(path, os.O_RDWR | os.O_CREAT), "a+")
    except OSError as exc:
        raise UsageError(f"{path}: cannot open the lock file: {exc}; remove it") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UsageError(f"another daemon is already running with home {home}") from None
    return handle
