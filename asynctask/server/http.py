"""The optional ``/metrics`` HTTP listener, for a Prometheus scrape.

A few dozen lines of HTTP/1.1 rather than a web framework: it serves one read-only path to one
kind of client, answers every request with ``Connection: close``, and never reads a body.
It binds to loopback only (the config refuses other hosts): the metrics name every tenant,
and the daemon's access control lives on the Unix socket, not here. A slow or malformed client
gets a timeout or a 400 and costs the daemon nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from asynctask.observe.prometheus import CONTENT_TYPE

log = logging.getLogger(__name__)

#: The most bytes of request line and headers read before answering 431.
MAX_HEAD: Final = 8192
#: Seconds a client has to send its request head.
READ_TIMEOUT: Final = 5.0


class MetricsHttp:
    """Serves ``GET /metrics`` (and ``HEAD``) with the text ``render()`` returns."""

    def __init__(self, host: str, port: int, render: Callable[[], str]) -> None:
        self._host = host
        self._port = port
        self._render = render
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=MAX_HEAD
        )

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the port is chosen by the system when configured as 0)."""
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, TimeoutError) as exc:
                if isinstance(exc, asyncio.LimitOverrunError):
                    await self._reply(writer, 431, "request head too large\n")
                return
            status, body = self._answer(head)
            method = head.split(b" ", 1)[0]
            await self._reply(writer, status, body, head_only=method == b"HEAD")
        except (ConnectionError, OSError):
            pass  # the client went away; nothing to tell it
        except Exception:  # the daemon never dies of a client
            log.exception("metrics HTTP request failed")
        finally:
            writer.close()

    def _answer(self, head: bytes) -> tuple[int, str]:
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return 400, "bad request\n"
        method, target = parts[0], parts[1]
        if method not in (b"GET", b"HEAD"):
            return 405, "only GET and HEAD\n"
        if target.split(b"?", 1)[0] != b"/metrics":
            return 404, "only /metrics is served here\n"
        return 200, self._render()

    async def _reply(
        self, writer: asyncio.StreamWriter, status: int, body: str, head_only: bool = False
    ) -> None:
        data = body.encode()
        content_type = CONTENT_TYPE if status == 200 else "text/plain; charset=utf-8"
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        writer.write(head if head_only else head + data)
        await writer.drain()


_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
}
