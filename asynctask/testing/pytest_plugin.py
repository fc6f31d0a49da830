"""The pytest plugin: an ``asynctask_daemon`` fixture, a real daemon in a temporary home.

Installed with the package (the ``pytest11`` entry point in ``pyproject.toml``), so a user's
tests need no ``conftest.py`` line::

    def test_resize(asynctask_daemon):
        handle = asynctask.Client().submit("myapp.tasks:resize", "a.png", 200)
        assert handle.result(timeout=10) == ...

For the test's duration ``ASYNCTASK_HOME`` and ``ASYNCTASK_SOCKET`` point at the daemon, so
``asynctask.Client()``, ``f.submit(...)`` and the ``asynctask`` command (in a subprocess) all
reach it. Its workers import the test's modules: the daemon runs in pytest's root directory
and its ``PYTHONPATH`` starts with the directories pytest put on ``sys.path`` for the tests
under that root (where ``prepend`` or ``importlib`` import mode found their packages), so the
function a test submits by ``module:function`` is the one in the test's tree.

A test that wants its own config overrides ``asynctask_daemon_config`` (the text of
``asynctask.toml``), as pytest-django's users override its settings fixtures. One daemon per
test by default (about a second to start); for one per module or session, call
``asynctask.testing.daemon.run_daemon`` from a wider fixture of your own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asynctask.testing.daemon import DaemonProcess, run_daemon


def _import_paths(root: Path, test_dir: Path) -> list[Path]:
    """The directories on ``sys.path`` inside ``root`` (pytest's rootdir), plus the test's own
    directory: where the test session imports the user's modules from."""
    found: list[Path] = [test_dir]
    for entry in sys.path:
        if not entry:
            continue
        path = Path(entry).absolute()
        if (path == root or root in path.parents) and path not in found and path.is_dir():
            found.append(path)
    return found


@pytest.fixture
def asynctask_daemon_config() -> str | None:
    """The text of the test daemon's ``asynctask.toml``; ``None``: the documented defaults.
    Override this fixture (in a ``conftest.py`` or a test module) to configure the daemon."""
    return None


@pytest.fixture
def asynctask_daemon(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    asynctask_daemon_config: str | None,
) -> Iterator[DaemonProcess]:
    """A real ``asynctask daemon`` for this test, in a temporary home, stopped afterwards.

    ``ASYNCTASK_HOME`` and ``ASYNCTASK_SOCKET`` are set for the test, so ``asynctask.Client()``
    reaches it; ``asynctask_daemon.client()`` and ``.async_client()`` give clients too. A daemon
    that does not start or stop in time fails the test with the end of its log."""
    root = request.config.rootpath
    with run_daemon(
        config=asynctask_daemon_config,
        cwd=root,
        paths=_import_paths(root, request.path.parent),
    ) as daemon:
        for name, value in daemon.env.items():
            monkeypatch.setenv(name, value)
        yield daemon
