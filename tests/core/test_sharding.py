"""Shuffle sharding and fault confinement: who may run on which worker shard, and when."""

from __future__ import annotations

import random
from itertools import combinations
from math import comb

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynctask.core.limits import SchedulerSettings
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Scheduler
from asynctask.core.sharding import ShardSettings, exposure, shard_set
from asynctask.model import ErrorKind, error_dict
from tests.core.helpers import make_task

DIED = error_dict(ErrorKind.WORKER_DIED, "WorkerDied", "worker exited")


def core(**sharding) -> Scheduler:
    sharding.setdefault("probation", 0)
    settings_ = SchedulerSettings(capacity=64, sharding=ShardSettings(**sharding))
    return Scheduler(RetryPolicy(base=0.5, cap=1.0), random.Random(0), settings_)


def task(tenant: str, retries: int = 0):
    made = make_task(5, tenant=tenant, retries=retries)
    made.function = f"m:{tenant}"  # one function per tenant: no shared function limit
    return made


def dispatches(actions):
    return [a for a in actions if isinstance(a, Dispatch)]


@given(st.text(max_size=20), st.integers(1, 32), st.integers(1, 32))
def test_a_tenants_shard_set_is_a_stable_k_subset(tenant, shards, per_tenant):
    own = shard_set(tenant, shards, per_tenant)
    assert own == shard_set(tenant, shards, per_tenant)  # no state: the same on every start
    assert len(own) == min(shards, per_tenant) == len(set(own))
    assert all(0 <= s < shards for s in own)
    assert list(own) == sorted(own)


def test_shard_sets_spread_and_match_the_documented_arithmetic():
    fully, none = exposure(8, 2)
    assert (fully, none) == (1 / 28, 15 / 28)
    # Over many tenants, every one of the C(8, 2) combinations is used about equally.
    counts = {pair: 0 for pair in combinations(range(8), 2)}
    for n in range(28_000):
        counts[shard_set(f"tenant-{n}", 8, 2)] += 1
    assert min(counts.values()) > 700
    assert max(counts.values()) < 1300
    poison = shard_set("poison", 8, 2)
    others = [shard_set(f"tenant-{n}", 8, 2) for n in range(28_000)]
    untouched = sum(1 for own in others if not set(own) & set(poison)) / len(others)
    assert untouched == pytest.approx(comb(6, 2) / comb(8, 2), abs=0.02)


def test_unconfined_tenants_use_every_shard():
    sched = core(shards=4, per_tenant=1)
    for _ in range(8):
        sched.add(task("a"))
    actions = dispatches(sched.dispatch(0.0, [1, 1, 1, 1]))
    assert sorted(a.shard for a in actions) == [0, 1, 2, 3]


def test_a_new_tenant_is_on_probation_until_enough_attempts_succeed():
    sched = core(shards=4, per_tenant=1, probation=3)
    # Someone waiting to protect (alone, a tenant gets idle workers its record earns:
    # test_confinement.py): on probation too, one attempt running, one held by its slow start.
    sched.add(task("other"))
    sched.add(task("other"))
    assert len(dispatches(sched.dispatch(0.0, 1))) == 1
    (own,) = sched.shards_of("new")
    assert sched.shards_of("other") != (own,)
    for _ in range(10):
        sched.add(task("new"))
    tenant = sched.tenant("new")
    assert sched.confinement(tenant, 0.0) == "probation"
    for expected in (1, 1, 1):  # one worker per shard: only its own shard, one at a time
        actions = dispatches(sched.dispatch(0.0, [1, 1, 1, 1]))
        assert [a.shard for a in actions] == [own] * expected
        sched.succeeded(actions[0].task, None, 0.0)
    assert sched.confinement(tenant, 0.0) is None
    assert len(dispatches(sched.dispatch(0.0, [1, 1, 1, 1]))) == 4  # proven: every shard


def test_a_tenant_whose_tasks_never_succeed_never_leaves_its_shards():
    sched = core(shards=4, per_tenant=2, probation=5, fault_backoff=0.01, fault_backoff_max=0.01)
    own = set(sched.shards_of("poison"))
    for _ in range(50):
        sched.add(task("poison"))
    now = 0.0
    used = set()
    for _ in range(40):
        now += 0.05  # past each back-off
        actions = dispatches(sched.dispatch(now, [1, 1, 1, 1]))
        assert len(actions) <= 1  # no success yet: one attempt at a time
        for action in actions:
            used.add(action.shard)
            sched.attempt_failed(action.task, DIED, now)
    assert used
    assert used <= own


def test_a_tenant_on_probation_starts_slowly_and_speeds_up_with_each_success():
    sched = core(shards=8, per_tenant=7, probation=10)
    for _ in range(100):
        sched.add(task("new"))
    running = []
    widths = []
    for _ in range(6):
        actions = dispatches(sched.dispatch(0.0, [8] * 8))
        running += [a.task for a in actions]
        widths.append(len(running))
        for done in running:
            sched.succeeded(done, None, 0.0)
        running = []
    # 1 + successes so far: 1, 2, 4, 8 (15 successes: off probation), then all 64 workers.
    assert widths == [1, 2, 4, 8, 64, 21]


def test_always_confinement_keeps_a_lone_tenant_on_its_own_shards():
    sched = core(shards=4, per_tenant=2, confinement="always")
    for _ in range(8):
        sched.add(task("a"))
    own = sched.shards_of("a")
    actions = dispatches(sched.dispatch(0.0, [2, 2, 2, 2]))
    assert len(actions) == 4
    assert {a.shard for a in actions} == set(own)


