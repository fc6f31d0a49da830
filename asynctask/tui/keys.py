"""Keys from a terminal: cbreak mode, and bytes to key names.

cbreak rather than raw: keys arrive one by one without echo, but the terminal still turns
Ctrl-C into SIGINT and output newlines into CR LF, so a ``KeyboardInterrupt`` unwinds through
``cbreak``'s ``finally`` and the terminal is given back as it was found, whatever ends the view.

Arrow keys are escape sequences (``ESC [ A``) that may arrive split across reads, so the parser
keeps an unfinished sequence for the next read instead of reading ``[`` and ``A`` as keys.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import tty
from collections.abc import Iterator

ESC = "\x1b"
SEQUENCES = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end"}


class KeyParser:
    """``feed(bytes)`` returns the key names completed so far: single characters as
    themselves, arrows as ``up``/``down``/``left``/``right``, and ``escape`` for a lone ESC
    followed by anything that does not start a sequence."""

    def __init__(self) -> None:
        self._pending = ""

    def __repr__(self) -> str:
        return f"<KeyParser pending={self._pending!r}>"

    def feed(self, data: bytes) -> list[str]:
        text = self._pending + data.decode("utf-8", errors="replace")
        self._pending = ""
        keys: list[str] = []
        i = 0
        while i < len(text):
            char = text[i]
            if char != ESC:
                keys.append(char)
                i += 1
                continue
            if i + 1 == len(text) or (text[i + 1] in "[O" and i + 2 == len(text)):
                self._pending = text[i:]  # the rest of the sequence is still on its way
                break
            if text[i + 1] not in "[O":
                keys.append("escape")
                i += 1
                continue
            end = i + 2  # CSI: parameters (digits, ';') then one final letter or '~'
            while end < len(text) and (text[end].isdigit() or text[end] == ";"):
                end += 1
            if end == len(text):
                self._pending = text[i:]
                break
            keys.append(SEQUENCES.get(text[end], "unknown"))
            i = end + 1
        return keys


@contextlib.contextmanager
def cbreak(fd: int) -> Iterator[None]:
    """Keys without Enter and without echo while inside; the saved modes come back on any exit."""
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def read_keys(fd: int, parser: KeyParser, timeout: float) -> list[str]:
    """The keys typed within ``timeout`` seconds (waits no longer, returns at the first read);
    ``eof`` when the terminal is gone, so the caller quits instead of spinning."""
    ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
    if not ready:
        return []
    data = os.read(fd, 1024)
    if not data:
        return ["eof"]
    return parser.feed(data)
