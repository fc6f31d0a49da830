"""The daemon's life cycle: ``daemon`` (run it, or ``--detach`` it), ``ping``, ``stop``,
``reload`` and ``doctor``.

Only ``daemon`` imports the daemon itself, lazily inside the command, so that every other
command starts without loading the server, the store and the executor; ``ping``, ``stop`` and
``reload`` talk to it as a client. ``doctor`` reads the database file read-only instead, so it
answers when no daemon runs or one cannot start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from asynctask.cli.app import (
    HomeOpt,
    JsonOpt,
    SocketOpt,
    client_for,
    duration_opt,
    fail,
    os_error,
    printable,
    run_client,
)
from asynctask.cli.probe import alive as _alive
from asynctask.cli.probe import home_daemon_pid as _home_daemon_pid
from asynctask.client import Client
from asynctask.errors import EXIT_USAGE, EXIT_WAIT_TIMEOUT, AsynctaskError, DaemonUnavailable
from asynctask.paths import DATABASE_NAME, LOG_DIR, resolve_home, resolve_socket


def daemon(
    home: HomeOpt = None,
    socket: SocketOpt = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config file (default: <home>/asynctask.toml)."),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Start in the background; return once it serves.")
    ] = False,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="text (a sentence, then k=v fields) or json (one object a line); "
            "default: [daemon] log_format.",
        ),
    ] = None,
) -> None:
    """Run the daemon in the foreground (or --detach it); the socket exists once it serves.

    It exits 0 after a stop, and 75 after a storage I/O error (a failed write or fsync): start
    it again, and it re-opens the database from what is on disk. The database is
    <home>/asynctask.db (SQLite) unless the config's [store] url names a PostgreSQL one."""
    from asynctask.config import default_config_path, load_config

    home_dir = resolve_home(home)
    socket_path = resolve_socket(socket, home)
    config_path = config if config is not None else default_config_path(home_dir)
    try:
        cfg = load_config(config_path)
    except AsynctaskError as exc:
        fail(exc.message)
    if log_format not in (None, "text", "json"):
        fail(f"--log-format must be text or json, not {log_format!r}")
    if detach:
        _detach(
            home_dir, socket_path, config_path, log_level, log_format, bool(cfg.auth.users),
            sqlite=cfg.store.url is None,
        )  # fmt: skip
        return
    from asynctask.daemon import run_daemon
    from asynctask.logs import setup_logging

    setup_logging(log_level or cfg.daemon.log_level, log_format or cfg.daemon.log_format)
    try:
        run_daemon(cfg, home_dir, socket_path)
    except AsynctaskError as exc:
        fail(exc.message)
    except OSError as exc:  # a read-only or unwritable home: one line, not a traceback
        fail(os_error(exc, f"the home {home_dir}"))


