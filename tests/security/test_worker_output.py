"""``executor/output.py`` on real pipes and a real pool: lines, caps, escapes, last words."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from asynctask.executor.output import MAX_LINE, WorkerOutput, escape
from asynctask.executor.pool import PoolConfig, WorkerPool

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"plain\ttabbed", "plain\ttabbed"),
        (b"cr\rnew", "cr\\x0dnew"),
        (b"\x1b[2Jclear", "\\x1b[2Jclear"),
        ("c1\x85 and\u2028sep".encode(), "c1\\x85 and\\u2028sep"),
        (b"bad \xff utf-8", "bad \\xff utf-8"),
    ],
)
def test_a_line_is_escaped(raw: bytes, text: str) -> None:
    assert escape(raw) == text


def payloads(path: Path) -> list[str]:
    """What each line says after its ``<time> worker <pid>: `` prefix (checked)."""
    lines = path.read_text().splitlines()
    prefix = " worker 42: "
    assert all(prefix in line and line.index(prefix) == 24 for line in lines), lines
    return [line.split(prefix, 1)[1] for line in lines]


async def test_lines_partial_lines_and_long_lines(tmp_path: Path) -> None:
    path = tmp_path / "workers.log"
    output = WorkerOutput(str(path), 1_000_000)
    write_end = await output.pipe(lambda: 42)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # created with the first pipe
    os.write(write_end, b"one\ntw")
    os.write(write_end, b"o\n\n" + b"L" * (MAX_LINE + 10) + b"\n" + b"P" * MAX_LINE)
    os.write(write_end, b"P\nno end")
    os.close(write_end)
    await output.close(timeout=5)
    long_lines = ["L" * MAX_LINE, "L" * 10, "P" * MAX_LINE, "P"]
    assert payloads(path) == ["one", "two", "", *long_lines, "no end"]


async def test_each_worker_keeps_up_to_its_cap_then_a_marker_and_a_count(
    tmp_path: Path,
) -> None:
    path = tmp_path / "workers.log"
    output = WorkerOutput(str(path), 100)
    write_end = await output.pipe(lambda: 42)
    for _ in range(10):
        os.write(write_end, b"x" * 29 + b"\n")  # 30 bytes a line: three fit in 100
    os.close(write_end)
    await output.close(timeout=5)
    assert payloads(path) == [
        "x" * 29,
        "x" * 29,
        "x" * 29,
        "[asynctask: output past max_worker_output (100 bytes) is dropped]",
        "[asynctask: dropped 210 bytes of output]",
    ]


async def test_a_symlink_at_the_file_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"")
    (tmp_path / "workers.log").symlink_to(victim)
    output = WorkerOutput(str(tmp_path / "workers.log"), 1000)
    write_end = await output.pipe(lambda: 42)  # the pipe is still read (and dropped)
    os.write(write_end, b"secret\n")
    os.close(write_end)
    await output.close(timeout=5)
    assert victim.read_bytes() == b""


async def test_a_worker_that_dies_at_start_leaves_its_last_words(tmp_path: Path) -> None:
    """The pipe is read to its end, not closed with the process: a worker's error just
    before it exits is in the log the pool's message points to."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'no module named broken' >&2\nexit 3\n")
    python.chmod(0o700)
    log = tmp_path / "workers.log"
    config = PoolConfig(python=str(python), workers=1, output_path=str(log))
    pool = WorkerPool(config, print, lambda: None)
    with pytest.raises(RuntimeError, match=f"its output is in {log}"):
        await pool.start()
    assert log.read_text().endswith(": no module named broken\n")
