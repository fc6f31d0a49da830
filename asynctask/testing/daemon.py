"""A real daemon in a temporary home, for tests: ``with run_daemon() as daemon: ...``.

Why a real one: what a user's test should catch - an argument that does not encode, a task
module the workers cannot import, a retry that changes the outcome - only shows up in the real
thing (eager mode, ``asynctask.testing.eager``, checks less and runs faster). So this starts
``python -m asynctask daemon`` as a subprocess, exactly as an operator would, in a fresh home:

* **Start.** The home is a new 0700 directory (``tempfile.mkdtemp``, short enough for a Unix
  socket path) unless one is given; ``config`` is written to ``<home>/asynctask.toml``. The
  daemon runs in ``cwd`` (default: the current directory) with ``cwd`` and ``paths`` first on
  ``PYTHONPATH``, which reaches the workers (``executor/workerenv.py``): that is how the
  workers import the test's task modules.
* **Ready.** ``ping`` is polled until this process's daemon answers and accepts tasks, within
  ``start_timeout``. A daemon that exits, or never answers, raises ``DaemonProcessError`` with
  the end of its log, so a bad config or an unimportable path reads from the failure alone.
* **Stop.** SIGTERM (the daemon drains its running attempts, ``[daemon] drain``), then a wait
  of at most ``stop_timeout``; past it, SIGKILL and ``DaemonProcessError`` with the log's end.
  A temporary home is removed afterwards.

Nothing here imports pytest: ``asynctask.testing.pytest_plugin`` builds its fixture on this,
and a script, a benchmark or another test runner can use it as it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from asynctask.client import AsyncClient, Client
from asynctask.errors import DaemonUnavailable
from asynctask.paths import CONFIG_NAME, SOCKET_NAME

#: The daemon's stdout and stderr, in its home.
LOG_NAME: Final = "daemon-output.log"
#: How much of the log an error shows.
TAIL_CHARS: Final = 6000
_POLL: Final = 0.02


class DaemonProcessError(RuntimeError):
    """The test daemon did not start, or did not stop, in time. Raised by ``run_daemon`` and
    ``DaemonProcess``; the message ends with the daemon's log, which says why."""


