"""``home.py`` on real directories: what is created, tightened and refused, and ``open_private``."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

import pytest

from asynctask.errors import UsageError
from asynctask.home import open_dir, open_private, prepare_home


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_new_home_is_created_private(tmp_path: Path) -> None:
    home = tmp_path / "a" / "home"
    assert prepare_home(home, shared=False) == []
    assert mode(home) == 0o700
    for directory in ("logs", "logs/attempts", "run"):
        assert mode(home / directory) == 0o700
    assert mode(home / "asynctask.db") == 0o600  # SQLite gives its WAL and SHM this mode
    assert (home / "asynctask.db").stat().st_size == 0  # an empty database to SQLite


def test_shared_home_is_0711_and_a_private_one_goes_back_to_0700(tmp_path: Path) -> None:
    home = tmp_path / "home"
    prepare_home(home, shared=True)
    assert mode(home) == 0o711
    assert mode(home / "logs") == 0o700
    assert prepare_home(home, shared=False) == [f"{home} 0o711 -> 0o700"]
    assert mode(home) == 0o700


def test_looser_modes_are_tightened_and_reported(tmp_path: Path) -> None:
    home = tmp_path / "home"
    prepare_home(home, shared=False)
    (home / "asynctask.db").chmod(0o644)
    (home / "logs" / "workers.log").write_bytes(b"old\n")
    (home / "logs" / "workers.log").chmod(0o644)
    (home / "logs" / "attempts" / "1.1.log").write_bytes(b"out\n")
    (home / "logs" / "attempts" / "1.1.log").chmod(0o640)
    (home / "logs" / "attempts").chmod(0o755)
    home.chmod(0o755)
    tightened = prepare_home(home, shared=False)
    assert sorted(tightened) == sorted(
        [
            f"{home} 0o755 -> 0o700",
            f"{home}/asynctask.db 0o644 -> 0o600",
            f"{home}/logs/workers.log 0o644 -> 0o600",
            f"{home}/logs/attempts 0o755 -> 0o700",
            f"{home}/logs/attempts/1.1.log 0o640 -> 0o600",
        ]
    )
    assert mode(home / "logs" / "attempts" / "1.1.log") == 0o600
    assert (home / "logs" / "workers.log").read_bytes() == b"old\n"


def test_attempt_logs_are_not_walked_once_their_directory_is_private(tmp_path: Path) -> None:
    """A million attempt logs must not cost a walk at every start: a file in a 0700
    directory is out of everyone else's reach whatever its own mode."""
    home = tmp_path / "home"
    prepare_home(home, shared=False)
    (home / "logs" / "attempts" / "1.1.log").write_bytes(b"")
    (home / "logs" / "attempts" / "1.1.log").chmod(0o644)
    assert prepare_home(home, shared=False) == []
    assert mode(home / "logs" / "attempts" / "1.1.log") == 0o644


@pytest.mark.parametrize("loose", [0o777, 0o775, 0o757])
@pytest.mark.parametrize("where", ["", "logs", "logs/attempts", "run"])
def test_a_directory_others_can_write_is_refused_not_repaired(
    tmp_path: Path, where: str, loose: int
) -> None:
    home = tmp_path / "home"
    prepare_home(home, shared=False)
    target = home / where
    target.chmod(loose)
    with pytest.raises(UsageError, match="writable by") as refused:
        prepare_home(home, shared=False)
    assert str(target) in refused.value.message
    assert mode(target) == loose


@pytest.mark.parametrize(
    "where", ["logs", "logs/attempts", "run", "asynctask.db", "asynctask.db-wal", "daemon.lock",
              "logs/workers.log", "logs/daemon.log", "run/stack-1.txt"],
)  # fmt: skip
def test_a_symlink_in_the_home_is_refused(tmp_path: Path, where: str) -> None:
    home = tmp_path / "home"
    prepare_home(home, shared=False)
    target = tmp_path / "elsewhere"
    target.mkdir()
    path = home / where
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.symlink_to(target)
    with pytest.raises(UsageError, match="symlink") as refused:
        prepare_home(home, shared=False)
    assert str(path) in refused.value.message
    assert list(target.iterdir()) == []


def test_a_symlinked_home_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "home"
    link.symlink_to(real)
    with pytest.raises(UsageError, match="symlink"):
        prepare_home(link, shared=False)
    assert list(real.iterdir()) == []


def test_a_home_owned_by_another_uid_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory away")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, 65534, 65534)
    with pytest.raises(UsageError, match="owned by uid 65534") as refused:
        prepare_home(home, shared=False)
    assert f"chown {os.geteuid()} {home}" in refused.value.message
    assert list(home.iterdir()) == []


def test_open_private_creates_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        fd = open_private(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    finally:
        os.umask(old)
    os.close(fd)
    assert mode(tmp_path / "f") == 0o600


def test_open_private_tightens_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"kept")
    (tmp_path / "f").chmod(0o666)
    os.close(open_private(tmp_path / "f", os.O_WRONLY | os.O_APPEND))
    assert mode(tmp_path / "f") == 0o600
    assert (tmp_path / "f").read_bytes() == b"kept"


def test_open_private_never_follows_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"mine")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(OSError, match="Too many levels of symbolic links") as refused:
        open_private(tmp_path / "link", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    assert refused.value.errno == errno.ELOOP
    assert victim.read_bytes() == b"mine"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "created-through-it")
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        open_private(dangling, os.O_WRONLY | os.O_CREAT)
    assert not (tmp_path / "created-through-it").exists()


def test_open_private_refuses_a_fifo_and_a_hard_link(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError, match="not a regular file"):  # and did not block
        open_private(tmp_path / "fifo", os.O_RDONLY)
    (tmp_path / "file").write_bytes(b"")
    os.link(tmp_path / "file", tmp_path / "hard")
    with pytest.raises(OSError, match="one link"):
        open_private(tmp_path / "hard", os.O_WRONLY | os.O_APPEND)


def test_open_dir_under_the_home_follows_no_component(tmp_path: Path) -> None:
    home = tmp_path / "home"
    prepare_home(home, shared=False)
    fd = open_dir(home / "logs" / "attempts", under=home)
    os.close(fd)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "attempts").mkdir(parents=True)
    shutil.rmtree(home / "logs")
    (home / "logs").symlink_to(elsewhere)  # a directory above the last one
    os.close(open_dir(home / "logs" / "attempts"))  # O_NOFOLLOW alone covers the last only
    with pytest.raises(OSError, match="Not a directory: 'logs'"):  # O_DIRECTORY|O_NOFOLLOW
        open_dir(home / "logs" / "attempts", under=home)


@pytest.mark.parametrize("loose", [0o666, 0o620])
def test_a_config_others_can_write_is_refused(tmp_path: Path, loose: int) -> None:
    home = tmp_path / "home"
    prepare_home(home, shared=False)
    (home / "asynctask.toml").write_text("[workers]\npaths = []\n")
    (home / "asynctask.toml").chmod(loose)
    with pytest.raises(UsageError, match="chmod go-w") as refused:
        prepare_home(home, shared=False)
    assert str(home / "asynctask.toml") in refused.value.message
    (home / "asynctask.toml").chmod(0o644)  # readable by others is the operator's choice
    assert prepare_home(home, shared=False) == []
