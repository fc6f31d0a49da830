"""Power-loss model: replay the daemon's writes as a power cut would have left them on disk.

docs/contract.md "Durable submit": with ``[daemon] durability = "full"`` a power loss loses nothing
acknowledged; with ``"normal"`` it may lose the last transactions. A kill -9 cannot show either
(the kernel's page cache survives a process), so this check records every write, truncate and
fsync the daemon makes under its home (faultshim's journal), then rebuilds the home as a power
cut at instant T would leave it:

* every write to a file that an fsync/fdatasync of that file covered before T is kept;
* the writes after a file's last sync before T are "in the page cache": a policy decides which
  reach the disk - ``drop`` (none), ``prefix`` (a random prefix of them, in order) or
  ``subset`` (each one with probability 1/2: a disk may reorder);
* file creation counts as durable, and the ``-shm`` index is not rebuilt (SQLite rebuilds it).

It then starts a daemon on the rebuilt home and asks it for every task acknowledged before T
(``time.monotonic_ns`` of the ack vs. the journal's CLOCK_MONOTONIC stamps; the ack is sent
after the commit returns, so a cut after the ack is after the commit). An acknowledged task the
daemon does not know is lost. ``"normal"`` must show loss - the positive control that the model
can see it - and ``"full"`` none.

    .venv/bin/python -m benchmarks.reliability.powerloss [--tasks 300] [--cuts 6]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from asynctask.errors import NotFound
from benchmarks.reliability import shim
from benchmarks.reliability.common import Daemon, config_text, sweep_cgroups

#: The files a power cut is replayed for: the database and its WAL (the rest is rebuilt or
#: not needed to start: logs, the pid file, the -shm index).
REPLAYED = ("asynctask.db", "asynctask.db-wal")
POLICIES = ("drop", "prefix", "subset")
WORKERS = "[workers]\nmin_workers = 1\nmax_workers = 1\n"
FAR = 10 * 365 * 86400.0  # run_at this far ahead: the tasks stay scheduled and unchanged


@dataclass
class Cut:
    """One replayed power cut and what the daemon on the rebuilt home said."""

    at_record: int
    policy: str
    acked: int
    lost: list[str]
    unsynced_writes: int
    kept_writes: int
    started: bool = True
    error: str = ""


@dataclass
class Result:
    durability: str
    tasks: int
    records: int
    syncs: int
    cuts: list[Cut] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """The most acknowledged tasks one cut lost."""
        return max((len(c.lost) for c in self.cuts), default=0)

    @property
    def cuts_losing(self) -> int:
        return sum(1 for c in self.cuts if c.lost or not c.started)

    def summary(self) -> str:
        worst = max(self.cuts, key=lambda c: len(c.lost), default=None)
        tail = (
            f"; worst: {len(worst.lost)} of {worst.acked} acked lost ({worst.policy} at record "
            f"{worst.at_record}, {worst.unsynced_writes} unsynced writes, {worst.kept_writes} "
            f"kept)"
            if worst is not None and worst.lost
            else ""
        )
        failed = sum(1 for c in self.cuts if not c.started)
        return (
            f'durability="{self.durability}": {self.tasks} tasks acked, {self.records} journal '
            f"records ({self.syncs} syncs), {len(self.cuts)} cuts replayed, "
            f"{self.cuts_losing} lost acknowledged tasks"
            + (f", {failed} would not start" if failed else "")
            + tail
        )


def record_run(
    lib: Path, work: Path, durability: str, tasks: int
) -> tuple[list[shim.Record], list[tuple[str, int]]]:
    """Run a traced daemon on a fresh home, submit ``tasks`` with known IDs, kill -9 it.

    Returns the journal and the (task ID, ack time) of each acknowledged submit.
    """
    home = work / "home"
    journal = work / "journal.bin"
    daemon = Daemon(
        home,
        config=config_text(durability, WORKERS),
        env=shim.shim_env(lib, home, journal=journal),
    )
    acks: list[tuple[str, int]] = []
    try:
        daemon.start()
        client = daemon.client()
        run_at = time.time() + FAR
        for i in range(tasks):
            task_id = f"pl-{i:06d}"
            client.submit("benchmarks.tasks:noop", task_id=task_id, run_at=run_at)
            acks.append((task_id, time.monotonic_ns()))
    finally:
        daemon.kill9()  # no clean close: nothing is checkpointed or synced on the way out
        sweep_cgroups()
    return shim.read_journal(journal), acks


def rebuild(
    records: list[shim.Record], cut: int, policy: str, rng: random.Random, into: Path, home: Path
) -> tuple[int, int]:
    """Write into ``into`` the replayed files as a cut before ``records[cut]`` leaves them.

    Returns (writes not yet synced at the cut, how many of them the policy kept).
    """
    names = {str(home.resolve() / name): name for name in REPLAYED}
    before = records[:cut]
    last_sync: dict[str, int] = {}
    for index, record in enumerate(before):
        if record.op == shim.SYNC and record.path in names:
            last_sync[record.path] = index
    unsynced = [
        i
        for i, r in enumerate(before)
        if r.path in names and r.op in (shim.WRITE, shim.TRUNCATE) and i > last_sync.get(r.path, -1)
    ]
    if policy == "drop":
        kept = set()
    elif policy == "prefix":
        kept = set(unsynced[: rng.randint(0, len(unsynced))])
    else:
        kept = {i for i in unsynced if rng.random() < 0.5}
    dropped = set(unsynced) - kept
    files: dict[str, bytearray] = {}
    for index, record in enumerate(before):
        if record.path not in names or index in dropped:
            continue
        data = files.setdefault(record.path, bytearray())
        if record.op == shim.WRITE:
            end = record.offset + len(record.data)
            if len(data) < end:
                data.extend(bytes(end - len(data)))
            data[record.offset : end] = record.data
        elif record.op == shim.TRUNCATE:
            del data[record.offset :]
            if len(data) < record.offset:
                data.extend(bytes(record.offset - len(data)))
    into.mkdir(parents=True)
    shutil.copy(home / "asynctask.toml", into / "asynctask.toml")
    for path, data in files.items():
        (into / names[path]).write_bytes(bytes(data))
    return len(unsynced), len(kept)


def check_cut(
    records: list[shim.Record],
    acks: list[tuple[str, int]],
    cut: int,
    policy: str,
    rng: random.Random,
    work: Path,
    home: Path,
) -> Cut:
    """Rebuild the home for one cut, start a daemon on it, and look up every acked task."""
    at = records[cut].t_ns if cut < len(records) else 2**63
    acked = [task_id for task_id, t in acks if t < at]
    into = work / f"cut-{cut}-{policy}"
    unsynced, kept = rebuild(records, cut, policy, rng, into, home)
    daemon = Daemon(into)
    result = Cut(cut, policy, len(acked), [], unsynced, kept)
    try:
        daemon.start()
        client = daemon.client()
        for task_id in acked:
            try:
                client.status(task_id)
            except NotFound:
                result.lost.append(task_id)
    except RuntimeError as exc:
        result.started = False
        result.error = str(exc)[-500:]
    finally:
        daemon.stop()
        shutil.rmtree(into, ignore_errors=True)
        daemon.log.unlink(missing_ok=True)
    return result


def run(lib: Path, durability: str, tasks: int, cuts: int, seed: int = 0) -> Result:
    """One traced run, then ``cuts`` replayed power cuts: always one at the very end with every
    unsynced write dropped (the worst case), the others at random records and policies."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="asynctask-powerloss-") as tmp:
        work = Path(tmp)
        records, acks = record_run(lib, work, durability, tasks)
        result = Result(
            durability, len(acks), len(records), sum(1 for r in records if r.op == shim.SYNC)
        )
        # Cuts after the first ack: before it there is nothing to lose.
        first = next((i for i, r in enumerate(records) if r.t_ns > acks[0][1]), len(records))
        plan = [(len(records), "drop")]
        for _ in range(cuts - 1):
            plan.append((rng.randint(first, len(records)), rng.choice(POLICIES)))
        for cut, policy in plan:
            result.cuts.append(check_cut(records, acks, cut, policy, rng, work, work / "home"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--cuts", type=int, default=6)
    args = parser.parse_args()
    lib = shim.build()
    for durability in ("normal", "full"):
        print(run(lib, durability, args.tasks, args.cuts).summary(), flush=True)


if __name__ == "__main__":
    main()
