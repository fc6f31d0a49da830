"""``StoreError`` and the one place where ``sqlite3`` errors become it.

The rest of the daemon must not know which database sits behind the store (a PostgreSQL store
is the scale-out path), so no ``sqlite3`` exception leaves ``asynctask.store``: every call into
SQLite runs inside ``map_errors``, which re-raises as ``StoreError`` with the original chained
as ``__cause__`` for the logs (httpcore's ``map_exceptions`` pattern).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from asynctask.errors import StorageError


class StoreError(StorageError):
    """The durable store could not do what was asked; nothing of the failed request is stored.

    Raised by ``Store`` methods and set on the futures of a write batch that did not commit (the
    whole batch, since a transaction is all or nothing). Causes: a disk or permission problem, a
    corrupt or too-new database, a write that broke a uniqueness rule (a daemon bug, since the
    daemon de-duplicates in memory first), or a use of a closed store. A client receiving it
    should treat its request as not done; the operator should read the daemon's log. On the
    wire it is a ``StorageError`` (code ``storage``).
    """


class Fenced(StoreError):
    """A write of a partition this daemon no longer holds was refused (docs/scale-out.md,
    fencing): another daemon owns the task now, and nothing of the write was stored. Not a
    failure to retry: the write's daemon stops acting for the partition."""


def describe(error: BaseException) -> str:
    """A message that says what went wrong in the daemon's terms, not SQLite's."""
    text = str(error)
    if isinstance(error, sqlite3.IntegrityError) and "UNIQUE" in text:
        if "tasks.tenant, tasks.id" in text:
            return f"a task with the same (tenant, id) is already stored ({text})"
        if "tasks.seq" in text:
            return f"a task with the same seq is already stored ({text})"
    name = getattr(error, "sqlite_errorname", None)
    if isinstance(name, str):
        text = f"{name}: {text}"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


#: SQLite error names after which this process's view of the files cannot be trusted: an I/O
#: error (a failed write or fsync: since Linux may drop the unwritten pages and report the
#: error only once, later commits could "succeed" on top of lost data - the fsyncgate lesson),
#: or a damaged file. Disk full (``SQLITE_FULL``), a read-only file or a busy lock are not among
#: them: SQLite rolls the transaction back and the files stay as the last commit left them.
#: Nor is a failure to grow or map the ``-shm`` index (``SQLITE_IOERR_SHM*``, which is what a
#: full tmpfs gives): that file holds no data and is rebuilt from the WAL.
_FATAL_PREFIXES: tuple[str, ...] = ("SQLITE_IOERR", "SQLITE_CORRUPT", "SQLITE_NOTADB")
_NOT_FATAL_PREFIXES: tuple[str, ...] = ("SQLITE_IOERR_SHM",)


def is_fatal(error: BaseException) -> bool:
    """Whether the write connection must not be used again after ``error`` (see above)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:  # StoreError chains the sqlite3 error
        seen.add(id(cause))
        name = getattr(cause, "sqlite_errorname", None)
        if isinstance(name, str) and name.startswith(_FATAL_PREFIXES):
            return not name.startswith(_NOT_FATAL_PREFIXES)
        cause = cause.__cause__
    return False


_MAPPED: tuple[type[Exception], ...] = (sqlite3.Error, OSError, ValueError, OverflowError)


@contextmanager
def map_errors(doing: str, also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Re-raise database and file-system errors as ``StoreError`` saying what we were ``doing``.

    ``also`` adds exception types the block may raise for the same reason (decoding a row).

    ``ValueError`` is included because aiosqlite raises it for a call on a closed connection
    (and ``sqlite3`` for a string it cannot encode), ``OverflowError`` because ``sqlite3`` raises
    it for an integer wider than 64 bits.
    """
    mapped = (*_MAPPED, *also)
    try:
        yield
    except StoreError:
        raise
    except mapped as error:
        raise StoreError(f"{doing} failed: {describe(error)}") from error
