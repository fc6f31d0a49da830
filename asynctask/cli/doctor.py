"""``asynctask doctor``: what is wrong with the stored state, without needing the daemon.

It reads the database file read-only (``store/health.py``), so it answers whether the daemon
is running, stopped, or unable to start. Exit 0 when nothing is found; ``EXIT_FOUND`` when rows
were set aside at start-up or the integrity check failed, so a script can alert on it.
"""

from __future__ import annotations

import json
from typing import Any, Final

from asynctask.cli.app import printable
from asynctask.model import format_time
from asynctask.store.health import Health

#: ``doctor``'s exit code when it found something (docs/contract.md, "Exit codes").
EXIT_FOUND: Final = 5


def report(health: Health) -> dict[str, Any]:
    """The findings as ``--json`` prints them."""
    return {
        "database": health.path,
        "exists": health.exists,
        "schema_version": health.schema_version,
        "size": health.size,
        "wal_size": health.wal_size,
        "pages": health.pages,
        "free_pages": health.free_pages,
        "integrity": health.integrity,
        "problems": health.problems,
        "quarantined": [
            {
                "id": row.id,
                "table": row.source,
                "key": row.key,
                "error": row.error,
                "at": format_time(row.at),
                "row": row.row,
            }
            for row in health.quarantined
        ],
        "healthy": health.healthy,
    }


def render(health: Health, as_json: bool) -> str:
    if as_json:
        return json.dumps(report(health))
    if not health.exists:
        return f"database: {health.path}: none yet (nothing stored)\nhealthy"
    lines = [
        f"database: {health.path} (schema {health.schema_version}, {health.size} bytes, "
        f"WAL {health.wal_size} bytes, {health.pages} pages, {health.free_pages} free)",
        f"integrity: {health.integrity}",
    ]
    lines += [f"  {printable(problem)}" for problem in health.problems]
    lines.append(f"quarantined rows: {len(health.quarantined)}")
    for row in health.quarantined:
        lines.append(
            f"  #{row.id} {row.source} {printable(row.key)} at {format_time(row.at)}: "
            f"{printable(row.error)}"
        )
    if health.quarantined:
        lines.append(
            "  (set aside at start-up; `doctor --json` shows each whole row; "
            "DELETE FROM quarantine WHERE id = N forgets one)"
        )
    lines.append("healthy" if health.healthy else "problems found")
    return "\n".join(lines)
