"""A task's working directory is the daemon's, seen through the sandbox's mounts.

The sandbox bind-mounts ``/tmp`` onto itself (to clear the read-only flag there) and hides the
home under a tmpfs. A process's working directory is not re-resolved by a mount, so the worker
used to keep the directory as it was below them: in a daemon started from a directory under
``/tmp``, a relative write failed with EROFS where the same absolute path worked, and in a
daemon started from its home, the hidden home stayed readable by relative paths.
"""

from __future__ import annotations

from pathlib import Path

from asynctask.model import TaskState

MODULE = """
import os


def write_here(name):
    with open(name, "w") as out:
        out.write("written")
    return os.getcwd()


def look_here():
    return [os.getcwd(), sorted(os.listdir("."))]
"""


def test_a_relative_write_lands_in_the_daemons_working_directory_under_tmp(
    make_daemon, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "cwdtasks.py").write_text(MODULE)
    daemon = make_daemon(root=work).start()
    done = daemon.client().submit("cwdtasks:write_here", "out.txt", retries=0).wait(timeout=30)
    assert done.state is TaskState.SUCCEEDED, done.error
    assert done.result == str(work)
    assert (work / "out.txt").read_text() == "written"


def test_a_daemon_started_in_its_home_does_not_show_the_home_to_tasks(
    make_daemon, tmp_path: Path
) -> None:
    home, code = tmp_path / "home", tmp_path / "code"
    home.mkdir(mode=0o700)
    code.mkdir()
    (code / "cwdtasks.py").write_text(MODULE)
    daemon = make_daemon(f'[workers]\npaths = ["{code}"]\n', home=home, root=home).start()
    assert (home / "asynctask.db").exists()
    done = daemon.client().submit("cwdtasks:look_here", retries=0).wait(timeout=30)
    assert done.state is TaskState.SUCCEEDED, done.error
    cwd, listing = done.result
    assert "asynctask.db" not in listing
    assert cwd == "/"  # its directory is hidden: the worker starts in / instead
