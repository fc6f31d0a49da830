"""Frames sent and read by hand, for tests that send what the real client never would."""

from __future__ import annotations

import socket
from typing import Any

from asynctask.protocol import FrameDecoder
from tests.e2e.conftest import DaemonProcess


def connect(daemon: DaemonProcess, timeout: float = 10) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(daemon.socket))
    return sock


def read_frame(sock: socket.socket) -> dict[str, Any]:
    """The next frame the daemon sends; ``ConnectionError`` if it closes first."""
    decoder = FrameDecoder()
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        messages = decoder.feed(data)
        if messages:
            message: dict[str, Any] = messages[0]
            return message
