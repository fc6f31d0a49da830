"""One tenant per worker, with real worker processes: capacity moves, workers do not."""

from __future__ import annotations

import sys
from typing import Any

from tests.executor.conftest import (
    DEFAULT_CONTEXT,
    Harness,
    alive,
    eventually,
    stop_and_check,
    value,
)


def ctx(tenant: str) -> dict[str, Any]:
    return {**DEFAULT_CONTEXT, "tenant": tenant}


async def test_another_tenant_gets_a_fresh_worker_in_the_idle_ones_place():
    harness = Harness(workers=1)
    await harness.pool.start()
    try:
        first = value(await harness.run("pid", context=ctx("a")))
        again = value(await harness.run("pid", context=ctx("a")))
        assert again == first  # the tenant's own worker is reused
        other = value(await harness.run("pid", context=ctx("b")))
        assert other != first  # never a's worker
        await eventually(lambda: not alive(first), what="a's worker to be retired")
        back = value(await harness.run("pid", context=ctx("a")))
        assert back not in (first, other)
        assert harness.pool.size == 1
    finally:
        await stop_and_check(harness)


async def test_a_worker_never_runs_a_second_tenant_across_many_attempts():
    harness = Harness(workers=2)
    await harness.pool.start()
    seen: dict[int, set[str]] = {}
    try:
        for tenant in "abacbbcaab":
            pid = value(await harness.run("pid", context=ctx(tenant)))
            seen.setdefault(pid, set()).add(tenant)
        assert all(len(tenants) == 1 for tenants in seen.values()), seen
        assert harness.pool.size == 2
    finally:
        await stop_and_check(harness)


async def test_with_several_slots_a_busy_worker_of_another_tenant_lends_a_slot():
    """Both slots of the one worker are free for a's second attempt only; b's attempt, while
    a's runs, gets a worker of its own that borrows the free slot and exits afterwards."""
    harness = Harness(workers=1, concurrency=2)
    await harness.pool.start()
    try:
        a_pid = value(await harness.run("pid", context=ctx("a")))
        long = harness.submit("sleep", 1.0, context=ctx("a"))
        b_pid = value(await harness.run("pid", context=ctx("b")))
        assert b_pid != a_pid
        assert value(await harness.outcome(long)) == "slept"
        await eventually(lambda: not alive(b_pid), what="b's borrowed worker to exit")
        assert value(await harness.run("pid", context=ctx("a"))) == a_pid
    finally:
        await stop_and_check(harness)


async def test_without_a_shard_the_tenants_own_idle_worker_is_found_in_any_shard():
    harness = Harness(workers=2, shards=2)
    await harness.pool.start()
    try:
        a = value(await harness.run("pid", context=ctx("a")))
        b = value(await harness.run("pid", context=ctx("b")))
        assert a != b
        # Both shards have one idle worker; b's is not in the lowest-numbered shard.
        assert value(await harness.run("pid", context=ctx("b"))) == b
        assert value(await harness.run("pid", context=ctx("a"))) == a
    finally:
        await stop_and_check(harness)


async def test_a_replacement_that_cannot_start_reports_its_waiting_job(tmp_path):
    """Another tenant's attempt waits for a worker that never starts: it must still end."""
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    harness = Harness(workers=1, python=str(python), fork_server=False)
    await harness.pool.start()
    try:
        value(await harness.run("pid", context=ctx("a")))
        python.unlink()  # every interpreter start fails (ENOENT) from now on
        outcome = await harness.run("pid", context=ctx("b"))
        assert outcome.error is not None
        assert outcome.error["kind"] == "worker_died"
        assert "cannot start a worker" in outcome.error["message"]
        python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        python.chmod(0o755)
        assert value(await harness.run("add", 1, 2, context=ctx("b"))) == 3
    finally:
        await stop_and_check(harness)
