"""The fault shim does what its interface says, on a plain Python process (no daemon): the other
checks, and the daemon-level storage-fault tests, rely on each of these properties."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from benchmarks.reliability import shim
from benchmarks.reliability.common import poll

CHILD = textwrap.dedent(
    """
    import errno, os, sys, time
    inside, outside, control = sys.argv[1], sys.argv[2], sys.argv[3]

    def attempt(what, call):
        try:
            call()
            print(what, "ok", flush=True)
        except OSError as exc:
            print(what, errno.errorcode[exc.errno], flush=True)

    fd = os.open(inside, os.O_WRONLY | os.O_CREAT, 0o600)
    out = os.open(outside, os.O_WRONLY | os.O_CREAT, 0o600)
    for _ in range(3):
        attempt("write", lambda: os.write(fd, b"abc"))
    attempt("outside", lambda: os.write(out, b"abc"))
    attempt("fsync", lambda: os.fsync(fd))
    pid = os.fork()
    if pid == 0:
        attempt("child-write", lambda: os.write(fd, b"x"))
        os._exit(0)
    os.waitpid(pid, 0)
    # the test flips the control file now, then tells us to go on by removing `go`
    open(control + ".ready", "w").close()
    while os.path.exists(control + ".go"):
        time.sleep(0.01)
    attempt("after", lambda: os.pwrite(fd, b"zz", 1))
    attempt("after-fsync", lambda: os.fdatasync(fd))
    attempt("env", lambda: print("LD_PRELOAD" in os.environ))
    """
)


def _run(shim_lib: Path, tmp_path: Path, fail: str, flip_to: str) -> list[str]:
    home = tmp_path / "home"
    home.mkdir()
    control = tmp_path / "faults"
    go = tmp_path / "faults.go"
    go.touch()
    env = shim.shim_env(
        shim_lib,
        home,
        control=control,
        report=tmp_path / "faults.log",
        journal=tmp_path / "journal.bin",
        fail=fail,
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home / "f"), str(tmp_path / "out"), str(control)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = tmp_path / "faults.ready"
        poll(ready.exists, 20, "child ready")
        shim.set_faults(control, flip_to)
        go.unlink()
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
    return out.splitlines()


def test_nth_write_fails_once_and_only_inside_the_prefix(shim_lib: Path, tmp_path: Path) -> None:
    lines = _run(shim_lib, tmp_path, "write:2:ENOSPC", "off")
    assert lines[:5] == ["write ok", "write ENOSPC", "write ok", "outside ok", "fsync ok"]
    assert lines[5] == "child-write ok"  # a forked child (a daemon's worker) is never faulted
    # the rules were switched off; LD_PRELOAD is gone from the environment programs inherit
    assert lines[6:9] == ["after ok", "after-fsync ok", "False"]
    report = shim.injected(tmp_path / "faults.log")
    assert len(report) == 1
    assert "op=write" in report[0]
    assert "errno=ENOSPC" in report[0]


def test_always_and_the_control_file_fail_then_recover(shim_lib: Path, tmp_path: Path) -> None:
    lines = _run(shim_lib, tmp_path, "fsync:1:EIO:always", "write:1:EIO:always")
    assert lines[:5] == ["write ok", "write ok", "write ok", "outside ok", "fsync EIO"]
    # the control file replaced the rules: now every write fails, fsync works again
    assert lines[6:8] == ["after EIO", "after-fsync ok"]


def test_journal_records_writes_syncs_in_order(shim_lib: Path, tmp_path: Path) -> None:
    _run(shim_lib, tmp_path, "", "off")
    records = shim.read_journal(tmp_path / "journal.bin")
    inside = str((tmp_path / "home" / "f").resolve())
    ops = [(r.op, r.offset, r.data) for r in records if r.path == inside]
    assert ops == [
        (shim.WRITE, 0, b"abc"),
        (shim.WRITE, 3, b"abc"),
        (shim.WRITE, 6, b"abc"),
        (shim.SYNC, 0, b""),
        (shim.WRITE, 1, b"zz"),
        (shim.SYNC, 0, b""),
    ]
    assert all(r.path.startswith(str((tmp_path / "home").resolve())) for r in records)
    assert [r.t_ns for r in records] == sorted(r.t_ns for r in records)


def test_a_delay_rule_slows_the_call_without_failing_it(shim_lib: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = shim.shim_env(shim_lib, home, fail="fsync:2:delay300:always")
    code = textwrap.dedent(
        """
        import os, sys, time
        fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
        for _ in range(3):
            started = time.monotonic()
            os.fsync(fd)
            print(round(time.monotonic() - started, 2))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(home / "f")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    first, second, third = (float(x) for x in done.stdout.split())
    assert first < 0.2
    assert second >= 0.3
    assert third >= 0.3
