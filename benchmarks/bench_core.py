"""Cost of one dispatch decision in the pure scheduling core: prints figures, asserts nothing.

    .venv/bin/python benchmarks/bench_core.py [--tenants N] [--tasks N] [--decisions N]

Builds a backlog of ``--tasks`` queued tasks spread over ``--tenants`` tenants (random
priorities, two functions, one of them rate-limited), then times ``dispatch(now, 1)`` followed by
``succeeded`` for ``--decisions`` tasks: the per-decision cost with fairness, aging, limits and
AIMD on, against the same loop with a single tenant (the plain path).
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asynctask.core.limits import FunctionLimits, SchedulerSettings
from asynctask.core.retry import RetryPolicy
from asynctask.core.scheduler import Dispatch, Scheduler
from asynctask.model import LiveTask, TaskState


def build(tenants: int, tasks: int) -> Scheduler:
    settings = SchedulerSettings(
        capacity=8, functions={"m:limited": FunctionLimits(rate=1_000_000.0, burst=1000.0)}
    )
    core = Scheduler(RetryPolicy(), random.Random(0), settings)
    rng = random.Random(1)
    for seq in range(1, tasks + 1):
        tenant = f"t{rng.randrange(tenants)}"
        core.add(
            LiveTask(
                seq=seq,
                tenant=tenant,
                id=str(seq),
                function=rng.choice(("m:f", "m:limited")),
                queue=tenant,
                priority=rng.randrange(10),
                state=TaskState.QUEUED,
                payload=b"",
                options={},
                labels={},
                retries=3,
                timeout=None,
                created_at=0.0,
            ),
            0.0,
        )
    return core


def measure(core: Scheduler, decisions: int) -> list[float]:
    samples = []
    now = 1.0
    for _ in range(decisions):
        t0 = time.perf_counter()
        actions = core.dispatch(now, 1)
        samples.append(time.perf_counter() - t0)
        for action in actions:
            if isinstance(action, Dispatch):
                core.succeeded(action.task, None, now)
        now += 1e-5
    return sorted(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--decisions", type=int, default=200_000)
    args = parser.parse_args()
    for label, tenants in (("fair", args.tenants), ("single tenant", 1)):
        t0 = time.perf_counter()
        core = build(tenants, args.tasks)
        built = time.perf_counter() - t0
        gc.collect()
        gc.freeze()
        samples = measure(core, args.decisions)
        n = len(samples)
        print(
            f"{label}: {tenants:,} tenants, {args.tasks:,} queued (built in {built:.1f}s); "
            f"dispatch decision mean {sum(samples) / n * 1e6:.1f} us, "
            f"p50 {samples[n // 2] * 1e6:.1f} us, p99 {samples[int(n * 0.99)] * 1e6:.1f} us"
        )
        del core
        gc.unfreeze()


if __name__ == "__main__":
    main()
