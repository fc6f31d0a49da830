"""A harness around a real ``WorkerPool``: it records outcomes and waits for them by polling."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from asynctask import protocol
from asynctask.executor.pool import Job, Outcome, PoolConfig, WorkerPool

REPO = Path(__file__).resolve().parents[2]
TASKS = "tests.executor.tasks_for_tests"
DEFAULT_CONTEXT = {"id": "task-1", "tenant": "acme", "attempt": 1, "labels": {"k": "v"}}


def alive(pid: int) -> bool:
    """True while ``pid`` is a process that has not died (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def children(parent: int | None = None) -> list[tuple[int, str]]:
    """(pid, state) of every direct child of ``parent`` (default: this process), zombies too."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            found.append((int(entry), fields[0]))
    return found


async def eventually(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


class Harness:
    def __init__(self, **config: Any) -> None:
        config.setdefault("cwd", str(REPO))
        config.setdefault("kill_grace", 0.5)
        self.config = PoolConfig(**config)
        self.outcomes: dict[int, Outcome] = {}
        self.logs: dict[int, list[tuple[str, str]]] = {}
        self.declared: dict[int, Any] = {}  # aid -> the options its worker declared
        self.idle_calls = 0
        self.pool = WorkerPool(
            self.config, self._on_outcome, self._on_idle, self._on_log, self._on_declare
        )
        self._aids = iter(range(1, 1_000_000))
        # Other test modules may keep processes of their own (a daemon fixture): only new
        # children are this pool's business.
        self.children_before = {pid for pid, _ in children()}

    def _on_outcome(self, outcome: Outcome) -> None:
        assert outcome.aid not in self.outcomes, f"second outcome for {outcome.aid}"
        self.outcomes[outcome.aid] = outcome

    def _on_idle(self) -> None:
        self.idle_calls += 1

    def _on_declare(self, aid: int, options: Any) -> None:
        assert aid not in self.outcomes, f"declare of attempt {aid} after its outcome"
        self.declared[aid] = options

    def _on_log(self, aid: int, stream: str, data: str) -> None:
        assert aid not in self.outcomes, f"log of attempt {aid} after its outcome"
        self.logs.setdefault(aid, []).append((stream, data))

    def submit(
        self,
        name: str,
        *args: Any,
        timeout: float | None = None,
        context: dict[str, Any] | None = None,
        payload: bytes | None = None,
        limits: Any = None,
        **kwargs: Any,
    ) -> int:
        aid = next(self._aids)
        func = name if ":" in name else f"{TASKS}:{name}"
        if payload is None:
            payload = protocol.pack([list(args), kwargs])
        self.pool.run(Job(aid, func, payload, context or DEFAULT_CONTEXT, timeout, limits))
        return aid

    async def outcome(self, aid: int, timeout: float = 10.0) -> Outcome:
        outcome: Outcome = await eventually(
            lambda: self.outcomes.get(aid), timeout, f"the outcome of attempt {aid}"
        )
        return outcome

    async def run(self, name: str, *args: Any, **kwargs: Any) -> Outcome:
        await eventually(lambda: self.pool.idle, what=f"an idle worker in {self.pool!r}")
        return await self.outcome(self.submit(name, *args, **kwargs))

    async def full(self) -> None:
        """Wait until every worker is idle again."""
        workers, slots = self.config.workers, self.config.concurrency
        await eventually(
            lambda: self.pool.size == workers and self.pool.idle == workers * slots,
            what="a full pool",
        )


def value(outcome: Outcome) -> Any:
    assert outcome.ok, outcome.error
    assert outcome.result is not None
    return protocol.unpack(outcome.result)


async def stop_and_check(harness: Harness, deadline: float | None = None) -> list[int]:
    """Stop the pool and assert that it left no process behind, not even a zombie."""
    pids = harness.pool.pids
    unfinished = await harness.pool.stop(deadline)
    assert harness.pool.pids == ()
    assert [pid for pid in pids if alive(pid)] == []
    assert [child for child in children() if child[0] not in harness.children_before] == []
    return unfinished


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    started = Harness(workers=2)
    await started.pool.start()
    yield started
    await stop_and_check(started)
