"""``GcPauses``: a slow full collection freezes its survivors, so the next ones walk less."""

from __future__ import annotations

import gc

from asynctask.daemon.gcpause import GcPauses


def test_a_slow_full_collection_freezes_its_survivors() -> None:
    pauses = GcPauses(slow=0.0)  # every full collection counts as slow
    kept = [[n] for n in range(50_000)]  # long-lived containers
    gc.unfreeze()
    pauses.install()
    try:
        gc.collect()
        assert pauses.full >= 1
        assert pauses.freezes >= 1
        assert gc.get_freeze_count() >= len(kept)  # out of the next collections' walk
    finally:
        pauses.remove()
        gc.unfreeze()
    assert pauses._callback not in gc.callbacks


def test_a_quick_full_collection_freezes_nothing() -> None:
    pauses = GcPauses(slow=3600.0)
    gc.unfreeze()
    pauses.install()
    try:
        gc.collect()
        assert pauses.full >= 1
        assert pauses.freezes == 0
        assert gc.get_freeze_count() == 0
    finally:
        pauses.remove()
