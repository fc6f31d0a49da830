"""The daemon's step loop driven in-process, with a fake store and a fake pool: submit,
dispatch, outcome, retry and finish in milliseconds, no subprocess, no socket.

The fakes are the edges (STYLE: mocks only at the edges): the store commits each op on the
next loop turn and records it, the pool takes jobs and lets the test report their outcomes.
Everything between - intake, the scheduler, the engine, the store guard - is the real code."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from asynctask import protocol
from asynctask.config import Config
from asynctask.core.slots import WarmSlots
from asynctask.daemon import Daemon
from asynctask.errors import StorageError
from asynctask.executor.pool import Job, Outcome
from asynctask.model import SubmitSpec, TaskState
from asynctask.store import InsertTask, Op, StoreError, UpdateTask


class FakeStore:
    """Commits each op on the next loop turn; ``failing`` makes commits fail instead."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.failing: str | None = None
        self.failure: str | None = None
        self.failing_since: float | None = None
        self.pending = 0
        self.transactions = 0
        self.ops_committed = 0

    def put(self, op: Op) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def commit() -> None:
            if self.failing is not None:
                self.failure = self.failing
                future.set_exception(StoreError(self.failing))
            else:
                self.failure = None
                self.ops.append(op)
                future.set_result(None)

        asyncio.get_running_loop().call_soon(commit)
        return future

    @contextlib.contextmanager
    def one_transaction(self) -> Iterator[None]:
        yield

    async def get(self, tenant: str, task_id: str) -> None:
        return None


class FakePool:
    """One worker with one slot; ``jobs`` holds what was started (its gate opened)."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.busy = 0

    @property
    def idle(self) -> int:
        return 1 - self.busy

    def idle_by_shard(self) -> list[int]:
        return [self.idle]

    def warm_slots(self) -> WarmSlots:
        return WarmSlots(fresh=self.idle)

    def can_run(self, shard: int | None = None) -> bool:
        return self.idle > 0

    def run(self, job: Job, shard: int | None = None) -> None:
        assert self.idle > 0, "dispatched past the free slots"
        self.busy += 1
        assert job.gate is not None  # no start journal here: the attempt waits for its commit
        job.gate.add_done_callback(lambda _: self.jobs.append(job))

    def grow(self, waiting: int) -> None:
        pass

    def cancel(self, aid: int) -> bool:
        return False


@pytest.fixture
def config() -> Config:
    config = Config()
    return replace(
        config,
        workers=replace(config.workers, min_workers=1, max_workers=1),
        retry=replace(config.retry, backoff_base=0.0, backoff_cap=0.0),
    )


@pytest.fixture
async def daemon(config: Config, tmp_path: Path) -> Daemon:
    """The real daemon's parts around a fake store (``Daemon(..., store)``, as ``Daemon.open``
    builds it once the store is open) and a fake pool; not started, so no socket or worker."""
    store = FakeStore()
    daemon = Daemon(config, tmp_path / "home", tmp_path / "sock", store)  # type: ignore[arg-type]
    daemon.pool = FakePool()  # type: ignore[assignment]
    daemon.guard.start()
    daemon.accepting = True
    return daemon


def _wired(daemon: Daemon) -> tuple[FakeStore, FakePool]:
    store, pool = daemon.store, daemon.pool
    assert isinstance(store, FakeStore)
    assert isinstance(pool, FakePool)
    return store, pool


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _spec(function: str = "m:f", retries: int = 1) -> SubmitSpec:
    return SubmitSpec(function=function, payload=protocol.pack([[], {}]), retries=retries)


async def test_submit_dispatch_fail_retry_succeed(daemon: Daemon) -> None:
    store, pool = _wired(daemon)
    (view,) = await daemon.intake.submit([_spec()])
    assert isinstance(store.ops[0], InsertTask)  # stored before the reply
    daemon.engine.step()
    await _settle()
    (first,) = pool.jobs  # started once its "running" write committed
    assert first.context["attempt"] == 1
    updates = [op for op in store.ops if isinstance(op, UpdateTask)]
    assert (updates[-1].state, updates[-1].attempts) == (TaskState.RUNNING, 1)
    pool.busy -= 1
    error = {"kind": "exception", "type": "ValueError", "message": "bad"}
    daemon.engine.on_outcome(Outcome(first.aid, False, None, error, pid=1))
    await _settle()
    task = daemon.engine.live.get(("default", view["id"]))
    assert task is not None  # no back-off configured: the outcome's step started it again
    assert (task.state, task.attempts) == (TaskState.RUNNING, 2)
    second = pool.jobs[-1]
    assert second is not first
    assert second.context["attempt"] == 2
    pool.busy -= 1
    daemon.engine.on_outcome(Outcome(second.aid, True, protocol.pack(7), None, pid=1))
    await _settle()
    assert ("default", view["id"]) not in daemon.engine.live  # released once its end is stored
    last = [op for op in store.ops if isinstance(op, UpdateTask)][-1]
    assert (last.state, last.attempts) == (TaskState.SUCCEEDED, 2)
    assert last.result == protocol.pack(7)


async def test_a_finish_that_cannot_be_stored_is_held_and_waiters_are_not_told(
    daemon: Daemon,
) -> None:
    store, pool = _wired(daemon)
    (view,) = await daemon.intake.submit([_spec(retries=0)])
    daemon.engine.step()
    await _settle()
    (job,) = pool.jobs
    waiter = asyncio.ensure_future(daemon.queries.wait("default", view["id"], None))
    await _settle()
    store.failing = "disk full"
    daemon.engine.on_outcome(Outcome(job.aid, True, protocol.pack(3), None, pid=1))
    await _settle()
    assert not waiter.done()  # the end is not stored: nobody hears of it
    assert daemon.guard is not None
    assert daemon.guard.unstored == 1
    with pytest.raises(StorageError):  # its ID is not free meanwhile
        await daemon.intake.submit([replace(_spec(), id=view["id"])])
    store.failing = None
    reply = await asyncio.wait_for(waiter, 5)  # the guard's re-write lands, then the answer
    assert reply["state"] == "succeeded"
    assert ("default", view["id"]) not in daemon.engine.live
    await daemon.guard.close()
