"""The Unix-socket listener: refuse to start twice, set permissions, track connections.

A stale socket file (left by a daemon that was killed) is removed; a socket where another daemon
still answers is not, and start-up fails with a clear message instead of stealing it.
Permissions follow README.md, "Security model": with no ``[auth.users]`` the socket is 0600 (its
directory is 0700); when other users are configured it is 0666 (the home 0711) and every request is
authorized by the caller's ``SO_PEERCRED``.

Connections are counted per user: at most ``max_connections_per_user`` open at once for one
peer uid, and one more is refused with ``TooManyConnections``. The daemon's own workers (and
what their tasks start) are counted apart, per tenant of the task they run, with the same cap:
they run as the daemon's uid - an admin's - in the sandbox modes that do not switch uids, so
counting them as that uid would let one tenant's tasks lock the admin (and every other tenant's
tasks) out of the daemon, and the admin's own clients starve tasks of connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections.abc import Hashable
from pathlib import Path

from asynctask.errors import AsynctaskError, TooManyConnections, UsageError
from asynctask.protocol import DEFAULT_MAX_FRAME
from asynctask.server.auth import Principal
from asynctask.server.connection import Bounds, Connection, Dispatcher, Identify, as_user
from asynctask.server.loglimit import LogLimiter

log = logging.getLogger("asynctask.server")

#: Connections the kernel queues before the daemon accepts them (it truncates this to
#: ``net.core.somaxconn``): with asyncio's default of 100, 21 of a burst of 500 connects failed.
LISTEN_BACKLOG = max(1024, socket.SOMAXCONN)


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


def counted_as(principal: Principal) -> Hashable:
    """Whose connection count a connection adds to: its uid's, or its task's tenant's."""
    if principal.is_worker:
        return ("tenant", principal.worker_tenant)
    return ("uid", principal.uid)


class Listener:
    def __init__(
        self,
        path: Path,
        dispatch: Dispatcher,
        max_frame: int = DEFAULT_MAX_FRAME,
        *,
        shared: bool = False,
        identify: Identify = as_user,
        handshake_timeout: float = 5.0,
        idle_timeout: float = 600.0,
        max_connections_per_user: int = 256,
    ) -> None:
        self.path = path
        self._dispatch = dispatch
        self._identify = identify
        self._bounds = Bounds(max_frame, handshake_timeout, idle_timeout)
        self._max_per_user = max_connections_per_user
        self._shared = shared
        self._server: asyncio.AbstractServer | None = None
        self._log_limit = LogLimiter()
        self.connections: set[Connection] = set()
        self.per_user: dict[Hashable, int] = {}  # open connections by ``counted_as``
        self._counted: dict[Connection, Hashable] = {}

    def __repr__(self) -> str:
        return (
            f"<Listener {self.path} connections={len(self.connections)} "
            f"users={len(self.per_user)} busiest={max(self.per_user.values(), default=0)}>"
        )

    async def start(self, bound: socket.socket | None = None) -> None:
        """Listen; on ``bound`` (from ``bind_socket``) if given, else on a socket made now."""
        loop = asyncio.get_running_loop()
        if bound is None:
            bound = bind_socket(self.path, shared=self._shared)
        self._server = await loop.create_unix_server(
            self._connection, sock=bound, backlog=LISTEN_BACKLOG
        )

    def _connection(self) -> Connection:
        connection = Connection(
            self._dispatch,
            self._bounds,
            self._closed,
            self._identify,
            admit=self._admit,
            log_limit=self._log_limit,
        )
        self.connections.add(connection)
        return connection

    def _admit(self, connection: Connection) -> AsynctaskError | None:
        key = counted_as(connection.principal)
        count = self.per_user.get(key, 0)
        if count >= self._max_per_user:
            return TooManyConnections(
                f"{connection.principal} already has {count} connections open to the daemon, "
                f"the most [server] max_connections_per_user allows"
            )
        self.per_user[key] = count + 1
        self._counted[connection] = key
        return None

    def _closed(self, connection: Connection) -> None:
        self.connections.discard(connection)
        key = self._counted.pop(connection, None)
        if key is None:  # refused, or closed before it was admitted
            return
        count = self.per_user.get(key, 0) - 1
        if count > 0:
            self.per_user[key] = count
        else:
            self.per_user.pop(key, None)

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