def _detach(
    home: Path,
    socket_path: Path,
    config: Path | None,
    log_level: str | None,
    log_format: str | None,
    shared: bool,
    sqlite: bool,
) -> None:
    from asynctask.home import open_private, prepare_home

    try:  # before the log is written in it: the daemon would refuse the home anyway
        prepare_home(home, shared=shared, sqlite=sqlite)  # the daemon logs what it tightened
    except AsynctaskError as exc:
        fail(exc.message)
    except OSError as exc:
        fail(f"cannot prepare the home: {os_error(exc, str(home))}")
    try:
        log_fd = open_private(home / LOG_DIR / "daemon.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except AsynctaskError as exc:
        fail(exc.message)
    except OSError as exc:
        fail(f"cannot open the daemon log: {os_error(exc, str(home / LOG_DIR))}")
    log_path = home / LOG_DIR / "daemon.log"
    argv = [sys.executable, "-m", "asynctask", "daemon", "--home", str(home)]
    argv += ["--socket", str(socket_path)]
    if config is not None:
        argv += ["--config", str(config)]
    if log_level:
        argv += ["--log-level", log_level]
    if log_format:
        argv += ["--log-format", log_format]
    with open(log_fd, "ab") as log_file:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    client = Client(socket_path, connect_timeout=0.5)
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            fail("the daemon exited at start-up:\n" + "\n".join(tail))
        try:
            info = client.ping()
        except DaemonUnavailable:
            time.sleep(0.05)
            continue
        if info.get("pid") == child.pid:
            typer.echo(f"daemon started: pid {child.pid}, socket {socket_path}, log {log_path}")
            return
        fail(f"another daemon (pid {info.get('pid')}) already serves on {socket_path}")
    fail(f"the daemon did not answer within 30s; see {log_path}")


def ping(home: HomeOpt = None, socket: SocketOpt = None, as_json: JsonOpt = False) -> None:
    """Exit 0 when the daemon answers and can store (for scripts and readiness checks); 2 when
    it answers but its storage is failing (disk full, I/O error: it serves reads, refuses
    writes with `storage`, and recovers by itself once the disk does); 3 when none answers,
    saying so when the home's daemon is still there (starting, or stopping after `stop`)."""
    try:
        info = client_for(home, socket).ping()
    except DaemonUnavailable as exc:
        pid = _home_daemon_pid(home)
        if pid is not None:
            fail(
                f"the daemon (pid {pid}) is not answering: it is stopping or starting",
                exc.exit_code,
            )
        fail(exc.message, exc.exit_code)
    except AsynctaskError as exc:
        fail(exc.message, exc.exit_code)
    info.pop("rid", None)
    info.pop("ok", None)
    storage = info.get("storage") or {"ok": True}  # an older daemon does not say
    if as_json:
        typer.echo(json.dumps(info))
    else:
        stopping = ", stopping" if info.get("stopping") else ""
        typer.echo(
            f"pong: pid {info['pid']}, version {info['version']}, up {info['uptime']:.0f}s"
            f"{stopping}"
        )
    if not storage.get("ok", True):
        for_ = storage.get("failing_for")
        since = f" for {for_:.0f}s" if isinstance(for_, int | float) else ""
        fail(f"storage failing{since}: {printable(str(storage.get('error')))}", EXIT_USAGE)


def stop(
    drain: Annotated[
        str | None,
        typer.Option(
            "--drain", help="Let running attempts finish for up to this long (default: config)."
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Return once the daemon has exited.")
    ] = True,
    home: HomeOpt = None,
    socket: SocketOpt = None,
) -> None:
    """Stop the daemon: no new work; running attempts finish within --drain, the rest are
    queued again for the next start (never lost). Returns once the daemon's process has
    exited (so `stop && asynctask daemon --detach` works); exit 4 if it has not within
    --drain plus 30s."""
    client = client_for(home, socket)
    seconds = duration_opt(drain, "--drain")
    pid = run_client(client.ping).get("pid")  # an older daemon's stop reply has no pid
    reply = run_client(lambda: client.stop(seconds))
    pid = reply.get("pid", pid)
    typer.echo(f"stopping (draining for up to {reply['drain']:g}s)")
    if not wait:
        return
    limit = float(reply["drain"]) + STOP_MARGIN
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not (_alive(pid) if isinstance(pid, int) else _answers(home, socket)):
            typer.echo("stopped")
            return
        time.sleep(0.05)  # polling a process that is draining; nothing to wake us
    fail(f"the daemon (pid {pid}) did not exit within {limit:g}s", EXIT_WAIT_TIMEOUT)


#: Seconds ``stop`` waits beyond ``--drain`` for the daemon to exit (store flush, workers).
STOP_MARGIN = 30.0


def _answers(home: Path | None, socket: Path | None) -> bool:
    try:
        client_for(home, socket).ping()
    except DaemonUnavailable:
        return False
    return True


def reload(home: HomeOpt = None, socket: SocketOpt = None, as_json: JsonOpt = False) -> None:
    """Replace the daemon's workers so edited task code is picked up, and re-read the config
    file (admins only; SIGHUP does the same). Idle workers go now, busy ones once their
    running attempts finish on the old code. Live keys (tenant, queue and function limits,
    scheduler affinity/reserve/caps, retry.retries, workers.timeout, daemon.log_level) take
    effect; other changed keys are listed as needing a restart and keep their old value. A
    config file with an error changes nothing (exit 2); the daemon keeps running."""
    reply = run_client(lambda: client_for(home, socket).reload())
    error = reply.get("error")
    if as_json:
        typer.echo(json.dumps(reply))
    else:
        typer.echo(f"replacing {reply['workers']} worker(s)")
        if "config" in reply:
            where = printable(str(reply["config"]))
            for what, keys in (("applied", "applied"), ("needs a restart", "restart")):
                if reply[keys]:
                    typer.echo(f"config {where}: {what}: {', '.join(reply[keys])}")
            if not error and not reply["applied"] and not reply["restart"]:
                typer.echo(f"config {where}: no change")
    if error:
        fail(f"config not applied (the daemon keeps its current config): {printable(error)}")


def doctor(
    home: HomeOpt = None,
    as_json: JsonOpt = False,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="quick_check instead of integrity_check (large databases)."),
    ] = False,
) -> None:
    """Check the stored state; works whether or not the daemon runs (it reads the database
    read-only). Reports the rows set aside at start-up because they could not be used (table,
    key, error, when) and SQLite's integrity check. Exit 0 when healthy, 5 when something is
    found. It checks the SQLite file in the home only: when the home's config sets
    [store] url (PostgreSQL), it says so and exits 2."""
    from asynctask.cli.doctor import EXIT_FOUND, render
    from asynctask.config import default_config_path, load_config
    from asynctask.store.health import examine

    home_dir = resolve_home(home)
    try:  # the home's own config: the one a daemon started with --home alone reads
        url = load_config(default_config_path(home_dir)).store.url
    except AsynctaskError as exc:
        fail(exc.message)
    if url is not None:
        fail(
            "doctor checks the embedded SQLite file only, and this home's config sets "
            "[store] url (PostgreSQL), which it does not check yet; there, rows set aside at "
            "start-up are in the quarantine table (SELECT * FROM quarantine), and the "
            "server checks its own storage"
        )
    health = examine(home_dir / DATABASE_NAME, quick=quick)
    typer.echo(render(health, as_json))
    if not health.healthy:
        raise typer.Exit(EXIT_FOUND)
