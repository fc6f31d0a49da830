"""The optional ``/metrics`` HTTP listener, for a Prometheus scrape.

A few dozen lines of HTTP/1.1 rather than a web framework: it serves one read-only path to one
kind of client, answers every request with ``Connection: close``, and never reads a body.
A slow or malformed client gets a timeout or a 400 and costs the daemon nothing else.

Bounds, as on the socket (``connection.py``, docs/contract.md "Robustness"): the request head must
arrive within ``READ_TIMEOUT`` and fit in ``MAX_HEAD`` bytes (else the connection is closed, or
answered 431); at most ``MAX_CONNECTIONS`` are served at once, and one more is answered 503 at
once and closed without reading; a reply the client does not read is given ``WRITE_TIMEOUT``
(the transport buffers at most ``WRITE_HIGH`` bytes before ``drain`` waits), then the
connection is dropped. Scrapes that arrive while one is being rendered share that rendering
(its text is bounded in size: ``observe.readout.exposition_steps``), so N concurrent scrapes
cost one readout, not N.

Access control: the metrics name every tenant and queue, which on the Unix socket only an admin
may read, while any local user can connect to a loopback port. So every request must carry
``Authorization: Bearer <token>`` (else 401 and ``WWW-Authenticate: Bearer``), the token being
random and kept in a file only the daemon's user can read (``token_file``, default
``<home>/metrics.token``), which a Prometheus scrape job names in ``authorization:
credentials_file:``. The file is made without following a symlink (``O_NOFOLLOW | O_EXCL``
after unlinking whatever was there), and kept across restarts when it is a regular file the
daemon's user owns that no one else can write or read (0600, or 0640 to give a group access).
The listener binds to loopback unless ``[metrics] allow_remote`` is set (the config refuses other
hosts without it): the token travels in clear text, so another machine may scrape only where the
operator chose to let it (a private network, a container network, a TLS proxy in front). The same
token is required from every address; nothing else changes with the address.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Awaitable, Callable
from typing import Final

from asynctask.errors import UsageError
from asynctask.observe.prometheus import CONTENT_TYPE

log = logging.getLogger(__name__)

#: The most bytes of request line and headers read before answering 431.
MAX_HEAD: Final = 8192
#: Seconds a client has to send its request head.
READ_TIMEOUT: Final = 5.0
#: Seconds a client has to read the reply (a scrape is a few hundred KiB at most).
WRITE_TIMEOUT: Final = 30.0
#: Connections served at once; one more gets 503 and is closed.
MAX_CONNECTIONS: Final = 16
#: Unsent reply bytes above which ``drain`` waits for the client.
WRITE_HIGH: Final = 256 * 1024
#: The token file's name in the home, unless ``[metrics] token_file`` names another.
TOKEN_NAME: Final = "metrics.token"
#: Characters of a token (``secrets.token_urlsafe``) and the fewest a kept token must have.
_TOKEN_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_MIN_TOKEN: Final = 32


class MetricsHttp:
    """Serves ``GET /metrics`` (and ``HEAD``) with the text ``render()`` returns, to requests
    that carry the bearer token kept in ``token_file``."""

    def __init__(
        self,
        host: str,
        port: int,
        render: Callable[[], Awaitable[str]],
        token_file: str,
        *,
        read_timeout: float = READ_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._host = host
        self._port = port
        self._render = render
        self._token_file = token_file
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._max_connections = max_connections
        self._expected = b""
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self.connections = 0  # being served now
        self._rendering: asyncio.Future[str] | None = None

    def __repr__(self) -> str:
        rendering = self._rendering is not None and not self._rendering.done()
        return (
            f"<MetricsHttp {self._host}:{self._port} connections={self.connections}"
            f"/{self._max_connections} rendering={rendering}>"
        )

    async def start(self) -> None:
        try:
            token = ensure_token(self._token_file)
        except OSError as exc:
            raise UsageError(
                f"metrics.token_file: cannot write the token to {self._token_file}: "
                f"{exc.strerror or exc}"
            ) from None
        self._expected = f"Bearer {token}".encode()
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=MAX_HEAD
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self._address = str(host), int(port)

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the port is chosen by the system when configured as 0).

        Kept from ``start``: once ``close`` has begun the server has no sockets left, and a
        ``ping`` answered during shutdown still names the address it served."""
        assert self._address is not None
        return self._address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH)
        if self.connections >= self._max_connections:
            try:
                await self._reply(writer, 503, "too many connections to /metrics\n")
            except (ConnectionError, OSError, TimeoutError):
                pass
            finally:
                writer.close()
            return
        self.connections += 1
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._read_timeout)
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, TimeoutError) as exc:
                if isinstance(exc, asyncio.LimitOverrunError):
                    await self._reply(writer, 431, "request head too large\n")
                return
            status, body = await self._answer(head)
            method = head.split(b" ", 1)[0]
            await self._reply(writer, status, body, head_only=method == b"HEAD")
        except (ConnectionError, OSError, TimeoutError):
            pass  # the client went away, or does not read; nothing to tell it
        except Exception:  # the daemon never dies of a client
            log.exception("metrics HTTP request failed")
        finally:
            self.connections -= 1
            writer.close()

    async def _answer(self, head: bytes) -> tuple[int, str]:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return 400, "bad request\n"
        if not self._authorized(lines[1:]):
            return 401, "a bearer token is required (see [metrics] token_file)\n"
        method, target = parts[0], parts[1]
        if method not in (b"GET", b"HEAD"):
            return 405, "only GET and HEAD\n"
        if target.split(b"?", 1)[0] != b"/metrics":
            return 404, "only /metrics is served here\n"
        return 200, await self._shared_render()

    async def _shared_render(self) -> str:
        """The text of the rendering in progress, or of a new one: concurrent scrapes share
        one readout. Shielded, so a client that goes away does not cancel the others'."""
        rendering = self._rendering
        if rendering is None or rendering.done():
            rendering = self._rendering = asyncio.ensure_future(self._render())
        return await asyncio.shield(rendering)

    def _authorized(self, headers: list[bytes]) -> bool:
        """Exactly one ``Authorization`` header, equal to ``Bearer <token>`` (compared in
        constant time; the scheme's case is not checked, the token's is)."""
        values = [
            value.strip()
            for name, sep, value in (line.partition(b":") for line in headers)
            if sep and name.strip().lower() == b"authorization"
        ]
        if len(values) != 1 or not self._expected:
            return False
        given = values[0]
        scheme, _, credentials = given.partition(b" ")
        if scheme.lower() == b"bearer":
            given = b"Bearer " + credentials.strip()
        return hmac.compare_digest(given, self._expected)

    async def _reply(
        self, writer: asyncio.StreamWriter, status: int, body: str, head_only: bool = False
    ) -> None:
        data = body.encode()
        content_type = CONTENT_TYPE if status == 200 else "text/plain; charset=utf-8"
        challenge = (
            'WWW-Authenticate: Bearer realm="asynctask metrics"\r\n' if status == 401 else ""
        )
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            f"{challenge}"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        writer.write(head if head_only else head + data)
        await asyncio.wait_for(writer.drain(), self._write_timeout)


_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def ensure_token(path: str) -> str:
    """The token in ``path``: kept if the file is private (see the module's docstring), else
    a new random one written to a new 0600 file; ``OSError`` if neither can be done."""
    kept = _private_token(path)
    if kept is not None:
        return kept
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "is a directory", path)
        os.unlink(path)  # a symlink is removed, never followed
    token = secrets.token_urlsafe(32)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, f"{token}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return token


def _private_token(path: str) -> str | None:
    """The token of an existing regular file the daemon's user owns that others cannot read
    and no one else can write; ``None`` when there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None  # missing, a symlink (ELOOP), or unreadable: make a new one
    try:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_mode & 0o037  # group write, anything for others
            or info.st_size > 1024
        ):
            return None
        text = os.read(fd, 1024).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    if len(text) < _MIN_TOKEN or not set(text) <= _TOKEN_CHARS:
        return None
    return text
