"""A small HTTP/1.1 server for the web console: a request head, an optional form body, one
reply, ``Connection: close``.

Why not the ``/metrics`` listener (``server/http.py``) itself: that one serves one read-only
path to a scraper and never reads a body or sets a header of its own. The console needs forms
(POST bodies), cookies and its own headers. This module keeps that listener's bounds and
reuses its constants (``MAX_HEAD``, ``READ_TIMEOUT``, ``WRITE_TIMEOUT``, ``WRITE_HIGH``), and
adds only what a browser needs. No framework and no third-party server: the stack is asyncio
(uvloop), a page is a few KiB, and a dependency would be one more thing parsing hostile input.

Bounds: the head must arrive within ``READ_TIMEOUT`` and fit in ``MAX_HEAD`` (else 431); a body
must be ``Content-Length`` bytes, at most ``MAX_BODY`` (else 413; chunked bodies get 411), read
within ``READ_TIMEOUT``; at most ``MAX_CONNECTIONS`` are served at once (one more: 503); a reply
the client does not read is dropped after ``WRITE_TIMEOUT``. A handler that raises gets a 500
and a log line; the daemon never dies of a request.

Every reply carries ``SECURITY_HEADERS``: a strict Content-Security-Policy (no inline script or
style, nothing from elsewhere, no framing), ``nosniff``, no referrer to another site, no caching.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

from asynctask.server.http import MAX_HEAD, READ_TIMEOUT, WRITE_HIGH, WRITE_TIMEOUT

log = logging.getLogger(__name__)

#: The largest request body read (the console's forms are a few fields).
MAX_BODY: Final = 16 * 1024
#: The most fields a query string or form may have.
MAX_FIELDS: Final = 64
#: Connections served at once; one more gets 503 and is closed.
MAX_CONNECTIONS: Final = 32

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    # Not "no-referrer": under it a browser sends ``Origin: null`` with the console's own
    # forms, and the origin check (console.py) could not tell them from another site's.
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # percent-decoded
    query: dict[str, str]  # the last value of each name
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    form: dict[str, str] = field(default_factory=dict)  # a url-encoded POST body

    def cookie(self, name: str) -> str | None:
        for part in self.headers.get("cookie", "").split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Stream:
    """A reply that stays open (server-sent events): each chunk ``events`` yields is written
    as it comes, until it ends or the client goes away (then it is closed)."""

    events: AsyncGenerator[bytes, None]


Handler = Callable[[Request], Awaitable[Response | Stream]]


class BadRequest(Exception):
    """The request cannot be served; ``status`` says why (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpServer:
    """Serves ``handler`` on ``host:port`` (port 0: one the system picks)."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        read_timeout: float = READ_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._host = host
        self._port = port
        self._handler = handler
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self.connections = 0  # being served now

    def __repr__(self) -> str:
        return (
            f"<HttpServer {self._host}:{self._port} connections={self.connections}"
            f"/{self._max_connections}>"
        )

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=MAX_HEAD
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self._address = str(host), int(port)

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port, kept from ``start``."""
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
                await self._reply(writer, text_response(503, "too many connections"))
            except (ConnectionError, OSError, TimeoutError):
                pass
            finally:
                writer.close()
            return
        self.connections += 1
        try:
            try:
                request = await self._read(reader)
            except BadRequest as exc:
                await self._reply(writer, text_response(exc.status, str(exc)))
                return
            except (asyncio.IncompleteReadError, TimeoutError):
                return  # went away or too slow: nothing to tell it
            try:
                response = await self._handler(request)
            except Exception:  # the daemon never dies of a request
                log.exception("web console request failed: %s %s", request.method, request.path)
                response = text_response(500, "internal error (see the daemon's log)")
            if isinstance(response, Stream):
                await self._stream(reader, writer, response.events)
            else:
                await self._reply(writer, response, head_only=request.method == "HEAD")
        except (ConnectionError, OSError, TimeoutError):
            pass  # the client went away, or does not read
        finally:
            self.connections -= 1
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> Request:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._read_timeout)
        except asyncio.LimitOverrunError:
            raise BadRequest(431, "request head too large") from None
        request = parse_head(head)
        if request.method != "POST":
            return request
        if "transfer-encoding" in request.headers:
            raise BadRequest(411, "a body must come with Content-Length")
        length_text = request.headers.get("content-length", "0")
        if not length_text.isdigit():
            raise BadRequest(400, "bad Content-Length")
        length = int(length_text)
        if length > MAX_BODY:
            raise BadRequest(413, "request body too large")
        body = await asyncio.wait_for(reader.readexactly(length), self._read_timeout)
        if request.headers.get("content-type", "").split(";")[0].strip() not in (
            "application/x-www-form-urlencoded",
            "",
        ):
            raise BadRequest(415, "only forms (application/x-www-form-urlencoded)")
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise BadRequest(400, "the body is not UTF-8") from None
        form = _fields(text)
        return Request(request.method, request.path, request.query, request.headers, form)

    async def _reply(
        self, writer: asyncio.StreamWriter, response: Response, head_only: bool = False
    ) -> None:
        lines = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Status')}"]
        lines.append(f"Content-Type: {response.content_type}")
        lines.append(f"Content-Length: {len(response.body)}")
        lines.extend(f"{name}: {value}" for name, value in (*SECURITY_HEADERS, *response.headers))
        lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(head if head_only else head + response.body)
        await asyncio.wait_for(writer.drain(), self._write_timeout)

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        events: AsyncGenerator[bytes, None],
    ) -> None:
        """An event stream: the head, then each chunk; the client closing its side (a read
        that returns) ends it at once, not at the next write."""
        try:
            lines = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream; charset=utf-8"]
            lines.extend(f"{name}: {value}" for name, value in SECURITY_HEADERS)
            lines.append("Connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await asyncio.wait_for(writer.drain(), self._write_timeout)
            gone = asyncio.ensure_future(reader.read(1))
            following: asyncio.Future[bytes] | None = None
            try:
                while True:
                    following = asyncio.ensure_future(anext(events))
                    await asyncio.wait((following, gone), return_when=asyncio.FIRST_COMPLETED)
                    if not following.done():
                        return
                    try:
                        chunk = following.result()
                    except StopAsyncIteration:
                        return
                    writer.write(chunk)
                    await asyncio.wait_for(writer.drain(), self._write_timeout)
            finally:
                gone.cancel()
                if following is not None and not following.done():
                    following.cancel()  # the generator ends at its await; then it can close
                    await asyncio.wait((following,))
        finally:
            await events.aclose()


def parse_head(head: bytes) -> Request:
    """The request line and headers; ``BadRequest`` for anything malformed."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
        raise BadRequest(400, "bad request") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "bad request line")
    method, target = parts[0], parts[1]
    if method not in ("GET", "HEAD", "POST"):
        raise BadRequest(405, "only GET, HEAD and POST")
    if not target.startswith("/"):
        raise BadRequest(400, "bad request target")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "bad header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    split = urlsplit(target)
    return Request(method, unquote(split.path), _fields(split.query), headers)


def _fields(text: str) -> dict[str, str]:
    """A query string or form body; the last value of a repeated name wins."""
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except ValueError:
        raise BadRequest(400, f"more than {MAX_FIELDS} fields") from None


def text_response(status: int, message: str) -> Response:
    return Response(status, f"{message}\n".encode(), "text/plain; charset=utf-8")


REASONS: Final = {
    200: "OK",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
