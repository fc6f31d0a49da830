"""A private PostgreSQL cluster for the tests: one per pytest session, Unix socket only.

Why a cluster of our own rather than a server the machine may run: the tests must not depend on
(or disturb) anybody's database, and they must see PostgreSQL's real durability settings, so
the cluster is created with ``initdb`` in a temporary directory (``--no-sync``: flushing the new,
throwaway files would only cost seconds), started with ``fsync=on`` and
``synchronous_commit=on``, listens on a Unix socket in that directory and on no TCP port at
all (``listen_addresses=''``: nothing on the machine's network can reach it, and two sessions
never fight over a port), and is stopped and deleted when the session ends.

``initdb`` and ``postgres`` refuse to run as root, and the tests run as root in CI, so then the
cluster runs as ``nobody``: a user that exists on every Debian, owns nothing, and needs no
``useradd`` (changing ``/etc/passwd`` from a test run would race with other sessions doing the
same). The temporary directory is made directly under ``/tmp`` because pytest's own temporary
directories are private to root and ``nobody`` could not enter them.

Where PostgreSQL's binaries cannot be found (``scripts/install-postgres`` installs them, and
``make test`` runs it), or the cluster cannot start, ``cluster()`` skips the test with the
reason, so a missing PostgreSQL is always visible in pytest's summary, never a silent pass; in
CI (``ASYNCTASK_REQUIRE_POSTGRES`` set) it fails them instead, since there it must start.

Isolation: one database (``asynctask_test``), one schema per store directory (``schema_for``):
``CREATE DATABASE`` costs a third of a second with ``fsync=on`` (it syncs a copy of the
template), a schema a millisecond. The store reaches its schema through ``search_path`` in the
URL, as a user would put one deployment per schema.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest

DATABASE = "asynctask_test"
SUPERUSER = "postgres"
#: Set (CI sets it in .ci/run): a cluster that cannot start fails the tests instead of skipping.
REQUIRE_ENV = "ASYNCTASK_REQUIRE_POSTGRES"
#: Who runs the cluster when the tests run as root.
UNPRIVILEGED = "nobody"


def find_bindir() -> Path | None:
    """The newest PostgreSQL major's binaries: ``initdb`` on PATH, else Debian's layout."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    majors = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in majors)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres", "createdb")):
            return bindir
    return None


@dataclass
class Cluster:
    """A running cluster: where its socket is, and how to reach a database in it."""

    root: Path
    bindir: Path
    socket_dir: Path
    run_as: str | None

    def url(self, database: str = DATABASE, **settings: str) -> str:
        """A libpq-style URL of ``database`` over the socket (``host`` is the directory)."""
        query = "&".join(
            f"{key}={quote(value, safe='')}"
            for key, value in {"host": str(self.socket_dir), **settings}.items()
        )
        return f"postgresql://{SUPERUSER}@/{database}?{query}"

    def stop(self) -> None:
        """Stop the server and delete everything it wrote. ``immediate``: the data is thrown away,
        so the shutdown checkpoint (an fsync of every schema's files, seconds) would be wasted."""
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        user = self.run_as
        return subprocess.run(
            [str(self.bindir / tool), *args],
            check=True,
            capture_output=True,
            text=True,
            cwd=self.root,  # a directory the cluster's user may enter
            user=user,
            group=_group_of(user) if user is not None else None,
            extra_groups=[] if user is not None else None,
            timeout=120,
        )


_cluster: Cluster | None = None
_failure: str | None = None


def cluster() -> Cluster:
    """The session's cluster, started on first use; skips the calling test if it cannot be."""
    global _cluster, _failure
    if _cluster is not None:
        return _cluster
    if _failure is None:
        try:
            _cluster = _start()
        except _Unavailable as exc:
            _failure = str(exc)
        else:
            atexit.register(stop)  # a session fixture stops it earlier; this is the backstop
            return _cluster
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"PostgreSQL unavailable, and {REQUIRE_ENV} is set: {_failure}")
    pytest.skip(f"PostgreSQL unavailable: {_failure}")


def stop() -> None:
    """Stop the session's cluster, if one was started."""
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None


def schema_for(directory: Path) -> str:
    """A schema name for a test's directory: the same directory reopens the same schema."""
    return "t_" + hashlib.sha1(str(directory).encode()).hexdigest()[:16]


async def url_for(directory: Path) -> str:
    """The URL of a schema of its own for ``directory`` (created if missing)."""
    running = cluster()
    schema = schema_for(directory)
    conn = await asyncpg.connect(running.url())
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    finally:
        await conn.close()
    return running.url(search_path=schema)


class _Unavailable(Exception):
    pass


def _group_of(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def _start() -> Cluster:
    bindir = find_bindir()
    if bindir is None:
        raise _Unavailable(
            "no initdb/pg_ctl/postgres on PATH or under /usr/lib/postgresql/*/bin; "
            "run scripts/install-postgres (make test does)"
        )
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(UNPRIVILEGED)
        except KeyError:
            raise _Unavailable(
                f"running as root and there is no user {UNPRIVILEGED!r} to run PostgreSQL as"
            ) from None
        run_as = UNPRIVILEGED
    root = Path(tempfile.mkdtemp(prefix="asynctask-pg-", dir="/tmp"))
    socket_dir = root / "sock"
    socket_dir.mkdir()
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        for path in (root, socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    running = Cluster(root, bindir, socket_dir, run_as)
    data = root / "data"
    try:
        running._run(
            "initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-instructions", "--no-sync",
        )  # fmt: skip
        options = (
            f"-k {socket_dir} -c listen_addresses='' -c fsync=on -c synchronous_commit=on "
            "-c full_page_writes=on -c max_connections=200"
        )
        running._run(
            "pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-o", options, "start"
        )
        # The database the schemas live in (createdb ships with the server's binaries).
        subprocess.run(
            [str(bindir / "createdb"), "-h", str(socket_dir), "-U", SUPERUSER, DATABASE],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", None) or ""
        log = root / "log"
        if log.is_file():
            detail += log.read_text(errors="replace")[-2000:]
        running.stop()
        raise _Unavailable(f"the private cluster did not start: {exc}; {detail}".strip()) from exc
    return running
