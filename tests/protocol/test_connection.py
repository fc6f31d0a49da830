"""The server side of a connection with a scripted transport: bounds without sockets.

``FakeTransport`` keeps what the daemon wrote, calls ``pause_writing`` past a few hundred bytes
unread (as a real transport does past its high-water mark) and ``resume_writing`` when the test
"reads" them; the e2e twin is tests/e2e/test_connection_bounds.py.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from asynctask.errors import AsynctaskError
from asynctask.protocol import FrameDecoder, encode_frame, encode_frames
from asynctask.server.auth import Principal
from asynctask.server.connection import TURN_BUDGET, Bounds, Connection, Peer
from asynctask.server.listener import Listener
from asynctask.server.loglimit import LogLimiter

HELLO = {"op": "hello", "rid": 0, "version": 1}


class FakeTransport:
    def __init__(self, protocol: Connection, high: int = 300) -> None:
        self.protocol = protocol
        self.high = high
        self.unread = bytearray()
        self.reading = True
        self.closing = False
        self.writing_paused = False

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return None

    def write(self, data: bytes) -> None:
        self.unread += data
        if len(self.unread) > self.high and not self.writing_paused:
            self.writing_paused = True
            self.protocol.pause_writing()

    def read_all(self) -> list[dict[str, Any]]:
        """The client reads everything written so far."""
        messages = FrameDecoder().feed(bytes(self.unread))
        self.unread.clear()
        if self.writing_paused:
            self.writing_paused = False
            self.protocol.resume_writing()
        return messages

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def ping(principal: Principal, op: str, message: dict[str, Any]) -> dict[str, Any]:
    return {"pong": True}


async def test_replies_not_read_stop_the_reading() -> None:
    connection = Connection(ping, Bounds(), lambda _: None)
    transport = FakeTransport(connection)
    connection.connection_made(transport)  # type: ignore[arg-type]
    pings = [{"op": "ping", "rid": n} for n in range(1, 101)]
    connection.data_received(encode_frames([HELLO, *pings]))  # one read: hello and 100 pings
    assert not transport.reading
    first = transport.read_all()
    assert 2 < len(first) < 30, "the daemon went on answering a client that did not read"
    answered = [m["rid"] for m in first]
    for _ in range(100):  # the client reads, the daemon reads a little more, and so on
        await asyncio.sleep(0)  # a connection handles TURN_BUDGET requests a loop turn
        answered += [m["rid"] for m in transport.read_all()]
    assert answered == list(range(101))  # every request answered, in order, none lost
    assert transport.reading


async def test_a_connection_handles_a_bounded_number_of_requests_per_loop_turn() -> None:
    """So that 100 connections pouring requests delay another client by a turn each, not by
    the whole flood: the rest of a read waits for the next turn, and reading pauses meanwhile."""
    connection = Connection(ping, Bounds(), lambda _: None)
    transport = FakeTransport(connection, high=1 << 30)  # a client that reads everything
    connection.connection_made(transport)  # type: ignore[arg-type]
    pings = [{"op": "ping", "rid": n} for n in range(1, 101)]
    connection.data_received(encode_frames([HELLO, *pings]))
    first = transport.read_all()
    assert len(first) == TURN_BUDGET <= 16  # one turn's worth (hello is one of them)
    assert not transport.reading
    answered = [m["rid"] for m in first]
    turns = 0
    while len(answered) < 101:
        await asyncio.sleep(0)
        turns += 1
        answered += [m["rid"] for m in transport.read_all()]
    assert answered == list(range(101))
    assert turns >= 100 // TURN_BUDGET
    assert transport.reading


async def test_a_big_frame_before_hello_is_refused_before_its_body() -> None:
    connection = Connection(ping, Bounds(max_frame=16 << 20), lambda _: None)
    transport = FakeTransport(connection, high=1 << 20)
    connection.connection_made(transport)  # type: ignore[arg-type]
    connection.data_received(struct.pack(">I", (64 << 10) + 1))
    [reply] = transport.read_all()
    assert reply["error"]["code"] == "protocol"
    assert transport.closing
    # After hello the configured max_frame applies.
    connection = Connection(ping, Bounds(max_frame=16 << 20), lambda _: None)
    transport = FakeTransport(connection, high=1 << 20)
    connection.connection_made(transport)  # type: ignore[arg-type]
    connection.data_received(encode_frame(HELLO) + encode_frame({"op": "x", "pad": "y" * 70000}))
    assert [m["ok"] for m in transport.read_all()] == [True, True]
    assert not transport.closing


async def test_the_listener_counts_users_and_tasks_apart() -> None:
    principals = iter(
        [Principal(uid=7)] * 3
        + [Principal(uid=0, is_worker=True, worker_tenant="a")] * 3
        + [Principal(uid=7)]
    )

    def identify(peer: Peer) -> Principal:
        return next(principals)

    listener = Listener(None, ping, identify=identify, max_connections_per_user=2)  # type: ignore[arg-type]
    opened = []
    for _ in range(7):
        connection = listener._connection()
        transport = FakeTransport(connection, high=1 << 20)
        connection.connection_made(transport)  # type: ignore[arg-type]
        opened.append((connection, transport))
    refused = [t.read_all() for _, t in opened]
    codes = [m[0]["error"]["code"] if m else None for m in refused]
    too_many = "too_many_connections"
    assert codes == [None, None, too_many, None, None, too_many, too_many]
    assert listener.per_user == {("uid", 7): 2, ("tenant", "a"): 2}
    for connection, _ in opened[:3]:  # the refused third adds no place back
        connection.connection_lost(None)
    assert listener.per_user == {("tenant", "a"): 2}
    assert repr(listener).endswith("connections=4 users=1 busiest=2>")
    message = refused[2][0]["error"]["message"]
    assert "uid 7" in message
    assert "max_connections_per_user" in message
    assert isinstance(AsynctaskError.from_wire(refused[2][0]["error"]), AsynctaskError)


def test_the_log_limiter_lets_one_line_a_uid_through_per_interval() -> None:
    now = [0.0]
    limiter = LogLimiter(interval=5.0, clock=lambda: now[0], max_keys=3)
    assert limiter.allow(1000) == 0
    assert [limiter.allow(1000) for _ in range(50)] == [None] * 50
    assert limiter.allow(1001) == 0  # another uid has its own window
    now[0] = 5.0
    assert limiter.allow(1000) == 50  # the next line says how many were held back
    assert repr(limiter) == "<LogLimiter keys=2 held_back=0>"
    for uid in range(2000, 2010):  # more uids than max_keys: memory stays bounded
        limiter.allow(uid)
    assert len(limiter._windows) <= 3


async def test_large_replies_wait_unencoded_and_few_reads_run_at_once() -> None:
    started: list[int] = []
    gate = asyncio.Event()

    async def read(message: dict[str, Any]) -> dict[str, Any]:
        started.append(message["rid"])
        await gate.wait()
        return {"task": {"result": "r" * 1000}}

    def dispatch(principal: Principal, op: str, message: dict[str, Any]) -> Any:
        return read(message) if op == "status" else {"pong": True}

    connection = Connection(dispatch, Bounds(), lambda _: None)
    transport = FakeTransport(connection)
    connection.connection_made(transport)  # type: ignore[arg-type]
    statuses = [{"op": "status", "rid": n} for n in range(1, 21)]
    connection.data_received(encode_frames([HELLO, *statuses]))
    await asyncio.sleep(0)
    assert started == [1, 2, 3, 4]  # MAX_READS_IN_FLIGHT; the rest wait
    assert not transport.reading
    transport.read_all()  # the hello reply
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(transport.unread) < 3000  # one reply over the mark, the others kept unencoded
    answered: list[int] = []
    for _ in range(200):  # the client reads; more is written, more read, and so on
        answered += [m["rid"] for m in transport.read_all()]
        await asyncio.sleep(0)
    assert sorted(answered) == list(range(1, 21))
    assert transport.reading
