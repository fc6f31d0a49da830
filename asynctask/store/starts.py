"""The start journal: each attempt's number is on disk before the attempt starts.

Why: an interrupted attempt counts (docs/contract.md, "Attempts"). The database learns that an
attempt started from its "running" write, which commits with the next group commit. Had the
attempt already begun when the daemon was killed before that commit, the next start found the
task queued and ran the same attempt number again (3 of 5 re-runs after a kill -9 did, with the
writer busy). Holding each attempt until its "running" write commits closes that window, but
costs a commit (an fsync) between two tasks on the same worker: measured here, the no-op drain
fell from 4,052 to 1,556 tasks/s.

So the daemon appends ``seq attempt`` lines to this journal, one ``write`` per attempt, before
it hands the attempt to a worker; the "running" write follows in the next group commit as
before. A ``write`` that returned survives a kill -9 of the daemon (the kernel holds the page),
and costs microseconds. At start-up the daemon reads the journal: a live task whose stored
attempt count is below the journal's started that attempt, which is then counted as
interrupted, exactly as a stored "running" one is.

Not fsynced: after a power cut an attempt that started in the last moments before it may be
counted again (the worker died with the machine). When the journal cannot be written (disk
full), the daemon falls back to holding the attempt until its "running" write commits.

Two files take turns, so the journal stays small without a rewrite: once ``ROTATE_EVERY`` lines
went to one, new lines go to the other, and the first is emptied as soon as every "running"
write put before the switch has committed (the owner calls ``rotated`` then).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

#: Lines written to one file before the other takes over.
ROTATE_EVERY: Final = 4096
NAMES: Final = ("starts.0", "starts.1")


def read_starts(directory: Path) -> dict[int, int]:
    """Every ``seq`` in the journal and the highest attempt number started for it. A torn or
    garbled line (a crash mid-write, a hand edit) is skipped."""
    started: dict[int, int] = {}
    for name in NAMES:
        try:
            data = (directory / name).read_bytes()
        except FileNotFoundError:
            continue
        for line in data.split(b"\n"):
            fields = line.split(b" ")
            if len(fields) != 2 or not fields[0].isdigit() or not fields[1].isdigit():
                continue
            seq, attempt = int(fields[0]), int(fields[1])
            if attempt > started.get(seq, 0):
                started[seq] = attempt
    return started


class StartJournal:
    """Open with ``StartJournal(directory)``; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        self._fds = [os.open(directory / name, flags, 0o600) for name in NAMES]
        self._current = 0
        self._lines = 0  # written to the current file
        self._emptied = [True, True]  # the other file may take over only once it is empty
        self.failed = False  # the latest write failed (disk full)

    def __repr__(self) -> str:
        return f"<StartJournal file={NAMES[self._current]} lines={self._lines}>"

    def started(self, seq: int, attempt: int) -> bool:
        """Record that attempt ``attempt`` of task ``seq`` is about to start; ``False`` if the
        write failed, and then the caller must wait for the database instead."""
        try:
            os.write(self._fds[self._current], b"%d %d\n" % (seq, attempt))
        except OSError:
            self.failed = True
            return False
        self.failed = False
        self._lines += 1
        self._emptied[self._current] = False
        return True

    def switch_due(self) -> bool:
        """Whether to switch files now: the current one is full and the other is empty."""
        return self._lines >= ROTATE_EVERY and self._emptied[1 - self._current]

    def switch(self) -> int:
        """New lines go to the other file; returns the index of the one left behind, which the
        owner empties with ``rotated`` once the writes put so far have committed."""
        left = self._current
        self._current = 1 - left
        self._lines = 0
        return left

    def rotated(self, index: int) -> None:
        """Every attempt recorded in file ``index`` has its "running" write committed."""
        if index == self._current:
            return
        os.ftruncate(self._fds[index], 0)
        self._emptied[index] = True

    def reset(self) -> None:
        """Empty both files: start-up has stored what they said."""
        for index, fd in enumerate(self._fds):
            os.ftruncate(fd, 0)
            self._emptied[index] = True
        self._lines = 0

    def close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
