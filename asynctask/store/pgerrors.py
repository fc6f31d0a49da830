"""The one place where ``asyncpg`` errors become ``StoreError`` (``errors.py`` does it for
``sqlite3``): the daemon must not know which database sits behind the store, so no driver
exception leaves ``asynctask.store``. The original stays chained as ``__cause__`` for the logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from asynctask.store.errors import StoreError

#: Constraint names (``pgschema``) and what breaking them means in the daemon's terms; the
#: contract suite checks these phrases.
_UNIQUE: dict[str, str] = {
    "tasks_tenant_id": "a task with the same (tenant, id) is already stored",
    "tasks_pkey": "a task with the same seq is already stored",
    "tenant_uids_pkey": "the tenant already has a uid",
    "tenant_uids_uid_key": "the uid is already another tenant's",
}

#: What the server says when it goes away (class 57P: shutdown, crash, "cannot connect now").
_GONE_SQLSTATES = ("57P01", "57P02", "57P03")


def describe(error: BaseException) -> str:
    """A message in the daemon's terms, with the server's own words (and SQLSTATE) kept."""
    text = str(error)
    if isinstance(error, asyncpg.UniqueViolationError):
        meaning = _UNIQUE.get(getattr(error, "constraint_name", None) or "")
        if meaning is not None:
            return f"{meaning} ({text})"
    code = getattr(error, "sqlstate", None)
    if isinstance(code, str):
        text = f"{code}: {text}"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def is_fatal(error: BaseException) -> bool:
    """Whether the write connection is gone (see ``pgwriter``): a batch on it may or may not
    have committed, so the owner must re-open the store rather than carry on."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        # InternalClientError: the driver's protocol state broke (the server's goodbye arrived
        # while a statement was being sent); that connection cannot be trusted either.
        if isinstance(
            cause, asyncpg.PostgresConnectionError | asyncpg.InternalClientError | OSError
        ):
            return True
        if getattr(cause, "sqlstate", None) in _GONE_SQLSTATES:
            return True
        if isinstance(cause, asyncpg.InterfaceError) and "closed" in str(cause):
            return True
        cause = cause.__cause__
    return False


_MAPPED: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,  # includes ConnectionError and TimeoutError
    ValueError,  # includes UnicodeError: text PostgreSQL cannot hold
    OverflowError,  # an integer wider than the column
)


@contextmanager
def map_errors(doing: str, also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Re-raise driver and connection errors as ``StoreError`` saying what we were ``doing``."""
    try:
        yield
    except StoreError:
        raise
    except (*_MAPPED, *also) as error:
        raise StoreError(f"{doing} failed: {describe(error)}") from error
