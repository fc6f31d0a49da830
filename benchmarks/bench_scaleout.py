"""Scaling on one box (issue 16): 1, 2 and 3 daemons on one PostgreSQL database draining
20,000 tasks that each sleep 20 ms, and the database's own CPU per task.

    .venv/bin/python -m benchmarks.bench_scaleout [--daemons 1,2,3] [--tasks 20000] [--reps 3]
        [--tenants 640] [--workers 4] [--concurrency 1] [--affinity 1s]
        [--store-url postgresql://...]

Prints figures and asserts nothing (ARCHITECTURE.md: benchmarks print, tests assert).

Per run (one daemon count, one rep), interleaved so a noisy machine's drift spreads over all
counts:

- **Database.** A fresh schema of one PostgreSQL server: without ``--store-url`` the tests'
  private cluster (``tests/pgcluster.py``: ``initdb`` in a temporary directory, as ``nobody``
  when run as root, a Unix socket only, no TCP, ``fsync=on``, ``synchronous_commit=on``),
  started once and stopped at the end.
- **Daemons.** N real daemon processes (``python -m asynctask daemon``), each with its own home
  and socket and the same ``[store] url`` (default lease and partitions: 10 s, 64); durability
  full, ``[workers] min_workers = max_workers = W`` with ``concurrency = K``, so each daemon
  runs at most C = W x K attempts at once (default 4 x 1 = 4) and its bound is C / 20 ms = 200
  tasks/s: the tasks are I/O-bound (``benchmarks.tasks:work(0.02)``, a sleep) and the slots,
  not the CPU, should be the limit. Why so few: on a 2-vCPU machine a task costs about 3 ms of
  CPU in all (daemon, worker, PostgreSQL; many tenants make workers be replaced for another
  tenant), so 3 daemons x 200/s already wants most of the 2 CPUs. ``--concurrency`` above 1
  with many tenants stalled a daemon on 2026-12-07 ("no idle worker for attempt ..." raised in
  ``Engine.step``), hence one attempt per worker process.
- **Settle.** Before the clock starts, the daemons must agree on the partitions: the harness
  waits until the ``partitions`` table has every partition owned, unexpired, by one of N
  distinct owners at a fair share (floor or ceil of P / N); a database without that table or
  with one daemon only skips the wait. Then one warm-up task (a no-op) per tenant, submitted
  through the daemons in turn, must succeed, so workers exist and each tenant's uid is known.
- **Submit.** The timed tasks go over ``--tenants`` tenants (task i to tenant i mod T), in
  ``submit_many`` batches of 100 (each batch a single tenant), batch j through daemon j mod N,
  from one thread per daemon. Why 640 tenants by default: a daemon runs only the tenants of
  the partitions it holds and does not help another once its own are done, so the busiest
  daemon bounds the drain. The partitions are shared fairly (21/21/22 of 64), but 64 tenants
  hash onto them lumpily: on 2026-12-07 the busiest of 3 daemons had 25 to 28 of the 64
  tenants (of 2, 32 to 36), which caps the speed-up near 64/28 = 2.3x (64/36 = 1.8x); 640
  tenants put 201 to 221 on each of 3.
- **Drain.** Throughput is tasks / (last ``finished_at`` - first submit), both by this
  machine's clock; the harness polls ``count(*)`` of the succeeded timed tasks on one
  connection of its own every 0.25 s.
- **Idle.** Before the submit, ``--idle`` seconds (5) of the settled, idle cluster's CPU
  (the same sums as below, per second): the lease loops' and heartbeats' cost, which a slow
  drain spreads over its tasks.
- **CPU.** utime + stime of every process of the PostgreSQL server (the postmaster and its
  children, plus the children it reaped meanwhile: cutime + cstime), read from /proc before the
  first submit and once all succeeded, minus the harness's own polling backend; likewise each
  daemon's process tree (the daemon and its workers). Divided by the tasks: µs per task.

Medians over reps per daemon count; ``scale`` is the median throughput over the median with one
daemon. ``bound`` is N x C / 20 ms, what the slots allow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from asynctask.client import Client  # noqa: E402
from asynctask.errors import DaemonUnavailable  # noqa: E402
from benchmarks.bench_daemon import stop_daemon  # noqa: E402
from benchmarks.store_w2 import fresh_schema  # noqa: E402

TASK = "benchmarks.tasks:work"
WARM = "benchmarks.tasks:noop"
SLEEP = 0.02
BATCH = 100
TICK = os.sysconf("SC_CLK_TCK")


# --- CPU from /proc ---------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime + stime + cutime + cstime in ticks) of ``pid``, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime fields 14-17
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def _table() -> dict[int, tuple[int, int]]:
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            got = _stat(int(entry))
            if got is not None:
                table[int(entry)] = got
    return table


def own_cpu(pids: list[int]) -> float:
    """CPU seconds of the processes ``pids`` alone (utime + stime, not their children)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            raw = Path(f"/proc/{pid}/stat").read_text()
            total += sum(int(f) for f in raw[raw.rindex(")") + 2 :].split()[11:13])
    return total / TICK


