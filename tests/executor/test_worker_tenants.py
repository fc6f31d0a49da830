"""``WorkerPool.worker_tenants``: each live worker's pid and the tenant it serves."""

from __future__ import annotations

from asynctask.resources import Limits

from .conftest import DEFAULT_CONTEXT, Harness, eventually, stop_and_check, value


def _as(tenant: str) -> dict[str, object]:
    return {**DEFAULT_CONTEXT, "tenant": tenant}


async def test_a_worker_takes_the_tenant_of_its_first_job_for_life(harness: Harness) -> None:
    pool = harness.pool
    assert pool.worker_tenants() == dict.fromkeys(pool.pids)  # none has run anything
    first = value(await harness.run("pid", context=_as("a")))
    assert pool.worker_tenants() == {**dict.fromkeys(pool.pids), first: "a"}
    second = value(await harness.run("pid", context=_as("b")))  # the other, fresh worker
    assert second != first
    assert pool.worker_tenants() == {first: "a", second: "b"}
    third = value(await harness.run("pid", context=_as("c")))  # replaces a's or b's
    assert third not in (first, second)
    tenants = pool.worker_tenants()
    assert tenants[third] == "c"
    assert sorted(t for t in tenants.values() if t) in (["a", "c"], ["b", "c"])


async def test_a_dedicated_worker_has_its_jobs_tenant_and_its_lender_none() -> None:
    harness = Harness(workers=1)
    await harness.pool.start()
    try:
        (lender,) = harness.pool.pids
        aid = harness.submit("sleep", 30, context=_as("c"), limits=Limits(open_files=64))
        await eventually(lambda: harness.pool.pid_of(aid) not in (None, 0), what="its worker")
        own = harness.pool.pid_of(aid)
        assert own != lender
        assert harness.pool.worker_tenants() == {lender: None, own: "c"}
        assert harness.pool.cancel(aid)
        await harness.outcome(aid)
        await eventually(lambda: own not in harness.pool.worker_tenants(), what="reaped")
        assert harness.pool.worker_tenants() == {lender: None}
    finally:
        await stop_and_check(harness)
