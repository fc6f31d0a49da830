"""``Spawner``: worker processes started, forked from the fork server or as interpreters.

A fork from the fork server (``forkserver.py``, ``zygote.py``) costs a few ms; an interpreter
start tens of ms. A pool without a usable fork server still works, only slower, so every fork
server failure falls back to an interpreter start and a new fork server is tried at most once
per ``_FORK_SERVER_RETRY`` seconds.

Spawning runs under one lock: a child's end of its socketpair must not be open in the daemon
while another child is forked (it would inherit it), and the orphan reaper (``reaper.py``) spares
only children whose pids it knows, which is not the case while one is being spawned.

A new worker is confined (its cgroup) before it is ready for work, and must say ``ready`` within
``START_TIMEOUT`` seconds, or it is killed and counts as failed to start.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from asynctask.executor.capture import LOG_LEVEL_ENV
from asynctask.executor.cgroups import worker_group_name
from asynctask.executor.childstart import (
    LIMITS_ENV,
    PARENT_PID_ENV,
    PATHS_ENV,
    SANDBOX_ENV,
    STACK_DIR_ENV,
)
from asynctask.executor.forkserver import ForkServer, ForkServerError
from asynctask.executor.intake import ChannelProtocol, ProcessProtocol
from asynctask.executor.output import WorkerOutput
from asynctask.executor.reaper import OrphanReaper
from asynctask.executor.workerenv import home_of, minimal_environment
from asynctask.executor.workers import (
    PoolConfig,
    Roster,
    State,
    WorkerRecord,
    cancel_timer,
    log,
    signal_group,
    state_of,
)

if TYPE_CHECKING:
    from asynctask.executor.intake import Intake
    from asynctask.executor.slotbook import SlotBook

#: How long a new worker may take to send ``ready`` before it counts as failed to start.
START_TIMEOUT: Final = 15.0
_FORK_SERVER_RETRY: Final = 5.0
#: Where the ``asynctask`` package lives: workers must import the same code as the daemon,
#: even when the daemon runs from a source tree and ``cwd`` is the user's project.
_PACKAGE_ROOT: Final = str(Path(__file__).resolve().parents[2])


class Spawner:
    """Starts worker processes and owns what starting them needs: the fork server, the worker
    environment, the output pipes, the orphan reaper and the spawn-to-ready figures."""

    def __init__(self, roster: Roster, book: SlotBook) -> None:
        config = roster.config
        self._roster = roster
        self._book = book
        self._config = config
        self._workers = roster.workers
        self._intake: Intake  # wire()
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()  # spawns and fork server starts under way
        self.env = worker_env(config)
        self.orphans = OrphanReaper(self.worker_pids) if config.reap_orphans else None
        output = config.output_path
        self.output = None if output is None else WorkerOutput(output, config.max_output)
        self.forkserver: ForkServer | None = None
        self.fork_server_retry_at = 0.0
        self.started_count = 0  # workers that became ready, ever
        self.ready_seconds: deque[float] = deque(maxlen=4096)  # spawn to ready, newest
        self.stats_cache: dict[str, float] | None = None  # spawn_stats() until the next start

    def wire(self, intake: Intake) -> None:
        """The part its workers' channels and exits report to, which calls it too."""
        self._intake = intake

    def record_ready(self, worker: WorkerRecord) -> None:
        assert self._roster.loop is not None
        self.started_count += 1
        self.ready_seconds.append(self._roster.loop.time() - worker.spawned_at)
        self.stats_cache = None

    def spawn_stats(self) -> dict[str, float]:
        """Workers started so far and their spawn-to-ready time (ms, over the newest 4,096):
        the price of moving a slot between tenants (``ping``, ``benchmarks/bench_tenants.py``)."""
        # ``ping`` needs no authorization and may come often: sort only after a new start.
        if self.stats_cache is None:
            times = sorted(self.ready_seconds)
            stats: dict[str, float] = {"started": self.started_count}
            if times:
                stats["ready_p50_ms"] = round(times[len(times) // 2] * 1000, 2)
                stats["ready_p99_ms"] = round(
                    times[min(len(times) - 1, len(times) * 99 // 100)] * 1000, 2
                )
            self.stats_cache = stats
        return dict(self.stats_cache)

    async def start_fork_server(self) -> None:
        """Without a fork server every worker is an interpreter start: slower, never wrong."""
        config = self._config
        server = ForkServer()
        # Under the spawn lock: the orphan reaper spares only children whose pids it knows.
        async with self.lock:
            output = None
            if self.output is not None:
                output = await self.output.pipe(lambda: server.pid)
            try:
                await server.start(config.python, self.env, config.cwd, output)
            except ForkServerError as exc:
                log.warning("workers start as new interpreters: %s", exc)
                return
            finally:
                if output is not None:
                    os.close(output)
            if self._roster.closing:
                await server.close()
                return
            old, self.forkserver = self.forkserver, server
            if old is not None:
                await old.close()

    def restart_fork_server(self) -> None:
        """The fork server died (its workers with it): start another in the background, at
        most once per ``_FORK_SERVER_RETRY`` seconds; workers start as interpreters meanwhile."""
        loop = self._roster.loop
        if loop is None or self._roster.closing or loop.time() < self.fork_server_retry_at:
            return
        self.fork_server_retry_at = loop.time() + _FORK_SERVER_RETRY
        log.warning("the fork server is gone; starting another")
        task = loop.create_task(self.start_fork_server())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def new_worker(self, loop: asyncio.AbstractEventLoop) -> WorkerRecord:
        """A STARTING record in the shard with the fewest workers counting towards ``size``.

        The shard is chosen now, from the records that exist now (not when the process is up),
        so a batch of records made in a row - ``start()``, a ``Scaler.refill`` - spreads evenly.
        """
        sizes = [0] * len(self._book.stacks)
        for other in self._workers:  # O(workers), once per process start: noise beside a fork
            if other.accepting or (other.state is State.STARTING and not other.dedicated):
                sizes[other.shard] += 1
        worker = WorkerRecord(loop.create_future(), sizes.index(min(sizes)), self._config.limits)
        self._workers.add(worker)
        return worker

    async def spawn(self, worker: WorkerRecord) -> None:
        """Start ``worker``'s process; raises ``OSError`` if it cannot even be spawned.

        The channel is connected before the process exists, so no frame or EOF can arrive
        before the pool is listening. The lock keeps one child's socket end from being open
        in the daemon while another child is forked.
        """
        loop = asyncio.get_running_loop()
        async with self.lock:
            if worker.state is not State.STARTING:  # stop() came while it waited for the lock
                self.discard_unspawned(worker)
                return
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            output: int | None = None
            try:
                worker.channel, _ = await loop.connect_accepted_socket(
                    lambda: ChannelProtocol(self._intake, worker), ours
                )
                if self.output is not None:  # a pipe of its own, read by the daemon
                    output = await self.output.pipe(lambda: worker.pid)
                fd = theirs.fileno()
                worker.ready_timer = loop.call_later(START_TIMEOUT, self.on_ready_timeout, worker)
                worker.spawned_at = loop.time()
                await self.start_process(worker, fd, output)
            except BaseException:
                if worker.channel is None:
                    ours.close()  # otherwise the channel owns it and _release closes it
                self.discard_unspawned(worker)
                raise
            finally:
                theirs.close()
                if output is not None:
                    os.close(output)
        if state_of(worker) is State.DEAD:  # a forked worker that exited at once
            return
        self.confine(worker)
        if state_of(worker) is State.KILLING:  # stop() came while it was spawning
            signal_group(worker, signal.SIGKILL)

    async def start_process(self, worker: WorkerRecord, fd: int, output: int | None) -> None:
        """Fork the worker from the fork server (a few ms), else start an interpreter for it
        (tens of ms); either way ``worker.pid`` is set and its exit reaches ``Intake.on_exit``."""
        config = self._config
        args = [str(config.concurrency)] if config.concurrency > 1 else []
        server = self.forkserver
        if server is not None and not server.alive:
            self.restart_fork_server()
        if server is not None and server.alive:
            try:
                worker.pid = await server.fork(
                    self.env_for(worker),
                    config.cwd or os.getcwd(),
                    args,
                    [fd] if output is None else [fd, output],
                    lambda pid, code: self.on_forked_exit(worker, pid, code),
                )
                return
            except ForkServerError as exc:
                log.warning("starting a worker without the fork server: %s", exc)
        process, _ = await asyncio.get_running_loop().subprocess_exec(
            lambda: ProcessProtocol(self._intake, worker),
            config.python,
            "-m",
            "asynctask.executor.child",
            str(fd),
            *args,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            pass_fds=(fd,),
            start_new_session=True,
            cwd=config.cwd,
            env=self.env_for(worker),
        )
        if worker.process is None:  # normally set already, by _ProcessProtocol.connection_made
            worker.process = process
            worker.pid = process.get_pid()

    def on_forked_exit(self, worker: WorkerRecord, pid: int, code: int | None) -> None:
        """The fork server reaped ``worker`` (``code`` None: the fork server died, and the
        worker with it)."""
        worker.pid = worker.pid or pid
        worker.returncode = code
        self._intake.on_exit(worker)

    def env_for(self, worker: WorkerRecord) -> dict[str, str]:
        sandbox = self._config.sandbox
        env = self.env
        if sandbox is not None:
            env = {**env, SANDBOX_ENV: sandbox(getattr(worker, "tenant", None))}
        if worker.limits.is_empty:
            return env
        wire: dict[str, Any] = dict(worker.limits.to_wire())
        support = self._config.cgroups
        if support is not None and support.memory and worker.limits.memory is not None:
            wire["address_space"] = False  # the memory cgroup holds it, counting real memory
        env = {**env, LIMITS_ENV: json.dumps(wire)}
        if worker.limits.user != self._config.limits.user and "HOME" not in self._config.env:
            env["HOME"] = home_of(worker.limits.user)
        return env

    def worker_pids(self) -> set[int] | None:
        """The pids of the workers, the children ``orphans`` spares; ``None`` while one is being
        spawned: its pid is not known yet."""
        if self.lock.locked():
            return None
        pids = {worker.pid for worker in self._workers if worker.pid > 0}
        if self.forkserver is not None and self.forkserver.running:
            pids.add(self.forkserver.pid)
        return pids

    def confine(self, worker: WorkerRecord) -> None:
        """Put a new worker in a cgroup of its own with its memory and process limits, before
        it is ready for work; without usable cgroups its rlimits alone hold it."""
        support = self._config.cgroups
        if support is None or worker.limits.is_empty or worker.pid <= 0:
            return
        try:
            name = worker_group_name(os.getpid(), worker.pid)
            worker.group = support.create(name, worker.limits)
            if worker.group is not None:
                worker.group.add(worker.pid)
        except OSError as exc:
            log.warning("worker %d runs on rlimits alone: its cgroup failed: %s", worker.pid, exc)
            if worker.group is not None:
                worker.group.remove()
                worker.group = None

    def confine_task_process(self, worker: WorkerRecord) -> bool:
        """A sandboxed worker forks the process that runs tasks, maybe before ``confine``
        moved its parent into the group: move it too, before it gets work. ``False``: it could
        not be, and the worker is killed rather than run without its limits."""
        if worker.group is None:
            return True
        try:
            worker.group.add(worker.task_pid)
        except OSError as exc:
            worker.death_note = f"worker {worker.pid} could not be put in its cgroup: {exc}"
            signal_group(worker, signal.SIGKILL)
            return False
        return True

    def discard_unspawned(self, worker: WorkerRecord) -> None:
        """Forget a worker whose process never started."""
        worker.state = State.DEAD
        self.release(worker)
        if not worker.exited.done():
            worker.exited.set_result(None)

    def on_ready_timeout(self, worker: WorkerRecord) -> None:
        worker.ready_timer = None
        if worker.state is State.STARTING:
            hint = self._roster.hint()
            worker.death_note = (
                f"worker {worker.pid} did not send ready within {START_TIMEOUT:g}s{hint}"
            )
            signal_group(worker, signal.SIGKILL)

    def release(self, worker: WorkerRecord) -> None:
        """Drop every timer, transport and list entry of a worker that is gone."""
        for timer in (*worker.timers.values(), worker.kill_timer, worker.ready_timer):
            cancel_timer(timer)
        worker.timers.clear()
        worker.kill_timer = worker.ready_timer = None
        self._book.stop_accepting(worker)
        self._workers.discard(worker)
        if worker.channel is not None:
            worker.channel.close()
        if worker.process is not None:
            worker.process.close()


def worker_env(config: PoolConfig) -> dict[str, str]:
    """A minimal environment (``workerenv.py``), never this process's whole one, plus the
    pool's own variables."""
    env = minimal_environment(
        os.environ,
        user=config.limits.user,
        socket_path=config.socket_path,
        passed=config.env_pass,
        extra=config.env,
    )
    env[PARENT_PID_ENV] = str(os.getpid())
    env[PATHS_ENV] = os.pathsep.join(config.paths)
    env[LOG_LEVEL_ENV] = config.log_level
    if config.stack_dir is not None:
        env[STACK_DIR_ENV] = config.stack_dir
    python_path = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    if _PACKAGE_ROOT not in python_path:
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT, *python_path])
    return env
