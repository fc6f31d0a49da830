"""The Unix-socket listener: refuse to start twice, set permissions, track connections.

A stale socket file (left by a daemon that was killed) is removed; a socket where another daemon
still answers is not, and start-up fails with a clear message instead of stealing it.
Permissions follow PRODUCT.md: with no ``[auth.users]`` the socket is 0600 (its directory is
0700); when other users are configured it is 0666 (the home 0711) and every request is
authorized by the caller's ``SO_PEERCRED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from pathlib import Path

from asynctask.errors import UsageError
from asynctask.server.connection import Connection, Dispatcher, Identify, as_user

log = logging.getLogger("asynctask.server")


def claim_socket_path(path: Path) -> None:
    """Remove a stale socket at ``path``; refuse if a live daemon answers there."""
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise UsageError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
        log.info("removed stale socket %s", path)
        return
    finally:
        probe.close()
    raise UsageError(f"another daemon is already serving on {path}")


def _chmod_socket(path: Path, mode: int) -> None:
    """chmod the socket we just bound, never what a symlink put in its place points at: the
    socket may live outside the home (``--socket``), in a directory others can write."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise UsageError(f"{path} was replaced while the daemon bound it; refusing to serve")
        os.chmod(f"/proc/self/fd/{fd}", mode)  # the inode of fd itself (Linux has no lchmod)
    finally:
        os.close(fd)


def bind_socket(path: Path, *, shared: bool) -> socket.socket:
    """The daemon's socket, bound but not listening: its file exists from here on (clients get
    "connection refused" until ``Listener.start``), so sandboxed workers started before that can
    bind-mount it into their view of the home (``executor/sandbox.py``).

    Bound 0600 whatever the mode: a wider umask, even for a moment, would apply to files other
    threads create meanwhile (the daemon's umask is 0o077, home.py); a shared socket is then
    opened to 0666 through a handle on the socket itself."""
    claim_socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    if shared:
        try:
            _chmod_socket(path, 0o666)
        except BaseException:
            sock.close()
            raise
    return sock


class Listener:
    def __init__(
        self,
        path: Path,
        dispatch: Dispatcher,
        max_frame: int,
        *,
        shared: bool = False,
        identify: Identify = as_user,
    ) -> None:
        self.path = path
        self._dispatch = dispatch
        self._identify = identify
        self._max_frame = max_frame
        self._shared = shared
        self._server: asyncio.AbstractServer | None = None
        self.connections: set[Connection] = set()

    def __repr__(self) -> str:
        return f"<Listener {self.path} connections={len(self.connections)}>"

    async def start(self, bound: socket.socket | None = None) -> None:
        """Listen; on ``bound`` (from ``bind_socket``) if given, else on a socket made now."""
        loop = asyncio.get_running_loop()
        if bound is None:
            bound = bind_socket(self.path, shared=self._shared)
        self._server = await loop.create_unix_server(self._connection, sock=bound)

    def _connection(self) -> Connection:
        connection = Connection(
            self._dispatch, self._max_frame, self.connections.discard, self._identify
        )
        self.connections.add(connection)
        return connection

    def stop_accepting(self) -> None:
        """Close the listening socket; connections already open keep being served."""
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def close(self) -> None:
        self.stop_accepting()
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
