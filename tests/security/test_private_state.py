"""Private state (README, "Security model"): real daemons, real files, real users.

The home is 0700 (0711 when ``[auth.users]`` lets other users reach its socket); the database,
WAL, every log, the pid and lock files are 0600; a home the daemon does not own, or that others
can write, is refused; a symlink in the home is never followed, whether it was there at start-up
or planted while the daemon runs. Workers' output that bypasses the per-attempt capture goes to
a private, capped ``logs/workers.log`` with one prefixed line per line written.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asynctask.executor.cgroups import detect_cgroups, sweep_stale
from tests.e2e.conftest import ROOT, DaemonProcess, poll

#: Refusals are usage errors: the daemon command exits 2 with one line saying what to fix.
EXIT_USAGE = 2

ONE_WORKER = "[workers]\nmin_workers = 1\nmax_workers = 1\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def other_user() -> Iterator[pwd.struct_passwd]:
    """A throwaway system user, removed afterwards (needs root: CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a throwaway user (CI runs as root)")
    name = f"atpriv{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def start_refused(home: Path, timeout: float = 20.0) -> tuple[int | None, str]:
    """Run ``asynctask daemon`` on ``home`` and return its exit code and output; None as the
    code when it did not exit (it started serving: the refusal did not happen)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "asynctask", "daemon", "--home", str(home)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        sweep_stale(detect_cgroups())
        return None, out.decode(errors="replace")
    return proc.returncode, out.decode(errors="replace")


def run_output_tasks(daemon: DaemonProcess) -> None:
    """One task printing (captured per attempt), one writing to fd 1 directly (not captured)."""
    client = daemon.client()
    client.submit("builtins:print", "printed-by-a-task").result(timeout=30)
    client.submit("os:write", 1, b"fd-one-by-a-task\n").result(timeout=30)
    poll(lambda: (daemon.home / "logs" / "workers.log").exists())
    poll(lambda: b"fd-one-by-a-task" in (daemon.home / "logs" / "workers.log").read_bytes())


def assert_private_files(home: Path) -> None:
    logs = home / "logs"
    attempt_logs = list((logs / "attempts").iterdir())
    assert attempt_logs, "the printing task left no attempt log"
    files = [
        home / "asynctask.db",
        home / "asynctask.db-wal",
        home / "asynctask.db-shm",
        home / "daemon.pid",
        home / "daemon.lock",
        logs / "workers.log",
        *attempt_logs,
    ]
    found = {str(path.relative_to(home)): oct(mode(path)) for path in files if path.exists()}
    assert found == {str(path.relative_to(home)): "0o600" for path in files}
    for directory in (logs, logs / "attempts", home / "run"):
        assert mode(directory) == 0o700, directory


def test_single_user_home_is_0700_and_every_file_0600(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(ONE_WORKER).start()
    run_output_tasks(daemon)
    assert mode(daemon.home) == 0o700
    assert mode(daemon.socket) == 0o600
    assert_private_files(daemon.home)
    assert daemon.stop() == 0


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user may traverse (pytest's own tmp_path is 0700), under /tmp."""
    path = Path(tempfile.mkdtemp(prefix="asynctask-shared-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_user(user: pwd.struct_passwd, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``user`` (the system Python: pyenv's lives under 0700 /root)."""
    return subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_shared_home_is_0711_and_every_file_0600(
    make_shared_daemon: Callable[..., DaemonProcess],
    other_user: pwd.struct_passwd,
    public_dir: Path,
) -> None:
    config = (
        ONE_WORKER
        + f'\n[auth.users]\n{other_user.pw_name} = ["acme"]\n'
        # Multi-user mode runs only what a tenant is allowed (tests/security/test_allowlist.py).
        + '\n[tenants.default]\nfunctions = ["builtins:print", "os:write"]\n'
    )
    daemon = make_shared_daemon(config, home=public_dir / "home").start()
    run_output_tasks(daemon)
    assert mode(daemon.home) == 0o711  # others may reach the socket, not list or read
    assert mode(daemon.socket) == 0o666  # every request is authorized by peer credentials
    assert_private_files(daemon.home)
    # As the other user: the socket answers; the home cannot be listed, no file can be read.
    connect = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"
    reached = as_user(other_user, "/usr/bin/python3", "-c", connect, str(daemon.socket))
    assert reached.returncode == 0, reached.stderr
    assert as_user(other_user, "ls", str(daemon.home)).returncode != 0
    for path in (daemon.home / "asynctask.db", daemon.home / "logs" / "workers.log"):
        read = as_user(other_user, "cat", str(path))
        assert read.returncode != 0, path
        assert "fd-one-by-a-task" not in read.stdout
    assert daemon.stop() == 0


def test_detached_daemon_log_is_0600(make_daemon: Callable[..., DaemonProcess]) -> None:
    daemon = make_daemon(ONE_WORKER)
    started = daemon.cli("daemon", "--detach", "--home", str(daemon.home))
    assert started.returncode == 0, started.stderr
    try:
        log = daemon.home / "logs" / "daemon.log"
        poll(lambda: b"serving on" in log.read_bytes())
        assert mode(log) == 0o600
        assert mode(daemon.home) == 0o700
    finally:
        stopped = daemon.cli("stop", "--wait")
        assert stopped.returncode == 0, stopped.stderr


def test_looser_files_of_an_older_version_are_tightened_at_start(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(ONE_WORKER).start()
    run_output_tasks(daemon)
    assert daemon.stop() == 0
    home = daemon.home
    loose = [
        home / "asynctask.db",
        home / "daemon.lock",
        home / "logs" / "workers.log",
        *(home / "logs" / "attempts").iterdir(),
    ]
    for path in loose:
        path.chmod(0o644)
    for directory in (home, home / "logs", home / "logs" / "attempts", home / "run"):
        directory.chmod(0o755)
    daemon.start()
    assert mode(home) == 0o700
    assert_private_files(home)
    assert "tightened" in daemon.log.read_text()
    assert daemon.stop() == 0


# -- homes the daemon must refuse --------------------------------------------------------------


def test_home_owned_by_another_user_is_refused(
    tmp_path: Path, other_user: pwd.struct_passwd
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, other_user.pw_uid, other_user.pw_gid)
    code, output = start_refused(home)
    assert code == EXIT_USAGE, output
    assert str(home) in output
    assert "owned by" in output
    assert len(output.strip().splitlines()) == 1, output  # one line, no traceback
    assert list(home.iterdir()) == []  # nothing was created in it


@pytest.mark.parametrize("loose", [0o777, 0o770, 0o702])
def test_home_others_can_write_is_refused(tmp_path: Path, loose: int) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(loose)
    code, output = start_refused(home)
    assert code == EXIT_USAGE, output
    assert str(home) in output
    assert "writable" in output
    assert list(home.iterdir()) == []
    assert mode(home) == loose  # refused, not silently "fixed"


@pytest.mark.parametrize("entry", ["logs", "logs/attempts", "run"])
def test_symlinked_directory_in_the_home_is_refused(tmp_path: Path, entry: str) -> None:
    home = tmp_path / "home"
    (home / entry).parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    home.chmod(0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (home / entry).symlink_to(elsewhere, target_is_directory=True)
    code, output = start_refused(home)
    assert code == EXIT_USAGE, output
    assert str(home / entry) in output
    assert "symlink" in output
    assert list(elsewhere.iterdir()) == []  # nothing was written through it


@pytest.mark.parametrize("entry", ["asynctask.db", "daemon.pid", "logs/workers.log"])
def test_symlinked_file_in_the_home_is_refused(tmp_path: Path, entry: str) -> None:
    home = tmp_path / "home"
    (home / "logs").mkdir(parents=True, mode=0o700)
    home.chmod(0o700)
    target = tmp_path / "target"
    target.write_bytes(b"")
    (home / entry).symlink_to(target)
    code, output = start_refused(home)
    assert code == EXIT_USAGE, output
    assert str(home / entry) in output
    assert "symlink" in output
    assert target.read_bytes() == b""


def test_symlink_planted_at_an_attempt_log_while_running_is_not_followed(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    daemon = make_daemon(ONE_WORKER).start()
    client = daemon.client()
    first = client.submit("builtins:print", "first")
    first.result(timeout=30)
    attempts = daemon.home / "logs" / "attempts"
    assert [p.name for p in attempts.iterdir()] == ["1.1.log"]  # <seq>.<attempt>.log
    # The next task is seq 2: plant its log file as a symlink to a file outside the home.
    victim = tmp_path / "victim"
    victim.write_bytes(b"victim's own bytes\n")
    (attempts / "2.1.log").symlink_to(victim)
    second = client.submit("builtins:print", "* * * * * root task-controlled bytes")
    second.result(timeout=30)
    assert victim.read_bytes() == b"victim's own bytes\n"
    # Reading the second task's logs does not read through the symlink either.
    logs = client.logs(second.id)
    assert all(b"victim" not in entry["data"] for entry in logs["attempts"])
    # The daemon keeps serving, and logs the failed write.
    assert client.submit("builtins:print", "third").result(timeout=30) is None
    assert (attempts / "3.1.log").read_bytes() == b"third\n"
    poll(lambda: "2.1.log" in daemon.log.read_text())
    assert (attempts / "2.1.log").is_symlink()
    assert daemon.stop() == 0


# -- output that bypasses the per-attempt capture ----------------------------------------------


def test_fd1_output_is_capped_private_and_cannot_forge_lines(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    config = ONE_WORKER + 'max_worker_output = "4K"\n'
    daemon = make_daemon(config).start()
    client = daemon.client()
    forged = b"2026-01-01T00:00:00.000Z INFO asynctask.daemon: forged\rline\x1b[2J\n"
    client.submit("os:write", 1, forged).result(timeout=30)
    client.submit("os:write", 2, b"to stderr\n").result(timeout=30)
    handles = [client.submit("os:write", 1, b"x" * 1023 + b"\n") for _ in range(20)]
    for handle in handles:
        handle.result(timeout=30)
    log = daemon.home / "logs" / "workers.log"
    poll(lambda: b"dropped" in log.read_bytes())
    assert mode(log) == 0o600
    data = log.read_bytes()
    assert len(data) < 4096 + 1024  # the cap, plus the lines' prefixes and the marker
    assert data.count(b"x" * 1023) < 5
    lines = data.decode().splitlines()
    # Every line names the one worker the tenant has had (by the pid the daemon knows it by).
    prefixes = {line.split(": ", 1)[0].split(" worker ")[-1] for line in lines}
    assert len(prefixes) == 1, lines
    assert prefixes.pop().isdigit(), lines
    assert not any(line.startswith("2026-01-01") for line in lines)
    forged_line = next(line for line in lines if "forged" in line)
    assert "\\x0d" in forged_line
    assert "\\x1b" in forged_line
    assert any(line.endswith(": to stderr") for line in lines)
    assert daemon.stop() == 0
