"""A private PostgreSQL cluster for the PostgreSQL peers (procrastinate), run by run.py.

    .venv/bin/python benchmarks/peers/pgserver.py     # prints {"url": ..., "version": ...}

Why a helper process rather than code in run.py: the cluster is the tests' own
(``tests/pgcluster.py``: ``initdb`` in a temporary directory, as ``nobody`` when run as root,
a Unix socket in that directory and no TCP port, ``fsync=on``, ``synchronous_commit=on``), so the
peer's broker is as durable as our daemon's PostgreSQL store with durability full, and it is
reused rather than copied. That module needs the project's venv (asyncpg, pytest), while run.py
stays standard-library only and runs from a peer venv. So run.py starts this script with the
project's Python; it starts the cluster, prints one JSON line (the URL of its database over the
socket, the server's version), waits until its standard input closes or it gets SIGTERM, then
stops the cluster and deletes its files.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests import pgcluster  # noqa: E402


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwind through the finally: the cluster gets stopped


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    # _start(), not cluster(): cluster() turns a failure into a pytest skip; here it must raise
    running = pgcluster._start()
    try:
        version = subprocess.run(
            [str(running.bindir / "postgres"), "--version"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(json.dumps({"url": running.url(), "version": version}), flush=True)
        sys.stdin.read()  # until run.py closes the pipe (or exits)
    finally:
        running.stop()


if __name__ == "__main__":
    main()
