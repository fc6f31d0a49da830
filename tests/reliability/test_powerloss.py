"""Power cuts replayed from the daemon's own write journal (benchmarks/reliability/powerloss.py):
``durability = "normal"`` must lose acknowledged submits (else the model could not see loss at
all) and ``"full"`` must lose none (docs/contract.md "Durable submit")."""

from __future__ import annotations

from pathlib import Path

from benchmarks.reliability import powerloss


def test_normal_durability_loses_acknowledged_tasks_positive_control(shim_lib: Path) -> None:
    result = powerloss.run(shim_lib, "normal", tasks=150, cuts=3, seed=1)
    assert all(cut.started for cut in result.cuts), [c.error for c in result.cuts]
    # the cut at the very end with the page cache dropped loses what followed the last checkpoint
    assert result.cuts[0].lost, result.summary()


def test_full_durability_loses_nothing_acknowledged(shim_lib: Path) -> None:
    result = powerloss.run(shim_lib, "full", tasks=150, cuts=4, seed=2)
    assert result.syncs >= result.tasks  # every acked submit was fsynced
    assert all(cut.started for cut in result.cuts), [c.error for c in result.cuts]
    assert result.cuts_losing == 0, result.summary()
