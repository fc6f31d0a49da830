"""One client connection: handshake, peer credentials, request dispatch, replies.

Who the peer is (its ``Principal``: uid, and whether it is one of the daemon's workers) is
decided once, when the connection is accepted, by the ``identify`` callable the daemon supplies;
requests then pass it to the dispatcher with no further cost.

An ``asyncio.Protocol`` rather than a stream coroutine: bytes are fed to the sans-I/O
``FrameDecoder`` in ``data_received`` and each request is dispatched at once, with no coroutine
per message. Ops that answer from memory reply synchronously; ops that wait (a submit waits for
its commit) return an awaitable whose completion sends the reply. Replies carry the request's
``rid``, so a client may pipeline.

Failure rules: a ``ProtocolError`` (bad frame) gets one error reply and the connection is closed,
because framing cannot be trusted after it. Any other error is answered on the request and the
connection stays open. An unexpected exception in the daemon is logged and answered as an
internal error; it never propagates to the event loop, so no client can take the daemon down.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from asynctask.errors import AsynctaskError, ProtocolError, UsageError
from asynctask.protocol import PROTOCOL_VERSION, FrameDecoder, encode_frame, error_reply, ok_reply
from asynctask.server.auth import Principal

log = logging.getLogger("asynctask.server")

_PEERCRED = struct.Struct("3i")
#: Requests in flight on one connection before the daemon stops reading from it.
MAX_IN_FLIGHT = 256

Reply = dict[str, Any] | Awaitable[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of the socket, from ``SO_PEERCRED`` (kernel-verified)."""

    pid: int
    uid: int
    gid: int


#: ``dispatch(principal, op, message) -> reply fields``, supplied by the daemon.
Dispatcher = Callable[[Principal, str, dict[str, Any]], Reply]
#: ``identify(peer) -> principal``, called once per connection, supplied by the daemon.
Identify = Callable[[Peer], Principal]


def as_user(peer: Peer) -> Principal:
    """The ``identify`` of a daemon without workers: every peer is a user, by its uid."""
    return Principal(uid=peer.uid, pid=peer.pid)


def peer_of(sock: socket.socket | None) -> Peer:
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return Peer(pid=0, uid=-1, gid=-1)
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return Peer(pid=pid, uid=uid, gid=gid)


class Connection(asyncio.Protocol):
    def __init__(
        self,
        dispatch: Dispatcher,
        max_frame: int,
        on_close: Callable[[Connection], None],
        identify: Identify = as_user,
    ) -> None:
        self._dispatch = dispatch
        self._identify = identify
        self._decoder = FrameDecoder(max_frame)
        self._max_frame = max_frame
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._greeted = False
        self._in_flight = 0
        self._paused = False
        self.peer = Peer(0, -1, -1)
        self.principal = Principal(uid=-1)

    def __repr__(self) -> str:
        return f"<Connection peer={self.peer} as={self.principal} in_flight={self._in_flight}>"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement its interface.
        self._transport = cast(asyncio.Transport, transport)
        try:
            self.peer = peer_of(transport.get_extra_info("socket"))
        except OSError as exc:
            log.warning("cannot read peer credentials: %s", exc)
        try:
            self.principal = self._identify(self.peer)
        except Exception:  # refuse the connection rather than guess who it is
            log.exception("cannot identify the peer pid=%d uid=%d", self.peer.pid, self.peer.uid)
            self.close()
            return
        log.debug(
            "connection from pid=%d uid=%d as %s", self.peer.pid, self.peer.uid, self.principal
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._on_close(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as exc:
            log.info("closing connection from pid %d: %s", self.peer.pid, exc.message)
            self._send(error_reply(None, exc.to_wire()))
            self.close()
            return
        for message in messages:
            if self._transport is None:
                return
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        rid = message.get("rid")
        op = message.get("op")
        if not self._greeted:
            self._greet(rid, op, message)
            return
        if not isinstance(op, str):
            self._send(error_reply(rid, UsageError("a request needs an 'op' string").to_wire()))
            return
        try:
            reply = self._dispatch(self.principal, op, message)
        except AsynctaskError as exc:
            self._send(error_reply(rid, exc.to_wire()))
            return
        except Exception:
            log.exception("internal error handling %r", op)
            self._send(error_reply(rid, {"code": "internal", "message": "internal daemon error"}))
            return
        if isinstance(reply, dict):
            self._send(ok_reply(rid, **reply))
            return
        future = asyncio.ensure_future(reply)
        self._in_flight += 1
        if self._in_flight >= MAX_IN_FLIGHT and not self._paused and self._transport:
            self._paused = True
            self._transport.pause_reading()
        future.add_done_callback(lambda done: self._finish(rid, op, done))

    def _finish(self, rid: Any, op: str, done: asyncio.Future[dict[str, Any]]) -> None:
        self._in_flight -= 1
        if self._paused and self._in_flight < MAX_IN_FLIGHT // 2 and self._transport:
            self._paused = False
            self._transport.resume_reading()
        if done.cancelled():
            self._send(error_reply(rid, {"code": "shutting_down", "message": "daemon stopping"}))
            return
        exc = done.exception()
        if exc is None:
            self._send(ok_reply(rid, **done.result()))
        elif isinstance(exc, AsynctaskError):
            self._send(error_reply(rid, exc.to_wire()))
        else:
            log.error("internal error handling %r", op, exc_info=exc)
            self._send(error_reply(rid, {"code": "internal", "message": "internal daemon error"}))

    def _greet(self, rid: Any, op: Any, message: dict[str, Any]) -> None:
        if op != "hello":
            self._send(
                error_reply(rid, ProtocolError("the first request must be 'hello'").to_wire())
            )
            self.close()
            return
        version = message.get("version")
        if version != PROTOCOL_VERSION:
            error = ProtocolError(
                f"protocol version {version!r} is not supported (daemon speaks {PROTOCOL_VERSION})"
            )
            self._send(error_reply(rid, error.to_wire()))
            self.close()
            return
        self._greeted = True
        self._send(ok_reply(rid, version=PROTOCOL_VERSION, max_frame=self._max_frame))

    def _send(self, reply: dict[str, Any]) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        try:
            transport.write(encode_frame(reply))
        except Exception:  # an unpackable reply is a daemon bug; keep serving others
            log.exception("cannot encode reply")
            fallback = {"code": "internal", "message": "internal daemon error"}
            transport.write(encode_frame(error_reply(reply.get("rid"), fallback)))
