"""The composition root: the one place that reads the clock, feeds the core and performs actions.

Theory of operation. Three event sources drive the daemon: client requests (``server``), attempt
outcomes and free workers (``executor``), and timers. Each of them ends in ``_wake()``, which
schedules one ``step()`` on the next loop iteration - so a burst of outcomes or submits becomes
one decision pass, and the store sees one batch. ``step()`` reads the clock once, asks the
``Scheduler`` what to do with that many free workers, and performs the actions it returns:
write a state change to the store (not awaited: the group-commit writer batches it), hand a task
to a worker, or finish a task (write it, then - once committed - release its waiters and drop it
from memory).

Durability rules:

* A submit is acknowledged only after its insert has committed (``Store.put`` resolves on commit).
* An attempt is marked ``running`` (attempt counted) in the same batch that dispatches it, and the
  mark is written before any outcome of that attempt, because the writer keeps op order.
* A task leaves memory only after its final state has committed; until then a submit of the same
  ID waits on the commit (``_claims``), so de-duplication never sees a gap.
* At start-up every ``scheduled``/``queued``/``running`` row is loaded back; a ``running`` row is
  an interrupted attempt: it counts, and the task is queued again if it has retries left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from asynctask import protocol
from asynctask.config import (
    Config,
)
from asynctask.config.values import is_loopback
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Scheduler
from asynctask.daemon.attemptlogs import AttemptLogs
from asynctask.daemon.backend import Backend, principal_of
from asynctask.daemon.clock import SteadyClock
from asynctask.daemon.cluster import Cluster
from asynctask.daemon.codeoptions import CodeOptions
from asynctask.daemon.control import Control
from asynctask.daemon.cron import CronService
from asynctask.daemon.crontab import CronEntry, CronTable
from asynctask.daemon.engine import Engine
from asynctask.daemon.eventlog import EventLog
from asynctask.daemon.gcpause import GcPauses
from asynctask.daemon.history import History
from asynctask.daemon.intake import Intake
from asynctask.daemon.interning import Interner
from asynctask.daemon.notify import STOP_GRACE, Notifier
from asynctask.daemon.otel import SpanExporter, make_span_exporter
from asynctask.daemon.queries import Queries
from asynctask.daemon.readout import Readout, url_host
from asynctask.daemon.reconfig import Reconfig
from asynctask.daemon.recovery import Recovery
from asynctask.daemon.sharedlogs import SharedLogs
from asynctask.daemon.startup import (
    claim_home,
    log_started,
    log_store_health,
    open_daemon_store,
    open_sandbox,
    pool_config,
    write_pid,
)
from asynctask.daemon.storeguard import StoreGuard
from asynctask.daemon.views import (
    update_of,
)
from asynctask.errors import (
    EXIT_STORAGE_LOST,
    UsageError,
)
from asynctask.executor.pool import WorkerPool
from asynctask.isolation import Isolation
from asynctask.isolation import choose as choose_isolation
from asynctask.observe.metrics import (
    Metrics,
)
from asynctask.paths import LOG_DIR, PID_NAME
from asynctask.server.auth import AuthPolicy, Principal
from asynctask.server.connection import Peer
from asynctask.server.http import TOKEN_NAME, MetricsHttp
from asynctask.server.listener import Listener, bind_socket, claim_socket_path
from asynctask.server.ops import Ops
from asynctask.store import (
    AssignUid,
    PutCode,
    Quarantine,
    StoreError,
    TaskStore,
)
from asynctask.store.postgres import PostgresStore
from asynctask.store.starts import StartJournal
from asynctask.web.console import WEB_SECRET, WebConsole

log = logging.getLogger("asynctask.daemon")


class Daemon:
    """Built and started by ``await Daemon.open(config, home, socket_path)``, which claims the
    home and opens the store first, so that no part the services use is ever missing."""

    def __init__(self, config: Config, home: Path, socket_path: Path, store: TaskStore) -> None:
        self.config = config
        self.home = home
        self.socket_path = socket_path
        workers = config.workers.min_workers
        sharding = config.scheduler.sharding
        # Every shard needs a worker: a config built in code may not have been checked for it.
        sharding = replace(sharding, shards=max(1, min(sharding.shards, workers)))
        self.scheduler = Scheduler(
            RetryPolicy(config.retry.backoff_base, config.retry.backoff_cap),
            random.Random(),
            replace(
                config.scheduler,
                # attempts at once, not processes: the pool may grow to max_workers
                capacity=max(workers, config.workers.max_workers) * config.workers.concurrency,
                sharding=sharding,
            ),
        )
        self.sharded = sharding.sharded
        self.attempt_logs = AttemptLogs(
            home / LOG_DIR / "attempts", config.workers.max_log_bytes, home
        )
        #: The attempt logs every daemon reads: local files, and on PostgreSQL (``[store]
        #: url``) copies of ended attempts' (``_start_parts`` connects them).
        self.shared_logs = SharedLogs(self.attempt_logs, None)
        self.interner = Interner()  # equal names, options and labels of tasks share one object
        self._drain = config.daemon.drain  # a stop request may set another
        self.loop = asyncio.get_running_loop()
        self.clock = SteadyClock()
        self.store = store  # SQLite or PostgreSQL (``[store] url``): only the protocol is used
        #: Daemons sharing a PostgreSQL store: the partitions this one serves (``cluster.py``).
        self.cluster: Cluster | None = None
        self.guard = StoreGuard(store, update_of, self.clock)
        self.starts: StartJournal | None = None  # opened once recovery has read it
        #: The error that made the store stop taking writes; the daemon then exits with
        #: ``EXIT_STORAGE_LOST`` so that a supervisor starts it again from what is on disk.
        self.storage_lost: StoreError | None = None
        self.pool: WorkerPool | None = None
        self.listener: Listener | None = None
        self.isolation: Isolation | None = None
        self._bound_socket: socket.socket | None = None
        self.accepting = False
        self.crons = CronTable()
        self._background: set[asyncio.Task[Any]] = set()
        self.missed_slots: list[tuple[CronEntry, float]] = []  # fired once serving
        self.stop_requested = asyncio.Event()
        self.started_at = self.clock()
        self.events = EventLog(  # log lines about limit kills, AIMD, refusals, confinement
            self.scheduler,
            self.clock,
            lambda delay, then: asyncio.get_running_loop().call_later(max(0.0, delay), then),
        )
        self.metrics = Metrics()
        #: What each tenant's functions declare in code, as their workers report it.
        self.code = CodeOptions(lambda: self.config.run_policy, self._store_code_options)
        self.engine = Engine(self)
        self.gc_pauses = GcPauses()
        self.reconfig = Reconfig(self)
        self.readout = Readout(self)
        self.control = Control(self)
        self.intake = Intake(self)
        self.cron = CronService(self)
        self.history = History(self)
        self.recovery = Recovery(self)
        self.queries = Queries(self)
        self.metrics_http: MetricsHttp | None = None
        self.web: WebConsole | None = None  # [web] http: the console (web/console.py)
        self.spans: SpanExporter | None = None
        self._lock_file: IO[str] | None = None
        self.backend = Backend(self)
        #: ``sd_notify`` to systemd under ``Type=notify`` (``notify.py``); inert otherwise.
        self.notifier = Notifier.from_environment()

    def __repr__(self) -> str:
        return (
            f"<Daemon live={len(self.engine.live)} running={len(self.engine.running)} "
            f"{self.scheduler!r} {self.pool!r}>"
        )

    # -- life cycle -----------------------------------------------------------------------------

    @classmethod
    async def open(cls, config: Config, home: Path, socket_path: Path) -> Daemon:
        """Claim the home, open the store, start every part and serve; on any failure, undo
        what was started and raise."""
        began = time.perf_counter()
        lock_file = claim_home(
            home, shared=bool(config.auth.users), sqlite=config.store.url is None
        )
        try:
            claim_socket_path(socket_path)
            store = await open_daemon_store(config, home)
        except BaseException:
            lock_file.close()
            raise
        daemon = cls(config, home, socket_path, store)
        daemon._lock_file = lock_file
        try:
            await daemon._start_parts(began)
        except BaseException:
            await daemon.shutdown()
            raise
        return daemon

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then drain and exit."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload, "SIGHUP")
        try:
            await self.stop_requested.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.shutdown()  # a SIGHUP while it drains is logged, never fatal
            loop.remove_signal_handler(signal.SIGHUP)

    def request_stop(self, drain: float | None = None) -> None:
        """Begin shutdown: running attempts may finish for ``drain`` seconds (default: the
        config's ``[daemon] drain``); what does not is queued again for the next start."""
        if drain is not None:
            self._drain = drain
        log.info(
            "stop requested: draining for up to %.1fs",
            self._drain,
            extra={"event": "stopping", "drain": self._drain},
        )
        self.notifier.notify(
            STOPPING=1,
            STATUS=f"stopping: draining running attempts for up to {self._drain:g}s",
            EXTEND_TIMEOUT_USEC=int((self._drain + STOP_GRACE) * 1_000_000),
        )
        self.stop_requested.set()

    def stop(self, drain: float | None) -> dict[str, Any]:
        """The ``stop`` request (``asynctask stop [--drain 30s]``): reply first, then stop."""
        self.loop.call_soon(self.request_stop, drain)
        drain = self._drain if drain is None else drain
        return {"stopping": True, "drain": drain, "pid": os.getpid()}

    def reload(self, why: str = "reload") -> dict[str, Any]:
        """SIGHUP and the ``reload`` request: replace the workers so the next attempts import
        task code anew (idle ones now, busy ones once their attempts end on the old code), and
        re-read the config file for its live keys (``_reread_config``). Never raises: a signal
        handler that raised would stop the daemon."""
        stopping = self.stop_requested.is_set()
        replaced = self.pool.reload() if self.pool is not None and not stopping else 0
        log.info(
            "%s: replacing %d worker(s) so task code is imported anew", why, replaced,
            extra={"event": "reload", "workers": replaced},
        )  # fmt: skip
        reply: dict[str, Any] = {"workers": replaced}
        if not stopping:
            reply.update(self.reconfig.reread(why))
        return reply

    def _identify(self, peer: Peer) -> Principal:
        return principal_of(peer, self.pool.worker_tenants() if self.pool is not None else {})

    def _record_uid(self, tenant: str, uid: int) -> None:
        """Keep a tenant's new worker uid (``isolation.py``), so it has the same one after a
        restart."""
        log.info("tenant %s: workers run as uid %d", tenant, uid,
                 extra={"event": "tenant_uid", "tenant": tenant, "uid": uid})  # fmt: skip

        def stored(done: asyncio.Future[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("cannot store the uid of tenant %s: %s", tenant, done.exception())

        self.store.put(AssignUid(tenant, uid)).add_done_callback(stored)

    def _store_code_options(
        self, tenant: str, function: str, options: dict[str, Any] | None
    ) -> None:
        """Keep a function's newest report of its code's options (``codeoptions.py``)."""

        def stored(done: asyncio.Future[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("cannot store the options of %s for tenant %s: %s",
                          function, tenant, done.exception())  # fmt: skip

        blob = None if options is None else protocol.pack(options)
        self.store.put(PutCode(tenant, function, blob)).add_done_callback(stored)

    async def _load_code_options(self) -> None:
        """The reports kept before a restart; one that cannot be read is logged and skipped
        (the next worker that imports the function reports it again)."""
        rows: dict[tuple[str, str], Any] = {}
        for tenant, function, blob in await self.store.load_code_options():
            try:
                rows[(tenant, function)] = protocol.unpack(blob)
            except Exception as exc:  # msgpack raises several unrelated types
                log.error("skipped the stored options of %r for tenant %r: %s",
                          function, tenant, exc, extra={"event": "row_skipped"})  # fmt: skip
        self.code.load(rows)

    async def _start_parts(self, began: float) -> None:
        self.notifier.notify(STATUS="starting: loading the stored tasks")
        self.attempt_logs.open()  # its directory, before any task runs (they could replace it)
        if self.config.store.url is not None:
            self.shared_logs = await SharedLogs.open(self.attempt_logs, self.config.store.url)
            self.background_task(self.shared_logs.sweep())
        self.store.on_fatal(self._storage_lost)
        self.guard.start()
        log_store_health(self.store)
        if isinstance(self.store, PostgresStore):
            self.cluster = await Cluster.open(self, self.store)
        await self._load_code_options()  # before any task is admitted or recovered
        recovered = await self.recovery.load()  # a long backlog: its first part
        self.starts = StartJournal(self.home)
        if not self.engine.loading:
            await self.recovery.empty_start_journal()  # before anything is dispatched
        recovered_at = time.perf_counter()
        workers = self.config.workers
        self.cgroups = open_sandbox(workers.sandbox)
        python = workers.python or sys.executable
        # Bound before the workers start, so that their sandbox can show them the socket.
        self._bound_socket = bind_socket(self.socket_path, shared=bool(self.config.auth.users))
        bad_uids: list[Quarantine] = []
        known_uids = await self.store.load_tenant_uids(skipped=bad_uids)
        for bad in bad_uids:
            log.error("skipped %s", bad, extra={"event": "row_skipped"})
        await self.recovery.set_aside(bad_uids)
        chosen = await asyncio.to_thread(  # two interpreter starts: not on the loop
            choose_isolation,
            python=python,
            cwd=os.getcwd(),
            paths=workers.paths,
            home=str(self.home),
            socket=str(self.socket_path),
            uids=workers.uids,
            multi_user=bool(self.config.auth.users),
            known_uids=known_uids,
            tenant_users=workers.tenant_users,
        )
        self.isolation = chosen.with_record(self._record_uid)
        log.log(
            logging.WARNING if self.isolation.mode == "minimal" else logging.INFO,
            "isolation: %s",
            self.isolation.description,
            extra={"event": "isolation", "mode": self.isolation.mode},
        )
        self.pool = WorkerPool(
            pool_config(
                self.config,
                self.isolation,
                self.cgroups,
                python,
                self.scheduler.settings.sharding.shards,
                self.home,
                self.socket_path,
            ),
            on_outcome=self.engine.on_outcome,
            on_idle=self.engine.wake,
            on_log=self.engine.on_log,
            on_declare=self.engine.on_declare,
        )
        await self.pool.start()
        admins = self.config.auth.admins or (os.getuid(),)
        auth = AuthPolicy(admins, self.config.auth.users)
        ops = Ops(
            self.backend,
            auth,
            self.config.daemon.max_payload,
            policy=self.config.run_policy,
            clock=self.clock,
        )
        self.listener = Listener(
            self.socket_path,
            ops,
            self.config.daemon.max_frame,
            shared=bool(self.config.auth.users),
            identify=self._identify,
            handshake_timeout=self.config.server.handshake_timeout,
            idle_timeout=self.config.server.idle_timeout,
            max_connections_per_user=self.config.server.max_connections_per_user,
        )
        # Observers first, and accepting before the socket listens: a client that connects
        # during any await of start-up must find the daemon taking tasks, not "shutting down".
        await self._start_observers()
        await self._start_web(ops, auth)
        self.accepting = True
        bound, self._bound_socket = self._bound_socket, None
        await self.listener.start(bound)
        self.gc_pauses.install()
        if self.cluster is not None:
            self.cluster.start()
        self.background_task(self.readout.sample_loop())
        self.background_task(self.readout.loop_watch.run())
        history = self.config.daemon
        if history.history_days > 0 or history.history_max > 0:
            self.background_task(self.history.run(history.history_days, history.history_max))
        for entry, slot in self.missed_slots:  # slots that fell due while the daemon was down
            if self.cluster is None:  # else the owner of each entry's partition fires them
                self.cron.fire(entry, slot)
        self.missed_slots.clear()
        write_pid(self.home)
        log_started(self, recovered, recovered_at - began, time.perf_counter() - began)
        if self.engine.loading:  # a long backlog's rest loads while the daemon serves
            self.background_task(self._load_rest())
        # Ready once the socket serves (a long backlog's rest may still load: requests are
        # answered meanwhile, which is what a unit ordered After= this one waits for).
        self.notifier.notify(READY=1, STATUS=self._status_line(recovered))
        self.engine.wake()

    def _status_line(self, recovered: int) -> str:
        """The line ``systemctl status`` shows while the daemon serves."""
        if self.engine.loading:
            return (
                f"serving on {self.socket_path}; loading the stored backlog "
                f"({recovered} tasks loaded so far, nothing dispatched until it is all in)"
            )
        return f"serving on {self.socket_path}"

    async def _load_rest(self) -> None:
        """The rest of a long stored backlog (``Recovery``), then the start journal is
        emptied and dispatch begins. A store that fails meanwhile stops the daemon, as at
        start-up: a backlog half loaded must not be served as if it were all."""
        try:
            loaded = await self.recovery.load_rest()
            await self.recovery.empty_start_journal()  # before anything is dispatched
            self.engine.end_loading(self.clock())
            if not self.stop_requested.is_set():
                self.notifier.notify(
                    STATUS=f"serving on {self.socket_path}; {loaded} stored tasks loaded"
                )
        except StoreError as exc:
            self._storage_lost(StoreError(f"loading the stored backlog failed: {exc}"))
        finally:
            await self.recovery.close()
            if self.engine.loading:  # stopped (or failed) first: requests waiting end
                self.engine.loaded.set()

    async def _start_observers(self) -> None:
        """The /metrics listener and the span exporter, when configured."""
        observe = self.config.observe
        if observe.http is not None:
            token_file = observe.token_file or str(self.home / TOKEN_NAME)
            http = MetricsHttp(*observe.http, self.readout.prometheus, token_file)
            try:
                await http.start()
            except OSError as exc:
                host, port = observe.http
                raise UsageError(f"metrics.http: cannot listen on {host}:{port}: {exc}") from None
            self.metrics_http = http
            log.info(
                "metrics: http://%s:%d/metrics (bearer token in %s)",
                *url_host(http.address),
                token_file,
            )
            if not is_loopback(observe.http[0]):
                log.warning(
                    "metrics: listening on %s, which is not loopback ([metrics] allow_remote): "
                    "scrapes from other machines carry the bearer token in clear text",
                    observe.http[0],
                    extra={"event": "metrics_remote"},
                )
        if observe.opentelemetry != "off":
            self.spans = make_span_exporter(observe.opentelemetry, self.home / LOG_DIR)

    async def _start_web(self, ops: Ops, auth: AuthPolicy) -> None:
        """The web console, when ``[web] http`` is set: the same ``ops`` as the socket."""
        web = self.config.web
        if web.http is None:
            return
        console = WebConsole(
            *web.http,
            ops,
            auth,
            str(self.home / WEB_SECRET),
            web.token_ttl,
            self.clock,
            payload_of=self.queries.payload,
            any_host=web.allow_remote,
        )
        try:
            await console.start()
        except OSError as exc:
            host, port = web.http
            raise UsageError(f"web.http: cannot listen on {host}:{port}: {exc}") from None
        self.web = console
        log.info("web console: %s (log in: asynctask web-token)", console.url,
                 extra={"event": "web_console"})  # fmt: skip

    async def shutdown(self) -> None:
        self.gc_pauses.remove()
        self.accepting = False
        if self.web is not None:
            await self.web.close()
        if self.cluster is not None:
            self.cluster.begin_stop()  # renews what it holds until ``leave``, takes nothing
        if self.metrics_http is not None:
            await self.metrics_http.close()
        if self.spans is not None:
            self.spans.close()
        if self.listener is not None:
            self.listener.stop_accepting()
        self.engine.cancel_timer()
        if self.pool is not None:
            loop = asyncio.get_running_loop()
            unfinished = await self.pool.stop(loop.time() + self._drain)
            self.engine.interrupt(unfinished, "the daemon stopped before the attempt finished")
        background = list(self._background)  # retention passes, cron submits in flight
        for job in background:
            job.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self.shared_logs.close()  # the interrupted attempts' logs are copied too
        with contextlib.suppress(Exception):
            await self.store.flush()
        if self.starts is not None:
            self.starts.close()
        if self.cluster is not None:
            if self.storage_lost is None:
                await self.cluster.leave()
            await self.cluster.close()
        unstored = await self.guard.close()
        if unstored:
            log.warning(
                "%d task state change(s) could not be stored before the stop; the next start "
                "finds those tasks as the store last had them (a started attempt counts as "
                "interrupted and runs again)",
                unstored,
            )
        self.engine.cancel_waiters()
        if self.listener is not None:
            await self.listener.close()
        if self._bound_socket is not None:  # start-up failed before the listener took it
            self._bound_socket.close()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
        await self.store.close()
        with contextlib.suppress(FileNotFoundError):
            (self.home / PID_NAME).unlink()
        if self._lock_file is not None:
            self._lock_file.close()
        self.notifier.close()
        log.info("stopped", extra={"event": "stopped"})

    # -- the step -------------------------------------------------------------------------------

    def _storage_lost(self, error: StoreError) -> None:
        """The store took an I/O error and stopped: stop at once, without a drain (nothing
        more can be stored), and exit non-zero so a supervisor restarts the daemon."""
        if self.storage_lost is not None:
            return
        self.storage_lost = error
        self.notifier.notify(STATUS=f"storage lost, restarting: {error}")
        log.critical(
            "%s. Stopping now: the daemon exits with code %d so that its supervisor starts it "
            "again, which re-opens the database from what is on disk",
            error, EXIT_STORAGE_LOST,
            extra={"event": "storage_lost"},
        )  # fmt: skip
        self.request_stop(drain=0.0)

    def background_task(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.loop.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def run_daemon(config: Config, home: Path, socket_path: Path) -> None:
    """Run a daemon in the foreground on uvloop until it is told to stop. Exits with
    ``EXIT_STORAGE_LOST`` if the store stopped taking writes (see ``Daemon._storage_lost``)."""
    import uvloop

    async def serve() -> Daemon:
        daemon = await Daemon.open(config, home, socket_path)
        await daemon.run()
        return daemon

    daemon = uvloop.run(serve())
    if daemon.storage_lost is not None:
        sys.stderr.write(f"asynctask: stopped after a storage I/O error: {daemon.storage_lost}\n")
        raise SystemExit(EXIT_STORAGE_LOST)
