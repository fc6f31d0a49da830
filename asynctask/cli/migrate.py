"""``asynctask migrate-store``: move a home's SQLite store into an empty PostgreSQL database.

Like ``doctor`` it works on the home without the daemon, and it requires the daemon stopped: it
takes the home's lock (``home.lock_home``, the daemon's own), so a daemon running there is
refused and none can start while the copy runs. The target is opened with the schema's writers' lock
held exclusive (``lock="exclusive"``; every daemon holds it shared), so no daemon runs on it
during the copy either. The copy
itself is ``store/migrate.py``'s, through the ``TaskStore`` protocol; the store is imported
only inside the command, so that other commands do not load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from asynctask.cli.app import HomeOpt, JsonOpt, printable, run_client
from asynctask.errors import StorageError, UsageError
from asynctask.paths import DATABASE_NAME, resolve_home


def migrate_store(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The target: a postgresql:// URL (libpq form; a Unix socket as "
            "?host=/run/postgresql, a schema as ?search_path=NAME).",
        ),
    ],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy this home's SQLite store (<home>/asynctask.db) into an empty PostgreSQL database
    or schema: every task, live and finished, with every field, the pauses, the cron entries
    and the tenants' uids. The daemon must be stopped (exit 2 if it runs on this home), and
    the target must hold no tasks, pauses, cron entries or uids (exit 2, nothing written; its
    tables are created if missing). Tasks are copied in batches, one transaction each; if any
    write fails, the tasks already written are deleted again, so a failed copy leaves the
    target empty (exit 2; run it again once the cause is fixed). The SQLite file stays in
    the home as it was: a backup, and the way back. Rows set aside at start-up (doctor lists
    them) are not copied. Prints the counts per kind, then the [store] url line to add to
    the home's config before starting the daemon again."""
    copied = run_client(lambda: _migrate(resolve_home(home), to))
    line = f"url = {json.dumps(to)}"
    if as_json:
        typer.echo(json.dumps({**copied, "config": f"[store]\n{line}"}))
        return
    states = ", ".join(f"{n} {state}" for state, n in copied["by_state"].items())
    typer.echo(f"tasks: {copied['tasks']}" + (f" ({states})" if states else ""))
    for kind in ("pauses", "crons", "tenant_uids"):
        typer.echo(f"{kind.replace('_', ' ')}: {copied[kind]}")
    typer.echo(
        "copied; now add to the home's config (asynctask.toml), then start the daemon:\n"
        f"[store]\n{line}"
    )


def _migrate(home: Path, url: str) -> dict[str, Any]:
    from asynctask.config import default_config_path, load_config
    from asynctask.home import lock_home
    from asynctask.store.open import POSTGRES_SCHEMES, is_url

    scheme = url.partition("://")[0].lower()
    if not is_url(url) or scheme not in POSTGRES_SCHEMES:
        raise UsageError(f"--to needs a postgresql:// URL, got {printable(url)!r}")
    if not home.is_dir():
        raise UsageError(f"{home}: no such home")
    configured = load_config(default_config_path(home)).store.url
    if configured is not None:
        raise UsageError(
            f"this home's config already sets [store] url: its daemon does not use "
            f"{home / DATABASE_NAME}; nothing to migrate"
        )
    database = home / DATABASE_NAME
    if not database.is_file():
        raise UsageError(f"{database}: no database in this home; nothing to migrate")
    try:
        lock: IO[str] = lock_home(home)
    except UsageError as exc:
        message = f"{exc.message}: stop it first (asynctask stop); nothing written"
        raise UsageError(message) from None
    try:
        return asyncio.run(_copy(str(database), url))
    finally:
        lock.close()


async def _copy(database: str, url: str) -> dict[str, Any]:
    from asynctask.store.errors import StoreError
    from asynctask.store.migrate import TargetNotEmpty, copy_store
    from asynctask.store.open import open_store, redacted
    from asynctask.store.sqlite import Store

    try:
        source = await Store.open(database)
    except StoreError as exc:
        raise StorageError(f"opening {database}: {exc}") from None
    try:
        try:
            target = await open_store(url, lock="exclusive")
        except StoreError as exc:
            raise StorageError(f"{redacted(url)}: {exc}; nothing written") from None
        try:
            copied = await copy_store(source, target)
        except TargetNotEmpty as exc:
            raise UsageError(f"{redacted(url)}: {exc}") from None
        except StoreError as exc:
            raise StorageError(str(exc)) from None
        finally:
            await _close(target)
    finally:
        await _close(source)
    return copied.as_dict()


async def _close(store: Any) -> None:
    from asynctask.store.errors import StoreError

    # What was to be committed already was (or failed, and was cleaned up) before this.
    with contextlib.suppress(StoreError):
        await store.close()
