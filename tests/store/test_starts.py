"""The start journal (``store/starts.py``): what it reads back, and its two files' turns."""

from __future__ import annotations

from pathlib import Path

from asynctask.store import starts
from asynctask.store.starts import StartJournal, read_starts


def test_it_reads_the_highest_attempt_per_task_across_both_files(tmp_path: Path) -> None:
    journal = StartJournal(tmp_path)
    assert journal.started(7, 1)
    assert journal.started(8, 1)
    journal.switch()
    assert journal.started(7, 2)
    journal.close()
    assert read_starts(tmp_path) == {7: 2, 8: 1}


def test_torn_and_garbled_lines_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "starts.0").write_bytes(b"1 1\n2 x\nnot a line\n3 2\n4")  # "4": torn by a crash
    (tmp_path / "starts.1").write_bytes(b"\xff\xfe\n1 3 9\n-1 2\n")
    assert read_starts(tmp_path) == {1: 1, 3: 2}


def test_a_missing_journal_reads_as_empty(tmp_path: Path) -> None:
    assert read_starts(tmp_path) == {}


def test_a_file_is_emptied_only_once_rotated_and_taken_again_only_when_empty(
    tmp_path: Path,
) -> None:
    journal = StartJournal(tmp_path)
    for seq in range(starts.ROTATE_EVERY):
        assert journal.started(seq, 1)
    assert journal.switch_due()
    left = journal.switch()
    assert left == 0
    assert journal.started(99_999, 1)
    assert read_starts(tmp_path)[0] == 1  # the old file is kept until its writes committed
    for seq in range(starts.ROTATE_EVERY):
        journal.started(seq, 2)
    assert not journal.switch_due()  # file 0 still holds lines that may be needed
    journal.rotated(left)
    assert (tmp_path / "starts.0").stat().st_size == 0
    assert journal.switch_due()
    assert read_starts(tmp_path)[0] == 2
    journal.rotated(1)  # the current file is never emptied by a stale call
    assert read_starts(tmp_path)[99_999] == 1
    journal.reset()
    assert read_starts(tmp_path) == {}
    journal.close()
