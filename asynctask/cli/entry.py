"""The ``asynctask`` console script: the command line when its extras are installed, one line
saying what to install when they are not.

The distribution's base install is the client only (``msgpack``, ``msgspec``), for a web app
that submits tasks and nothing else. The command line needs the ``cli`` extra (typer, rich) and
the daemon the ``daemon`` extra (the stores' drivers, uvloop, croniter; ``cli`` included). A
client-only user who runs ``asynctask`` must not get a traceback about ``typer``: this module
imports nothing beyond the standard library before the command line itself, and turns the
``ModuleNotFoundError`` of an extra's package into the ``pip install`` line that fixes it.
``--version`` is answered here too, so it works in any install, and so is ``health``
(``cli/probe.py``), so that a probe does not pay for importing the whole command line.
"""

from __future__ import annotations

import sys
from typing import Final

#: The distribution's name on the package index (``asynctask`` there is another project).
DISTRIBUTION: Final = "asynctaskd"

#: Top-level modules of each extra's packages (and of what they pull in), to the extra that
#: brings them. A module missing from neither list is a real bug: re-raised.
EXTRA_OF: Final = {
    "typer": "cli",
    "click": "cli",
    "rich": "cli",
    "pygments": "cli",
    "markdown_it": "cli",
    "shellingham": "cli",
    "aiosqlite": "daemon",
    "asyncpg": "daemon",
    "uvloop": "daemon",
    "croniter": "daemon",
    "dateutil": "daemon",
}

EXIT_MISSING_EXTRA: Final = 2


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra that provides the module ``exc`` says is missing, if it is one of ours."""
    name = (exc.name or "").partition(".")[0]
    return EXTRA_OF.get(name)


def install_hint(extra: str, module: str) -> str:
    """The one line a command prints when ``extra`` is not installed."""
    what = "the daemon" if extra == "daemon" else "the asynctask command"
    return (
        f"asynctask: {what} needs the {extra!r} extra of {DISTRIBUTION} (module {module!r} is "
        f"not installed); install it with: pip install '{DISTRIBUTION}[{extra}]'"
    )


def version_line() -> str:
    from asynctask import __version__

    return f"asynctask {__version__} (Python {sys.version.split()[0]})"


def main() -> None:
    """Run the command line; exit 2 with the install line when an extra is missing."""
    if sys.argv[1:] in (["--version"], ["-V"]):
        print(version_line())
        return
    if sys.argv[1:2] == ["health"] and "--help" not in sys.argv:
        # A probe runs every few seconds: it skips the command line's packages (cli/probe.py).
        from asynctask.cli.probe import main as probe

        raise SystemExit(probe(sys.argv[2:]))
    try:
        from asynctask.cli.main import main as run

        run()
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc)
        if extra is None:
            raise
        sys.stderr.write(install_hint(extra, exc.name or "?") + "\n")
        raise SystemExit(EXIT_MISSING_EXTRA) from None


if __name__ == "__main__":  # pragma: no cover
    main()