def tree_cpu(roots: list[int], exclude: frozenset[int] = frozenset()) -> float:
    """CPU seconds of the processes under ``roots`` (themselves included) plus what their
    reaped descendants used (cutime/cstime), less the processes in ``exclude``."""
    table = _table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total = 0
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in table and pid not in exclude:
            total += table[pid][1]
        todo.extend(children.get(pid, ()))
    return total / TICK


def postmaster_pid(url: str) -> int:
    """The server's postmaster: its ``postmaster.pid`` names it (asked over the socket)."""

    async def ask() -> str:
        conn = await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SHOW data_directory"))
        finally:
            await conn.close()

    data = asyncio.run(ask())
    return int((Path(data) / "postmaster.pid").read_text().split()[0])


# --- the database, read on a connection of the harness's own ----------------------------------


class Watcher:
    """One connection to the run's schema: the settle check, the drain count, and its own
    backend pid (left out of the server's CPU)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(asyncpg.connect(url))
        self.backend = int(
            self.loop.run_until_complete(self.conn.fetchval("SELECT pg_backend_pid()"))
        )

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()

    def fetchrow(self, sql: str, *args: object) -> asyncpg.Record:
        return self.loop.run_until_complete(self.conn.fetchrow(sql, *args))

    def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        return self.loop.run_until_complete(self.conn.fetch(sql, *args))

    def done(self, function: str) -> tuple[int, float, int]:
        """(tasks of ``function`` succeeded, their last finish time, tasks that ended otherwise)."""
        row = self.fetchrow(
            "SELECT count(*) FILTER (WHERE state = 'succeeded'), "
            "max(finished_at) FILTER (WHERE state = 'succeeded'), "
            "count(*) FILTER (WHERE state IN ('failed', 'cancelled', 'expired')) "
            "FROM tasks WHERE function = $1",
            function,
        )
        return int(row[0]), float(row[1] or 0.0), int(row[2])

    def placement(self) -> dict[str, int] | None:
        """Partitions per owner with an unexpired lease; None without a partitions table."""
        try:
            rows = self.fetch(
                "SELECT owner, count(*) AS n, (SELECT count(*) FROM partitions) AS p "
                "FROM partitions WHERE owner IS NOT NULL AND expires_at > $1 GROUP BY owner",
                time.time(),
            )
        except asyncpg.UndefinedTableError:
            return None
        return {str(r["owner"]): int(r["n"]) for r in rows} | {
            "": int(rows[0]["p"]) if rows else -1
        }


def settle(watch: Watcher, daemons: int, timeout: float) -> str:
    """Wait until N owners hold every partition at fair shares; a sentence saying what held."""
    if daemons == 1:
        return "one daemon"
    deadline = time.monotonic() + timeout
    seen: dict[str, int] | None = None
    while time.monotonic() < deadline:
        seen = watch.placement()
        if seen is None:
            return "no partitions table"
        total = seen.pop("", -1)
        if total > 0 and len(seen) == daemons and sum(seen.values()) == total:
            low, high = total // daemons, -(-total // daemons)
            if all(low <= n <= high for n in seen.values()):
                return f"settled: {sorted(seen.values())}"
        time.sleep(0.2)
    raise SystemExit(f"the {daemons} daemons did not settle in {timeout:.0f}s: {seen}")


# --- daemons ----------------------------------------------------------------------------------


@dataclass
class Daemon:
    home: Path
    proc: subprocess.Popen[bytes]
    client: Client

    @property
    def log(self) -> Path:
        return self.home / "daemon.out"


def config_of(url: str, workers: int, concurrency: int, affinity: str | None) -> str:
    scheduler = f'[scheduler]\naffinity = "{affinity}"\n' if affinity is not None else ""
    return (
        '[daemon]\ndurability = "full"\nlog_level = "warning"\n'
        f"[workers]\nmin_workers = {workers}\nmax_workers = {workers}\n"
        f"concurrency = {concurrency}\n{scheduler}"
        f'[store]\nurl = "{url}"\n'
    )


@contextlib.contextmanager
def daemons_on(tmp: Path, n: int, config: str) -> Iterator[list[Daemon]]:
    """N daemons, homes under ``tmp``, started together; each answers ping. Stopped (SIGTERM,
    drained) on exit."""
    started: list[Daemon] = []
    try:
        for i in range(n):
            home = tmp / f"home{i}"
            home.mkdir()
            (home / "asynctask.toml").write_text(config)
            proc = subprocess.Popen(
                [sys.executable, "-m", "asynctask", "daemon", "--home", str(home)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=open(home / "daemon.out", "ab"),  # noqa: SIM115 - lives as the daemon
                stderr=subprocess.STDOUT,
            )
            started.append(Daemon(home, proc, Client(home / "asynctask.sock", connect_timeout=1)))
        deadline = time.monotonic() + 60
        for daemon in started:
            while True:
                if daemon.proc.poll() is not None:
                    raise SystemExit(
                        f"daemon {daemon.home.name} exited {daemon.proc.returncode} at start:\n"
                        + daemon.log.read_text(errors="replace")[-3000:]
                    )
                try:
                    daemon.client.ping()
                    break
                except DaemonUnavailable:
                    if time.monotonic() > deadline:
                        raise SystemExit(
                            f"daemon {daemon.home.name} did not answer in 60 s"
                        ) from None
                    time.sleep(0.05)
        yield started
    finally:
        for daemon in started:
            with contextlib.suppress(Exception):
                daemon.client.close()
            if daemon.proc.poll() is None:
                daemon.proc.terminate()
        for daemon in started:
            try:
                stop_daemon(daemon.proc) if daemon.proc.poll() is None else None
            except subprocess.TimeoutExpired:
                daemon.proc.kill()
                daemon.proc.wait()


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    daemons: int
    tasks: int
    per_s: float
    submit_s: float
    drain_s: float
    db_us: float
    daemons_us: float
    own_us: float
    settle: str
    imbalance: str
    load: float
    idle_db: float  # CPU seconds per second, the settled cluster with no task
    idle_dm: float


def tenant_name(i: int) -> str:
    return f"t{i:03d}"


def submit_all(daemons: list[Daemon], tasks: int, tenants: int) -> float:
    """Submit ``tasks`` 20 ms sleeps; batch j (one tenant) through daemon j mod N, one thread per
    daemon. Returns the seconds the submits took."""
    batches: list[list[dict[str, object]]] = []
    by_tenant: dict[int, list[dict[str, object]]] = {}
    for i in range(tasks):
        by_tenant.setdefault(i % tenants, []).append(
            {"func": TASK, "args": [SLEEP], "tenant": tenant_name(i % tenants)}
        )
    pending = {t: calls for t, calls in by_tenant.items()}
    while pending:  # round robin over tenants, BATCH calls at a time
        for t in list(pending):
            batches.append(pending[t][:BATCH])
            pending[t] = pending[t][BATCH:]
            if not pending[t]:
                del pending[t]
    errors: list[BaseException] = []

    def send(k: int) -> None:
        try:
            for batch in batches[k :: len(daemons)]:
                daemons[k].client.submit_many(batch)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    began = time.perf_counter()
    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(daemons))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - began


def warm_up(daemons: list[Daemon], watch: Watcher, tenants: int, timeout: float) -> None:
    """One no-op per tenant, each tenant through daemon t mod N; until all succeeded."""
    for t in range(tenants):
        daemons[t % len(daemons)].client.submit_many([{"func": WARM, "tenant": tenant_name(t)}])
    deadline = time.monotonic() + timeout
    while watch.done(WARM)[0] < tenants:
        if time.monotonic() > deadline:
            raise SystemExit(f"warm-up: {watch.done(WARM)[0]} of {tenants} no-ops in {timeout}s")
        time.sleep(0.1)


def per_daemon(watch: Watcher, first: float) -> str:
    """Each partition owner's share of the timed tasks: "tenants/tasks@tasks per second until
    its own last finish", busiest first (a daemon runs only its partitions' tenants, so the
    busiest one bounds the drain); '-' without owners. Assumes no partition moved during the
    drain (the settle wait is before the clock)."""
    try:
        rows = watch.fetch("SELECT owner, partition FROM partitions WHERE owner IS NOT NULL")
    except asyncpg.UndefinedTableError:
        return "-"
    if not rows:
        return "-"
    from asynctask.core.partitions import partition_of

    owner = {int(r["partition"]): str(r["owner"]) for r in rows}
    total = int(watch.fetch("SELECT count(*) FROM partitions")[0][0])
    per: dict[str, list[float]] = {}  # owner -> [tenants, tasks, last finish]
    for r in watch.fetch(
        "SELECT tenant, count(*) AS n, max(finished_at) AS last FROM tasks "
        "WHERE function = $1 AND state = 'succeeded' GROUP BY tenant",
        TASK,
    ):
        got = per.setdefault(owner.get(partition_of(str(r["tenant"]), total), "?"), [0, 0, 0.0])
        got[0] += 1
        got[1] += int(r["n"])
        got[2] = max(got[2], float(r["last"]))
    return " ".join(
        f"{t:.0f}/{n:.0f}@{n / (last - first):.0f}"
        for t, n, last in sorted(per.values(), key=lambda v: -v[1])
    )


def one_run(url: str, postmaster: int, n: int, args: argparse.Namespace, rep: int) -> Run:
    schema_url = fresh_schema(url, f"scaleout_{os.getpid()}_{n}_{rep}")
    config = config_of(schema_url, args.workers, args.concurrency, args.affinity)
    tmp = Path(tempfile.mkdtemp(prefix="asynctask-scaleout-"))
    keep = False
    try:
        with daemons_on(tmp, n, config) as daemons:
            watch = Watcher(schema_url)
            try:
                settled = settle(watch, n, args.settle_timeout)
                warm_up(daemons, watch, args.tenants, 120)
                exclude = frozenset({watch.backend})
                pids = [d.proc.pid for d in daemons]
                idle_db, idle_dm = tree_cpu([postmaster], exclude), tree_cpu(pids)
                time.sleep(args.idle)
                db0 = tree_cpu([postmaster], exclude)
                dm0 = tree_cpu(pids)
                own0 = own_cpu(pids)
                idle_db = (db0 - idle_db) / args.idle
                idle_dm = (dm0 - idle_dm) / args.idle
                first = time.time()
                submit_s = submit_all(daemons, args.tasks, args.tenants)
                deadline = time.monotonic() + args.timeout
                while True:
                    done, last, bad = watch.done(TASK)
                    if done + bad >= args.tasks:
                        break
                    for d in daemons:
                        if d.proc.poll() is not None:
                            keep = True
                            raise SystemExit(f"daemon {d.home.name} died; logs kept in {tmp}")
                    if time.monotonic() > deadline:
                        keep = True
                        raise SystemExit(
                            f"N={n}: {done} of {args.tasks} succeeded in {args.timeout}s "
                            f"({bad} ended otherwise); homes kept in {tmp}"
                        )
                    time.sleep(0.25)
                load = os.getloadavg()[0]
                db1 = tree_cpu([postmaster], exclude)
                dm1 = tree_cpu(pids)
                own1 = own_cpu(pids)
                if bad:
                    print(f"  warning: {bad} timed tasks did not succeed", flush=True)
                imbalance = per_daemon(watch, first) if n > 1 else "-"
            finally:
                watch.close()
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    drain = last - first
    with contextlib.suppress(Exception):
        _drop_schema(url, f"scaleout_{os.getpid()}_{n}_{rep}")
    return Run(
        daemons=n,
        tasks=args.tasks,
        per_s=done / drain,
        submit_s=submit_s,
        drain_s=drain,
        db_us=(db1 - db0) / args.tasks * 1e6,
        daemons_us=(dm1 - dm0) / args.tasks * 1e6,
        own_us=(own1 - own0) / args.tasks * 1e6,
        settle=settled,
        imbalance=imbalance,
        load=load,
        idle_db=idle_db,
        idle_dm=idle_dm,
    )


def _drop_schema(url: str, name: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await conn.close()

    asyncio.run(drop())


# --- main -------------------------------------------------------------------------------------


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwind: the daemons and the cluster get stopped


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--daemons", default="1,2,3", help="daemon counts, comma-separated")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--tenants", type=int, default=640, help="tenants the tasks are spread over"
    )
    parser.add_argument("--workers", type=int, default=4, help="worker processes per daemon")
    parser.add_argument("--concurrency", type=int, default=1, help="attempts per worker")
    parser.add_argument(
        "--affinity", help='[scheduler] affinity, e.g. "10s" (default: the daemon\'s, 1s)'
    )
    parser.add_argument(
        "--idle", type=float, default=5, help="seconds of the idle cluster's CPU, measured first"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per drain")
    parser.add_argument("--settle-timeout", type=float, default=60)
    parser.add_argument("--store-url", help="a PostgreSQL database (default: a private cluster)")
    args = parser.parse_args()
    counts = [int(c) for c in args.daemons.split(",")]
    slots = args.workers * args.concurrency

    cluster = None
    url = args.store_url
    if url is None:
        from tests import pgcluster

        cluster = pgcluster._start()  # not cluster(): that turns a failure into a pytest skip
        url = cluster.url()
    try:
        postmaster = postmaster_pid(url)
        print(
            f"{args.tasks} tasks x {SLEEP * 1000:.0f} ms sleep, {args.tenants} tenants, "
            f"{args.workers} workers x concurrency {args.concurrency} = {slots} slots per daemon "
            f"(bound {slots / SLEEP:,.0f} tasks/s per daemon); postmaster {postmaster}",
            flush=True,
        )
        print(
            f"{'rep':>3} {'N':>2} {'tasks/s':>8} {'bound':>6} {'submit s':>8} {'drain s':>8} "
            f"{'db µs/task':>10} {'daemons+workers µs/task':>23} {'daemons alone':>13} "
            f"{'idle db/daemons %':>17} {'load':>5}  settle; per daemon: tenants/tasks@tasks/s",
            flush=True,
        )
        runs: list[Run] = []
        for rep in range(args.reps):
            for n in counts:
                run = one_run(url, postmaster, n, args, rep)
                runs.append(run)
                print(
                    f"{rep + 1:>3} {n:>2} {run.per_s:>8,.0f} {n * slots / SLEEP:>6,.0f} "
                    f"{run.submit_s:>8.2f} {run.drain_s:>8.2f} {run.db_us:>10,.0f} "
                    f"{run.daemons_us:>23,.0f} {run.own_us:>13,.0f} "
                    f"{f'{run.idle_db * 100:.1f}/{run.idle_dm * 100:.1f}':>17} {run.load:>5.1f}  "
                    f"{run.settle}; {run.imbalance}",
                    flush=True,
                )
    finally:
        if cluster is not None:
            cluster.stop()

    print()
    print(
        "| daemons | tasks/s median (reps) | bound | scale vs 1 | DB CPU µs/task "
        "| daemons' CPU µs/task, with workers (daemons alone) "
        "| idle CPU % of a core, DB / daemons |"
    )
    print("|---|---|---|---|---|---|---|")
    base: float | None = None
    for n in counts:
        mine = [r for r in runs if r.daemons == n]
        rate = statistics.median(r.per_s for r in mine)
        if n == counts[0]:
            base = rate / n
        reps = ", ".join(f"{r.per_s:,.0f}" for r in mine)
        scale = f"{rate / base:.2f}" if base else "-"
        print(
            f"| {n} | {rate:,.0f} ({reps}) | {n * slots / SLEEP:,.0f} | {scale} | "
            f"{statistics.median(r.db_us for r in mine):,.0f} | "
            f"{statistics.median(r.daemons_us for r in mine):,.0f} "
            f"({statistics.median(r.own_us for r in mine):,.0f}) | "
            f"{statistics.median(r.idle_db for r in mine) * 100:.1f} / "
            f"{statistics.median(r.idle_dm for r in mine) * 100:.1f} |"
        )


if __name__ == "__main__":
    main()
