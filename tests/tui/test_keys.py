"""Bytes to key names, and a terminal given back as it was found."""

from __future__ import annotations

import os
import pty
import termios
import time

import pytest

from asynctask.tui.keys import KeyParser, cbreak, read_keys


@pytest.mark.parametrize(("data", "keys"), [
    (b"jkpq t", ["j", "k", "p", "q", " ", "t"]),
    (b"\x1b[A\x1b[B", ["up", "down"]),
    (b"\x1bOA\x1bOB", ["up", "down"]),  # application cursor mode
    (b"\x1b[1;5A", ["up"]),  # with a modifier
    (b"\x1b[5~", ["unknown"]),  # page up: a sequence, not '[', '5', '~'
    (b"\x1bq", ["escape", "q"]),
])  # fmt: skip
def test_feed_names_keys_and_sequences(data, keys) -> None:
    assert KeyParser().feed(data) == keys


def test_a_sequence_split_across_reads_is_one_key() -> None:
    parser = KeyParser()
    assert parser.feed(b"j\x1b") == ["j"]
    assert parser.feed(b"[") == []
    assert parser.feed(b"Bk") == ["down", "k"]
    assert repr(parser) == "<KeyParser pending=''>"


@pytest.fixture
def terminal():
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def test_cbreak_turns_off_echo_and_lines_and_restores_them_after_an_error(terminal) -> None:
    _, slave = terminal
    before = termios.tcgetattr(slave)
    inside: list[int] = []

    def interrupted() -> None:
        with cbreak(slave):
            inside.append(termios.tcgetattr(slave)[3])
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert not inside[0] & (termios.ECHO | termios.ICANON)
    assert inside[0] & termios.ISIG  # Ctrl-C still interrupts
    assert termios.tcgetattr(slave) == before


def test_read_keys_returns_what_was_typed_without_waiting_for_enter(terminal) -> None:
    master, slave = terminal
    parser = KeyParser()
    with cbreak(slave):
        started = time.monotonic()
        assert read_keys(slave, parser, 0.05) == []
        assert time.monotonic() - started >= 0.05
        os.write(master, b"p\x1b[A")
        assert read_keys(slave, parser, 5) == ["p", "up"]


def test_read_keys_reports_a_closed_input_as_eof() -> None:
    read_end, write_end = os.pipe()
    os.close(write_end)
    try:
        assert read_keys(read_end, KeyParser(), 5) == ["eof"]
    finally:
        os.close(read_end)
