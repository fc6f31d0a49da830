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

Bounds (docs/contract.md, "Robustness"): whatever a client does, one connection holds a
bounded amount of the daemon's memory, and only for a bounded time.

* Before ``hello`` a frame may be at most ``HELLO_MAX_FRAME`` (64 KiB), and ``hello`` must come
  within ``handshake_timeout``; a bigger length prefix closes the connection before its body is
  read. ``max_frame`` applies only once the peer has said hello.
* A connection with no request for ``idle_timeout`` is closed; one with a request in progress (a
  long ``wait``) is not idle. One timer per connection, re-armed lazily when it fires, so a
  request costs a clock read, not a timer.
* Reading stops while the peer does not read its replies (the transport's write buffer is above
  ``WRITE_HIGH``: ``pause_writing``) or ``MAX_IN_FLIGHT`` requests wait for an answer. Frames
  already read wait in the decoder meanwhile, at most ``DECODE_BATCH`` of them decoded
  (``feed(data, limit=...)``): the daemon holds at most one read chunk of requests, and the
  replies of those already in flight. A reply that completes while the peer does not read is
  kept as the daemon's dict, not encoded (a live task's view shares the daemon's objects), and
  written when the peer reads again; of the ops that copy rows out of the store (``READ_OPS``)
  at most ``MAX_READS_IN_FLIGHT`` are in flight or unwritten at once. So a peer that never
  reads costs at most a few replies.
* One connection handles at most ``TURN_BUDGET`` requests per turn of the event loop, then
  lets the others (and the timers) run before it goes on: a flood on some connections delays
  the rest by a turn, not by the whole flood.
* Who may connect at all (``max_connections_per_user``) is the ``Listener``'s ``admit``; a
  refused peer gets the error at once and is closed on its first bytes.
* Lines a peer can cause (bad frames, refusals, handshake timeouts) go through a ``LogLimiter``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from asynctask.errors import AsynctaskError, ProtocolError, UsageError
from asynctask.protocol import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    FrameDecoder,
    encode_frame,
    error_reply,
    ok_reply,
)
from asynctask.server.auth import Principal
from asynctask.server.loglimit import LogLimiter, held_back

log = logging.getLogger("asynctask.server")

_PEERCRED = struct.Struct("3i")
#: Requests in flight on one connection before the daemon stops reading from it.
MAX_IN_FLIGHT = 256
#: Largest frame accepted before ``hello``: a hello is a few dozen bytes.
HELLO_MAX_FRAME = 64 * 1024
#: Unsent reply bytes above which the daemon stops reading the connection, and below which
#: (``WRITE_LOW``) it reads again.
WRITE_HIGH = 256 * 1024
WRITE_LOW = 64 * 1024
#: Frames decoded at once; those not handled yet when the connection blocks wait, decoded.
DECODE_BATCH = 32
#: Requests one connection may handle in one turn of the loop before the others get theirs:
#: 100 connections pouring pings, each handled until its 256 KiB of unread replies paused
#: it, held a well-behaved client's ping for over a second (122 ms with 32 a turn).
TURN_BUDGET = 8
#: Ops whose reply is read from the store and may be large (a task's arguments and result, a
#: page of tasks, logs): at most ``MAX_READS_IN_FLIGHT`` of them per connection are being
#: answered or wait to be written, whatever the client pipelines.
READ_OPS = frozenset({"status", "list", "logs", "inspect"})
MAX_READS_IN_FLIGHT = 4

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
#: ``admit(connection) -> None`` to serve it, or the error it is refused with (``Listener``).
Admit = Callable[["Connection"], AsynctaskError | None]


@dataclass(frozen=True, slots=True)
class Bounds:
    """What one connection may hold, and for how long (``[server]``, ``[daemon] max_frame``)."""

    max_frame: int = DEFAULT_MAX_FRAME
    handshake_timeout: float = 5.0
    idle_timeout: float = 600.0


