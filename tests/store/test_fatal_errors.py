"""Which storage errors stop the writer for good (``errors.is_fatal``)."""

from __future__ import annotations

import sqlite3

import pytest

from asynctask.store.errors import StoreError, is_fatal


def _sqlite_error(name: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorname = name  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("name", "fatal"),
    [
        ("SQLITE_IOERR_FSYNC", True),  # fsyncgate: the page cache is in doubt
        ("SQLITE_IOERR_WRITE", True),
        ("SQLITE_IOERR", True),
        ("SQLITE_CORRUPT", True),
        ("SQLITE_NOTADB", True),
        ("SQLITE_FULL", False),  # rolled back; the files are as the last commit left them
        ("SQLITE_READONLY", False),
        ("SQLITE_BUSY", False),
        ("SQLITE_IOERR_SHMSIZE", False),  # the -shm index: no data, rebuilt from the WAL
    ],
)
def test_only_errors_that_leave_the_files_in_doubt_are_fatal(name: str, fatal: bool) -> None:
    assert is_fatal(_sqlite_error(name)) is fatal
    wrapped = StoreError("a write batch failed")
    wrapped.__cause__ = _sqlite_error(name)
    assert is_fatal(wrapped) is fatal  # found through the chain


def test_errors_without_a_sqlite_name_are_not_fatal() -> None:
    assert not is_fatal(OSError(28, "No space left on device"))
    assert not is_fatal(StoreError("the store is closed"))