def test_faults_confine_a_tenant_and_back_it_off_until_it_calms():
    sched = core(shards=4, per_tenant=1, fault_threshold=3, fault_window=60.0, fault_backoff=1.0)
    (own,) = sched.shards_of("bad")
    now = 0.0
    for _ in range(10):
        sched.add(task("bad"))
    tenant = sched.tenant("bad")
    for n in range(3):
        free = [0, 0, 0, 0]
        free[(own + 1) % 4] = 1  # only a shard that is not its own is idle
        (first,) = dispatches(sched.dispatch(now, free))
        assert first.shard == (own + 1) % 4  # not confined yet: any shard will do
        sched.attempt_failed(first.task, DIED, now)
        now += 0.1
        assert sched.confined(tenant, now) is (n == 2)
    # Confined: an idle worker on another shard is no use to it ...
    later = now + 100  # ... even once the back-off is long over (but the window is not)
    free = [1, 1, 1, 1]
    free[own] = 0
    assert dispatches(sched.dispatch(now + 30, free)) == []
    # ... and its own shard becoming idle wakes it.
    (moved,) = dispatches(sched.dispatch(now + 30.5, [1, 1, 1, 1]))
    assert moved.shard == own
    # The back-off: after a fault while confined, nothing for fault_backoff * 2^(streak-1).
    sched.attempt_failed(moved.task, DIED, now + 31)
    assert dispatches(sched.dispatch(now + 31.5, [1, 1, 1, 1])) == []
    wake = sched.next_wakeup()
    assert wake is not None
    assert now + 31 < wake <= now + 31 + 16.0
    assert len(dispatches(sched.dispatch(wake, [1, 1, 1, 1]))) == 1
    # A whole window without faults: free again, and on every shard.
    assert not sched.confined(tenant, later + 60)


def test_a_success_resets_the_back_off_streak():
    sched = core(shards=2, per_tenant=1, fault_threshold=1, fault_backoff=1.0)
    for _ in range(6):
        sched.add(task("t", retries=0))
    (own,) = sched.shards_of("t")
    one_idle = [0, 0]
    one_idle[own] = 1
    now = 0.0
    for n in range(3):
        (d,) = dispatches(sched.dispatch(now, one_idle))
        sched.attempt_failed(d.task, DIED, now)
        assert dispatches(sched.dispatch(now, one_idle)) == []  # backing off
        wake = sched.next_wakeup()
        assert wake == now + 2**n  # 1 s, 2 s, 4 s
        now = wake
    tenant = sched.tenant("t")
    assert tenant.faults is not None
    assert tenant.faults.streak == 3
    (d,) = dispatches(sched.dispatch(now, one_idle))
    sched.succeeded(d.task, None, now)
    assert tenant.faults.streak == 0
    assert tenant.faults.backoff_until == 0.0
    assert len(dispatches(sched.dispatch(now, one_idle))) == 1  # no back-off after a success


def test_other_errors_are_not_faults():
    sched = core(shards=2, per_tenant=1, fault_threshold=1)
    sched.add(task("t"))
    (d,) = dispatches(sched.dispatch(0.0, [1, 1]))
    sched.attempt_failed(d.task, error_dict(ErrorKind.EXCEPTION, "E", "boom"), 0.0)
    faults = sched.tenant("t").faults
    assert faults is not None
    assert faults.recent(sched.settings.sharding, 0.0) == (1, 0)  # one attempt, no fault
    assert sched.confinement(sched.tenant("t"), 0.0) is None


def test_a_plain_count_of_free_slots_still_works_and_a_wrong_shard_count_is_refused():
    sched = core(shards=2)
    sched.add(task("t"))
    assert [a.shard for a in dispatches(sched.dispatch(0.0, 1))] == [-1]
    with pytest.raises(ValueError, match="3 shards given"):
        sched.dispatch(0.0, [1, 1, 1])


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 8),
    st.integers(1, 3),
    st.lists(
        st.tuples(
            st.integers(0, 5),  # tenant
            st.sampled_from(["add", "ok", "die", "dispatch"]),
            st.lists(st.integers(0, 2), min_size=8, max_size=8),  # idle workers per shard
        ),
        max_size=80,
    ),
)
def test_confined_tenants_only_ever_run_on_their_shards(shards, per_tenant, ops):
    """Any mix of submits, successes, worker deaths and idle-worker patterns: a confined
    tenant's attempts land only on its own shards, and no shard gets more than it has idle."""
    sched = core(shards=shards, per_tenant=per_tenant, fault_threshold=2, fault_backoff=0.5)
    running = []
    now = 0.0
    for tenant_no, op, idle in ops:
        now += 0.25
        name = f"t{tenant_no}"
        if op == "add":
            sched.add(task(name, retries=1), now)
        elif op in ("ok", "die") and running:
            done = running.pop(tenant_no % len(running))
            if op == "ok":
                sched.succeeded(done, None, now)
            else:
                sched.attempt_failed(done, DIED, now)
        else:
            free = idle[:shards]
            confined = {t.name for t in sched.tenants() if sched.confined(t, now)}
            actions = dispatches(sched.dispatch(now, free))
            for shard in range(shards):
                assert sum(1 for a in actions if a.shard == shard) <= free[shard]
            for action in actions:
                if action.task.tenant in confined:
                    assert action.shard in sched.shards_of(action.task.tenant)
            running += [a.task for a in actions]