def _admit_all(connection: Connection) -> AsynctaskError | None:
    return None


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
        bounds: Bounds,
        on_close: Callable[[Connection], None],
        identify: Identify = as_user,
        *,
        admit: Admit = _admit_all,
        log_limit: LogLimiter | None = None,
    ) -> None:
        self._dispatch = dispatch
        self._identify = identify
        self._bounds = bounds
        self._decoder = FrameDecoder(min(HELLO_MAX_FRAME, bounds.max_frame))
        self._on_close = on_close
        self._admit = admit
        self._log_limit = log_limit or LogLimiter()
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._greeted = False
        self._refused = False
        self._in_flight = 0
        self._in_flight_full = False  # MAX_IN_FLIGHT reached; cleared below half of it
        self._yielded = False  # TURN_BUDGET used up: the rest waits for the next loop turn
        self._writing_paused = False  # the peer does not read its replies
        self._ready: collections.deque[dict[str, Any]] = collections.deque()  # decoded, not handled
        self._reads = 0  # READ_OPS requests answered or being answered, not yet written
        self._unwritten: collections.deque[tuple[dict[str, Any], bool]] = collections.deque()
        self._reading_paused = False
        self._last_request = 0.0
        self.peer = Peer(0, -1, -1)
        self.principal = Principal(uid=-1)

    def __repr__(self) -> str:
        state = "refused" if self._refused else "open" if self._greeted else "handshake"
        return (
            f"<Connection peer={self.peer} as={self.principal} {state} "
            f"in_flight={self._in_flight} reading={'paused' if self._reading_paused else 'on'}>"
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement its interface.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        self._loop = asyncio.get_running_loop()
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
        refusal = self._admit(self)
        if refusal is not None:
            # Said at once, closed on the peer's first bytes (or the handshake timeout): a client
            # that sends hello right after connecting reads this error, not a broken pipe.
            self._refused = True
            self._log("refusing a connection from pid %d: %s", refusal.message)
            self._send(error_reply(None, refusal.to_wire()))
        self._timer = self._loop.call_later(self._bounds.handshake_timeout, self._timer_fired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._on_close(self)

    @property
    def refused(self) -> bool:
        """Refused by ``admit`` when accepted: it holds no place in the per-user count."""
        return self._refused

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _log(self, message: str, reason: str) -> None:
        """A line this peer caused: at most one per uid per interval (``LogLimiter``)."""
        held = self._log_limit.allow(self.peer.uid)
        if held is not None:
            log.info(
                message + "%s", self.peer.pid, reason, held_back(held),
                extra={"event": "bad_client", "uid": self.peer.uid, "pid": self.peer.pid,
                       "suppressed": held},
            )  # fmt: skip

    def _timer_fired(self) -> None:
        self._timer = None
        if self._transport is None or self._loop is None:
            return
        if not self._greeted:
            if not self._refused:
                error = ProtocolError(f"no hello within {self._bounds.handshake_timeout:g}s")
                self._log("closing connection from pid %d: %s", error.message)
                self._send(error_reply(None, error.to_wire()))
            self.close()
            return
        idle = self._loop.time() - self._last_request
        if self._in_flight == 0 and idle >= self._bounds.idle_timeout:
            log.debug("closing connection from pid %d: idle for %.0fs", self.peer.pid, idle)
            self.close()
            return
        wait = self._bounds.idle_timeout - (0.0 if self._in_flight else idle)
        self._timer = self._loop.call_later(wait, self._timer_fired)

    # Reading: frames are decoded one at a time while the connection may take requests.

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self.close()
            return
        self._pump(data)

    def _pump(self, data: bytes = b"") -> None:
        ready = self._ready
        budget = TURN_BUDGET
        while self._transport is not None and not self._blocked():
            if ready:
                if budget == 0:  # the other connections' turn first; reading pauses meanwhile
                    self._yielded = True
                    assert self._loop is not None
                    self._loop.call_soon(self._next_turn)
                    break
                budget -= 1
                self._handle(ready.popleft())
                continue
            try:  # one frame at a time until hello, when max_frame changes
                messages = self._decoder.feed(data, limit=DECODE_BATCH if self._greeted else 1)
            except ProtocolError as exc:
                self._log("closing connection from pid %d: %s", exc.message)
                self._send(error_reply(None, exc.to_wire()))
                self.close()
                return
            data = b""
            if not messages:
                break
            ready.extend(messages)
        if data:  # stopped before this chunk: keep it, undecoded (reading is paused below)
            self._decoder.feed(data, limit=0)
        self._update_reading()

    def _next_turn(self) -> None:
        self._yielded = False
        self._pump()

    def _blocked(self) -> bool:
        return (
            self._yielded
            or self._writing_paused
            or self._in_flight_full
            or self._reads >= MAX_READS_IN_FLIGHT
        )

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        blocked = self._blocked()
        if blocked and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        elif not blocked and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
            if self._decoder.buffered or self._ready:
                self._pump()

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        unwritten = self._unwritten
        while unwritten and not self._writing_paused:
            reply, read = unwritten.popleft()
            self._send(reply)
            self._reads -= read
        self._update_reading()

    def _handle(self, message: dict[str, Any]) -> None:
        rid = message.get("rid")
        op = message.get("op")
        if not self._greeted:
            self._greet(rid, op, message)
            return
        assert self._loop is not None
        self._last_request = self._loop.time()
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
        read = op in READ_OPS
        self._reads += read
        if self._in_flight >= MAX_IN_FLIGHT:
            self._in_flight_full = True  # reading pauses as _pump stops
        future.add_done_callback(lambda done: self._finish(rid, op, read, done))

    def _finish(self, rid: Any, op: str, read: bool, done: asyncio.Future[dict[str, Any]]) -> None:
        self._in_flight -= 1
        if self._loop is not None:
            self._last_request = self._loop.time()  # idle from the last answer, not the ask
        if done.cancelled():
            reply = error_reply(rid, {"code": "shutting_down", "message": "daemon stopping"})
        else:
            exc = done.exception()
            if exc is None:
                reply = ok_reply(rid, **done.result())
            elif isinstance(exc, AsynctaskError):
                reply = error_reply(rid, exc.to_wire())
            else:
                log.error("internal error handling %r", op, exc_info=exc)
                reply = error_reply(rid, {"code": "internal", "message": "internal daemon error"})
        if self._writing_paused and self._transport is not None:
            self._unwritten.append((reply, read))  # written by resume_writing
        else:
            self._send(reply)
            self._reads -= read
        if self._in_flight_full and self._in_flight < MAX_IN_FLIGHT // 2:
            self._in_flight_full = False
        self._update_reading()

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
        self._decoder.max_frame = self._bounds.max_frame
        assert self._loop is not None
        self._last_request = self._loop.time()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self._bounds.idle_timeout, self._timer_fired)
        self._send(ok_reply(rid, version=PROTOCOL_VERSION, max_frame=self._bounds.max_frame))

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
