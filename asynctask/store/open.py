"""``open_store``: the store a location names - a file path is SQLite, a URL PostgreSQL.

One function, so that whoever reads ``[store]`` from the configuration (the daemon, the
``migrate-store`` command) does not branch on the database itself. The PostgreSQL store is
imported only when a URL asks for it: SQLite users do not pay asyncpg's import at start-up.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from asynctask.store.schema import Durability
from asynctask.store.sqlite import Store

if TYPE_CHECKING:
    from asynctask.store.postgres import PostgresStore

#: libpq's URL schemes.
POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&]*")


def is_url(location: str) -> bool:
    """Whether ``location`` is a URL (``scheme://...``) rather than a file path."""
    return _SCHEME.match(location) is not None


async def open_store(
    location: str | os.PathLike[str], durability: Durability = "full", **options: Any
) -> Store | PostgresStore:
    """Open the store at ``location``: a ``postgresql://`` (or ``postgres://``) URL in libpq's
    form (a Unix socket as ``?host=/run/postgresql``; other query parameters are server
    settings, e.g. ``search_path``), or else the path of the SQLite file.

    ``options`` go to the store's ``open`` (``max_batch``; ``readers`` for PostgreSQL).
    Raises ``ValueError`` for a URL of another scheme, ``StoreError`` when the store cannot
    be opened."""
    text = os.fspath(location)
    match = _SCHEME.match(text)
    if match is None:
        return await Store.open(text, durability, **options)
    if match.group(1).lower() not in POSTGRES_SCHEMES:
        raise ValueError(
            f"unsupported store URL scheme {match.group(1)!r}: use a file path (SQLite) or a "
            "postgresql:// URL"
        )
    from asynctask.store.postgres import PostgresStore

    return await PostgresStore.open(text, durability, **options)


def redacted(location: str) -> str:
    """``location`` without a password (in the user part or a ``password=`` parameter), for
    messages and logs; a file path is unchanged."""
    scheme, sep, rest = location.partition("://")
    if not sep:
        return location
    rest = _PASSWORD_PARAMETER.sub(r"\1***", rest)
    location = f"{scheme}://{rest}"
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    credentials, at, host = authority.rpartition("@")
    if not at or ":" not in credentials:
        return location
    return f"{scheme}://{credentials.split(':', 1)[0]}@{host}{tail}"
