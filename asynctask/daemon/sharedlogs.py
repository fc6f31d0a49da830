"""Attempt logs that every daemon of a cluster can read (issue 16; docs/scale-out.md,
"Attempt logs across daemons").

``AttemptLogs`` (the files in the home) stays the live path: a running attempt's output is
appended there and readable at once, on this daemon only. When an attempt ends,
``SharedLogs.finish`` closes its file as before and, on a PostgreSQL store, queues a copy of
the whole file (capped at ``max_log_bytes``, its truncation marker included) into the
``attempt_logs`` table (``store/pglogs.py``). ``read`` answers from the local files first and
asks the table only for the attempts with no file here: those that ran on another daemon.

The copy never blocks or fails the event loop. One background task (the copier) drains the
queue in batches: it reads the files in a thread, writes each batch in one statement, and on
a database error waits ``RETRY_DELAY`` and tries that batch once more; after that the batch is
dropped and a line is logged (rate-limited), the log staying readable on this daemon. The
queue holds (seq, attempt) pairs, not bytes, and is bounded (``MAX_PENDING``).

Without a PostgreSQL store (``remote`` None) every method is the local one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Final

from asynctask.daemon.attemptlogs import AttemptLog, AttemptLogs
from asynctask.server.loglimit import LogLimiter, held_back
from asynctask.store import StoreError
from asynctask.store.pglogs import PgAttemptLogs

log = logging.getLogger("asynctask.daemon")

#: Copies waiting at most; past it the newest ended attempts are not copied (and said so).
MAX_PENDING: Final = 10_000
#: Bytes one batch reads and writes at most (a batch holds one log at least).
BATCH_BYTES: Final = 8 * 1024 * 1024
#: Logs in one batch at most.
BATCH_LOGS: Final = 256
#: Seconds before the one retry of a batch that failed.
RETRY_DELAY: Final = 1.0


class SharedLogs:
    """The attempt logs of one daemon: ``local`` files, and on PostgreSQL ``remote`` copies
    of the ended attempts'. See the module docstring."""

    def __init__(self, local: AttemptLogs, remote: PgAttemptLogs | None) -> None:
        self.local = local
        self.remote = remote
        self._pending: deque[tuple[int, int]] = deque()
        self._copier: asyncio.Task[None] | None = None
        self._limiter = LogLimiter(10.0)
        self.copied = 0  # logs written to the table
        self.lost = 0  # logs not copied: queue full, file unreadable, or the database refused
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<SharedLogs remote={self.remote is not None} pending={len(self._pending)} "
            f"copied={self.copied} lost={self.lost}>"
        )

    @classmethod
    async def open(cls, local: AttemptLogs, url: str | None) -> SharedLogs:
        """With ``url`` (``[store] url``), connect to its ``attempt_logs`` table; the store
        has been opened first (it migrates the schema). Raises ``StoreError``."""
        return cls(local, await PgAttemptLogs.open(url) if url is not None else None)

    @property
    def batch_logs(self) -> int:
        """Logs per batch: ``BATCH_BYTES`` of full logs, at least one, at most ``BATCH_LOGS``."""
        return max(1, min(BATCH_LOGS, BATCH_BYTES // max(1, self.local.max_bytes)))

    # -- the life of an attempt -------------------------------------------------------------

    def finish(self, seq: int) -> None:
        """Task ``seq``'s attempt ended (``AttemptLogs.finish``); on PostgreSQL, copy its log
        in the background if it has one. Never blocks, never raises."""
        attempt = self.local.finish(seq)
        if attempt is None or self.remote is None or self._closed:
            return
        if len(self._pending) >= MAX_PENDING:
            self.lost += 1
            self._warn(
                "queue",
                "attempt %d of task %d: its log is not copied for the other daemons "
                "(%d copies already waiting)",
                attempt, seq, len(self._pending),
            )  # fmt: skip
            return
        self._pending.append((seq, attempt))
        if self._copier is None or self._copier.done():
            self._copier = asyncio.get_running_loop().create_task(
                self._copy(), name="asynctask-copy-logs"
            )

    async def read(self, seq: int, attempts: int, offsets: Mapping[int, int]) -> list[AttemptLog]:
        """``AttemptLogs.read``: each attempt's log from ``offsets[attempt]``, in attempt
        order; from this daemon's files, else (on PostgreSQL) from the table. Raises
        ``StoreError`` if the table cannot be read."""
        found = self.local.read(seq, attempts, dict(offsets))
        if self.remote is None or len(found) >= attempts:
            return found
        here = {entry.attempt for entry in found}
        stored = await self.remote.read(seq, attempts, offsets, skip=here)
        if not stored:
            return found
        found.extend(AttemptLog(entry.attempt, entry.size, entry.data) for entry in stored)
        found.sort(key=lambda entry: entry.attempt)
        return found

    async def forget(self, tasks: Sequence[tuple[int, int]]) -> None:
        """These tasks (seq, attempts) were deleted (their commit is done): remove their
        files (in a thread) and their rows. A failure is logged, never raised: the tasks are
        gone, and what is left is only space (``PgAttemptLogs.delete_orphans``)."""
        for seq, _ in tasks:
            self.local.finish(seq)
        names = [(seq, n) for seq, attempts in tasks for n in range(1, attempts + 1)]
        try:
            await asyncio.to_thread(self.local.unlink, names)
        except OSError as exc:
            self._warn("unlink", "cannot remove the logs of deleted tasks: %s", exc)
        if self.remote is not None and tasks:
            try:
                await self.remote.delete([seq for seq, _ in tasks])
            except StoreError as exc:
                self._warn("delete", "cannot delete the stored logs of deleted tasks: %s", exc)

    async def sweep(self) -> int:
        """Delete up to 1,000 stored logs whose task is gone (a daemon died between the two
        deletions), once at start-up. Returns how many; a failure is logged, never raised."""
        if self.remote is None:
            return 0
        try:
            return await self.remote.delete_orphans()
        except StoreError as exc:
            self._warn("sweep", "cannot delete the stored logs of deleted tasks: %s", exc)
            return 0

    async def flush(self) -> None:
        """Wait until every copy queued so far is written or given up."""
        while self._copier is not None and not self._copier.done():
            await asyncio.shield(self._copier)

    async def close(self, timeout: float = 5.0) -> None:
        """Finish every attempt still open (their logs are copied too), close the files, wait
        up to ``timeout`` seconds for the copies, and close the connection. Idempotent."""
        for seq, _ in self.local.running():
            self.finish(seq)
        self.local.close()
        self._closed = True
        copier, self._copier = self._copier, None
        if copier is not None and not copier.done():
            try:
                await asyncio.wait_for(asyncio.shield(copier), timeout)
            except TimeoutError:
                copier.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await copier
        if self._pending:
            self.lost += len(self._pending)
            log.warning("%d attempt logs were not copied for the other daemons before the stop",
                        len(self._pending))  # fmt: skip
            self._pending.clear()
        remote, self.remote = self.remote, None
        if remote is not None:
            with contextlib.suppress(StoreError):
                await remote.close()

    # -- the copier ---------------------------------------------------------------------------

    async def _copy(self) -> None:
        """Drain the queue, a batch at a time; it ends when the queue is empty."""
        try:
            while self._pending and self.remote is not None:
                size = min(self.batch_logs, len(self._pending))
                batch = [self._pending.popleft() for _ in range(size)]
                logs = await asyncio.to_thread(self._contents, batch)
                await self._store(logs)
        except Exception:  # a bug here must not end as an unretrieved task exception
            self._warn("bug", "copying attempt logs failed", exc_info=True)

    def _contents(self, batch: list[tuple[int, int]]) -> list[tuple[int, int, bytes]]:
        """The files of the batch (in a thread); an unreadable one is counted and logged."""
        logs = []
        for seq, attempt in batch:
            try:
                data = self.local.contents(seq, attempt)
            except OSError as exc:
                self.lost += 1
                self._warn("read", "attempt %d of task %d: cannot read its log to copy it: %s",
                           attempt, seq, exc)  # fmt: skip
                continue
            if data is not None:  # deleted meanwhile: nothing to copy
                logs.append((seq, attempt, data))
        return logs

    async def _store(self, logs: list[tuple[int, int, bytes]]) -> None:
        for retry in (True, False):
            remote = self.remote
            if remote is None or not logs:
                return
            try:
                await remote.store_many(logs)
            except StoreError as exc:
                if retry:
                    await asyncio.sleep(RETRY_DELAY)
                    continue
                self.lost += len(logs)
                self._warn("store", "%d attempt logs are not copied for the other daemons: %s",
                           len(logs), exc)  # fmt: skip
                return
            self.copied += len(logs)
            return

    def _warn(self, key: str, message: str, *args: object, exc_info: bool = False) -> None:
        held = self._limiter.allow(key)
        if held is not None:
            log.warning(message + "%s", *args, held_back(held), exc_info=exc_info,
                        extra={"event": "log_copy_failed"})  # fmt: skip
