"""Hostile bytes on the socket never take the daemon down."""

from __future__ import annotations

import socket
import struct

import msgpack
import pytest

from asynctask.protocol import encode_frame
from tests.e2e.conftest import DaemonProcess
from tests.e2e.rawsocket import connect, read_frame


def _closed(sock: socket.socket) -> bool:
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1",  # not msgpack
        struct.pack(">I", 2**31) + b"x",  # oversized length prefix
        b"GET / HTTP/1.1\r\n\r\n",
        struct.pack(">I", 3) + msgpack.packb([1, 2]),  # not a map
    ],
)
def test_garbage_gets_an_error_and_a_close(daemon: DaemonProcess, garbage: bytes) -> None:
    with connect(daemon) as sock:
        sock.sendall(garbage)
        reply = read_frame(sock)
        assert reply["ok"] is False
        assert reply["error"]["code"] == "protocol"
        assert _closed(sock)
    assert daemon.client().ping()["pid"] == daemon.proc.pid


def test_handshake_is_required_and_versions_checked(daemon: DaemonProcess) -> None:
    with connect(daemon) as sock:
        sock.sendall(encode_frame({"op": "ping", "rid": 1}))
        assert "hello" in read_frame(sock)["error"]["message"]
    with connect(daemon) as sock:
        sock.sendall(encode_frame({"op": "hello", "rid": 1, "version": 999}))
        assert "not supported" in read_frame(sock)["error"]["message"]


def test_unknown_op_and_bad_fields_keep_the_connection(daemon: DaemonProcess) -> None:
    with connect(daemon) as sock:
        sock.sendall(encode_frame({"op": "hello", "rid": 0, "version": 1}))
        assert read_frame(sock)["ok"] is True
        sock.sendall(encode_frame({"op": "launch-missiles", "rid": 1}))
        reply = read_frame(sock)
        assert (reply["rid"], reply["error"]["code"]) == (1, "usage")
        sock.sendall(encode_frame({"op": "submit", "rid": 2, "tasks": [{"function": 5}]}))
        assert read_frame(sock)["error"]["code"] == "usage"
        sock.sendall(encode_frame({"op": "status", "rid": 3, "id": ["x"]}))
        assert read_frame(sock)["error"]["code"] == "usage"
        sock.sendall(encode_frame({"op": "ping", "rid": 4}))
        assert read_frame(sock)["ok"] is True


def test_client_hanging_up_mid_frame_is_harmless(daemon: DaemonProcess) -> None:
    for _ in range(20):
        with connect(daemon) as sock:
            sock.sendall(encode_frame({"op": "hello", "rid": 0, "version": 1})[:3])
    assert daemon.client().ping()["accepting"] is True


def test_a_brief_submit_answers_each_task_by_id_tenant_and_state_only(
    daemon: DaemonProcess,
) -> None:
    payload = msgpack.packb([[1, 2], {}])
    task = {"function": "tests.e2e.tasks:add", "payload": payload, "delay": 60}
    with connect(daemon) as sock:
        sock.sendall(encode_frame({"op": "hello", "rid": 0, "version": 1}))
        assert read_frame(sock)["ok"] is True
        sock.sendall(encode_frame({"op": "submit", "rid": 1, "tasks": [task], "brief": True}))
        (brief,) = read_frame(sock)["tasks"]
        assert brief.keys() == {"id", "tenant", "state"}
        assert (brief["tenant"], brief["state"]) == ("default", "scheduled")
        sock.sendall(encode_frame({"op": "submit", "rid": 2, "tasks": [task, task]}))
        whole = read_frame(sock)["tasks"]  # without brief: each task's whole view
        assert len(whole) == 2
        assert {"id", "function", "created_at", "due_at"} <= whole[0].keys()
        named = {**task, "id": "named"}
        sock.sendall(encode_frame({"op": "submit", "rid": 3, "tasks": [named], "brief": True}))
        assert read_frame(sock)["tasks"][0]["id"] == "named"
        sock.sendall(encode_frame({"op": "submit", "rid": 4, "tasks": [named, task], "brief": 1}))
        refused = read_frame(sock)
        assert (refused["rid"], refused["error"]["code"]) == (4, "usage")
        assert "brief must be true or false" in refused["error"]["message"]
        sock.sendall(
            encode_frame({"op": "submit", "rid": 5, "tasks": [named, task], "brief": True})
        )
        first, second = read_frame(sock)["tasks"]  # an ID already taken is answered briefly too
        assert first == {"id": "named", "tenant": "default", "state": "scheduled"}
        assert second.keys() == {"id", "tenant", "state"}
    assert daemon.client().status(brief["id"]).state.value == "scheduled"
