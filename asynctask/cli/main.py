"""The ``asynctask`` command line: the table of commands, and the console entry point.

The commands live by verb family: ``cli/daemon.py`` (daemon, ping, stop, reload, doctor),
``cli/migrate.py`` (migrate-store), ``cli/tasks.py`` (submit, status, wait, result, logs,
inspect), ``cli/selectors.py`` (cancel, delete, retry, pause, resume), ``cli/views.py``
(list, queues, stats, nodes, metrics, top), ``cli/cron.py`` (cron add/list/remove),
``cli/health.py`` (health, for probes); what they share is in ``cli/app.py``. They are
registered here, in one table, because typer lists commands in the order they are registered,
and ``asynctask --help`` keeps the order users know. Only ``asynctask daemon`` imports the
daemon; everything else is a client. The console script enters through ``cli/entry.py``, which
says what to install when an extra is missing.
"""

from __future__ import annotations

from typing import Annotated

import typer

from asynctask.cli import cron, daemon, health, migrate, selectors, tasks, views, webtoken
from asynctask.cli.app import app, fail, os_error
from asynctask.cli.entry import version_line
from asynctask.errors import UsageError


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            help="Print the version and exit.",
            callback=_show_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    # The app's help is Typer(help=...) in cli/app.py; this callback only adds --version.
    pass


# The commands, in the order --help lists them.
app.command()(daemon.daemon)
app.command()(daemon.ping)
app.command()(health.health)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    tasks.submit
)
app.command()(tasks.status)
app.command()(tasks.wait)
app.command()(tasks.result)
app.command()(selectors.cancel)
app.command()(selectors.delete)
app.command()(selectors.retry)
app.command("list")(views.list_tasks)
app.command()(selectors.pause)
app.command()(selectors.resume)
app.command()(tasks.logs)
app.command()(tasks.inspect)
app.command()(daemon.stop)
app.command()(daemon.reload)
app.command()(daemon.doctor)
app.command()(migrate.migrate_store)
app.command()(views.stats)
app.command()(views.nodes)
app.command()(views.metrics)
app.command()(views.queues)
app.command()(views.top)
app.command("web-token")(webtoken.web_token)
app.add_typer(cron.cron_app, name="cron")


def main() -> None:
    try:
        app(prog_name="asynctask")
    except UsageError as exc:  # pragma: no cover - commands turn these into exits
        fail(exc.message)
    except OSError as exc:  # pragma: no cover - an unwritable home or file a command missed
        fail(os_error(exc, "asynctask"))
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":  # pragma: no cover
    main()