class DaemonProcess:
    """One ``asynctask daemon`` subprocess and its home; ``start`` it, then ``stop`` it (or use
    ``run_daemon``, which does both).

    ``env`` holds ``ASYNCTASK_HOME`` and ``ASYNCTASK_SOCKET`` for this daemon: give it to a
    subprocess (``{**os.environ, **daemon.env}``) and its ``asynctask`` commands and
    ``asynctask.Client()`` reach this daemon.
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        config: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        paths: Sequence[str | os.PathLike[str]] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = Path(home).absolute()
        self.socket = self.home / SOCKET_NAME
        self.log = self.home / LOG_NAME
        self.cwd = Path(cwd if cwd is not None else os.getcwd()).absolute()
        self.config = config
        self._paths = [str(Path(path).absolute()) for path in paths]
        self._extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "not started" if self.proc is None else f"pid {self.proc.pid}"
        if self.proc is not None and self.proc.poll() is not None:
            state += f", exited {self.proc.returncode}"
        return f"<DaemonProcess {self.home} {state}>"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise DaemonProcessError("the daemon has not been started")
        return self.proc.pid

    @property
    def env(self) -> dict[str, str]:
        return {"ASYNCTASK_HOME": str(self.home), "ASYNCTASK_SOCKET": str(self.socket)}

    def client(self, tenant: str = "default") -> Client:
        """A blocking client of this daemon (close it, or use it in ``with``)."""
        return Client(self.socket, tenant=tenant)

    def async_client(self, tenant: str = "default") -> AsyncClient:
        """An asyncio client of this daemon (``async with daemon.async_client() as c:``)."""
        return AsyncClient(self.socket, tenant=tenant)

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        """Start the daemon and return once it answers ``ping`` and accepts tasks."""
        if self.proc is not None:
            raise DaemonProcessError(f"{self!r} was started already")
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.config is not None:
            (self.home / CONFIG_NAME).write_text(self.config)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "asynctask", "daemon", "--home", str(self.home)],
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._daemon_env(),
            )
        self._wait_ready(timeout)
        return self

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit status once the daemon has exited. It drains running
        attempts first, so ``timeout`` should exceed ``[daemon] drain`` (30 s by default) when
        a test may leave one running; past ``timeout`` it is killed and this raises."""
        if self.proc is None:
            return 0
        died = self.proc.poll()
        if died is not None and died != 0:
            # Nothing a test sends may take the daemon down: say so rather than pass quietly.
            raise DaemonProcessError(
                f"the daemon (pid {self.proc.pid}) died during the test with status {died}\n"
                f"{self.log_tail()}"
            )
        if died is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stacks = thread_stacks(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
            raise DaemonProcessError(
                f"the daemon (pid {self.proc.pid}) did not stop within {timeout:g}s of SIGTERM "
                f"and was killed\n{self.log_tail()}\n--- its threads ---\n{stacks}"
            ) from None

    def log_tail(self, chars: int = TAIL_CHARS) -> str:
        """The end of the daemon's output (its log lines), for an error message."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"--- no daemon log: {exc} ---"
        cut = text[-chars:]
        return f"--- the end of {self.log} ---\n{cut}"

    def _daemon_env(self) -> dict[str, str]:
        env = {**os.environ, **self._extra_env, **self.env}
        # The daemon's PYTHONPATH reaches its workers: the test's own modules import there.
        entries = [str(self.cwd), *self._paths]
        if env.get("PYTHONPATH"):
            entries.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(entries)
        return env

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        # Not ``with Client(...)``: entering connects, and the socket may not exist yet.
        with contextlib.closing(Client(self.socket, connect_timeout=0.5)) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise DaemonProcessError(
                        f"the daemon exited at start-up with status {self.proc.returncode}\n"
                        f"{self.log_tail()}"
                    )
                info = _ping(client)
                # Another daemon may hold the socket path for a moment: ours is the one asked.
                if info is not None and info.get("pid") == self.proc.pid and info["accepting"]:
                    return
                time.sleep(_POLL)
        self.proc.kill()
        self.proc.wait()
        raise DaemonProcessError(
            f"the daemon did not answer within {timeout:g}s and was killed\n{self.log_tail()}"
        )


def thread_stacks(pid: int) -> str:
    """The Python stacks of a hung daemon's threads, when py-spy is installed (beside this
    interpreter or on ``PATH``): a rare hang can then be read from the failure alone."""
    beside = Path(sys.executable).with_name("py-spy")
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        return "(py-spy is not installed)"
    try:
        done = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(py-spy failed: {exc})"
    return (done.stdout + done.stderr).decode(errors="replace")


def _ping(client: Client) -> dict[str, Any] | None:
    try:
        return client.ping()
    except DaemonUnavailable:
        return None


@contextlib.contextmanager
def run_daemon(
    home: str | os.PathLike[str] | None = None,
    *,
    config: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    paths: Sequence[str | os.PathLike[str]] = (),
    env: Mapping[str, str] | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 60.0,
) -> Iterator[DaemonProcess]:
    """A started daemon for the ``with`` block, stopped (and its temporary home removed) after.

    ``home``: where its database, socket and logs go (default: a new temporary directory,
    removed afterwards). ``config``: the text of its ``asynctask.toml``. ``cwd`` and ``paths``:
    where its workers import task modules from (default: the current directory). ``env``:
    more environment variables for the daemon (its workers get only what ``[workers]
    env_pass`` names, see ``config/asynctask.toml``).
    """
    temporary = home is None
    where = Path(tempfile.mkdtemp(prefix="asynctask-")) if home is None else Path(home)
    daemon = DaemonProcess(where, config=config, cwd=cwd, paths=paths, env=env)
    try:
        daemon.start(start_timeout)  # on failure it has killed what it started
        try:
            yield daemon
        finally:
            daemon.stop(stop_timeout)
    finally:
        if temporary:
            shutil.rmtree(where, ignore_errors=True)
