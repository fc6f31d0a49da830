"""``reconfigure``: a running scheduler takes new limits (a re-read config) between steps."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from asynctask.core.limits import FunctionLimits, QueueLimits, SchedulerSettings, TenantLimits
from asynctask.core.reconfigure import reconfigure
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Scheduler
from asynctask.errors import SubmitThrottled
from asynctask.model import TaskState
from tests.core.helpers import make_task


def _core(settings: SchedulerSettings) -> Scheduler:
    return Scheduler(RetryPolicy(), random.Random(0), settings)


def _started(actions) -> list:
    return [a.task for a in actions if isinstance(a, Dispatch)]


def test_a_raised_tenant_concurrency_lets_more_start_after_the_next_end() -> None:
    settings = SchedulerSettings(capacity=8, tenants={"t": TenantLimits(concurrency=1)})
    core = _core(settings)
    tasks = [make_task(tenant="t") for _ in range(3)]
    for made in tasks:
        core.add(made, 0.0)
    (first,) = _started(core.dispatch(0.0, 8))
    raised = replace(settings, tenants={"t": TenantLimits(concurrency=3)})
    reconfigure(core, raised, {}, 1.0)
    assert core.tenant("t").limits.concurrency == 3
    core.succeeded(first, None, 1.0)  # what releases a tenant parked on concurrency
    assert len(_started(core.dispatch(1.0, 8))) == 2


def test_a_lowered_backlog_bound_refuses_the_next_submit() -> None:
    settings = SchedulerSettings(tenants={"t": TenantLimits(max_backlog=10)})
    core = _core(settings)
    core.add(make_task(tenant="t", due_at=100.0, state=TaskState.SCHEDULED), 0.0)
    core.admit("t", 1, 0.0)
    reconfigure(core, replace(settings, tenants={"t": TenantLimits(max_backlog=1)}), {}, 0.0)
    with pytest.raises(SubmitThrottled):
        core.admit("t", 1, 0.0)


def test_an_unchanged_rate_keeps_its_bucket_and_a_changed_one_gets_a_new_one() -> None:
    settings = SchedulerSettings(
        tenants={"t": TenantLimits(rate=5.0)}, queues={("t", "t"): QueueLimits(rate=2.0)}
    )
    core = _core(settings)
    core.add(make_task(tenant="t"), 0.0)
    tenant = core.tenant("t")
    bucket, queue_bucket = tenant.bucket, tenant.queues["t"].bucket
    reconfigure(core, replace(settings, tenants={"t": TenantLimits(rate=5.0, weight=3.0)}), {}, 1.0)
    assert tenant.bucket is bucket
    assert tenant.queues["t"].bucket is queue_bucket
    assert tenant.weight == 3.0
    reconfigure(core, replace(settings, queues={}), {}, 2.0)
    assert tenant.queues["t"].bucket is None


def test_function_limits_merge_the_config_over_what_the_code_declared() -> None:
    settings = SchedulerSettings(functions={"m:f": FunctionLimits(concurrency=2, aimd=False)})
    core = _core(settings)
    declared = {"m:f": FunctionLimits(concurrency=9, rate=4.0)}
    core.declare_function_limits("m:f", declared["m:f"], 0.0)
    reconfigure(core, replace(settings, functions={}), declared, 1.0)
    assert core.function("m:f").limits == FunctionLimits(concurrency=9, rate=4.0)
    changed = replace(settings, functions={"m:f": FunctionLimits(concurrency=1, aimd=False)})
    reconfigure(core, changed, declared, 2.0)
    assert core.function("m:f").limits == FunctionLimits(concurrency=1, rate=4.0, aimd=False)
