"""Every code block of the guide (``docs/*.md``) and of ``README.md`` runs, so none can rot.

One test per page. Its blocks act in page order, in a fresh temporary directory that is the
working directory of everything the page runs and is on ``PYTHONPATH``:

* ``# file: PATH`` python blocks are written to PATH there (task modules the daemon's workers
  import, modules later blocks import);
* the other python blocks run in one fresh interpreter (``tests/docs/runner.py``), sharing one
  namespace;
* each ``$ `` line of a console block runs in ``bash`` and must exit 0, or the N of a trailing
  ``# exits N``;
* toml blocks are parsed, and one that holds config sections may use only the keys
  ``config/asynctask.toml`` documents;
* ``<!-- not run: REASON -->`` skips the block after it; the session's summary lists them.

A real daemon (``tests/e2e/conftest.py``'s ``DaemonProcess``) serves the page, its home in the
temporary directory, its working directory the temporary directory; ``ASYNCTASK_HOME`` and
``ASYNCTASK_SOCKET`` point at it and the venv's ``bin`` leads ``PATH``, so ``asynctask.Client()``
and the ``asynctask`` command reach it as the reader's would. A page that shows starting a
daemon itself says ``<!-- docs: the page starts its own daemon -->``; the test then starts
none, and stops whatever daemon the page left running. Pages with nothing to run start nothing.

Also here: the config reference (``docs/operating.md``, "Configuration reference") lists exactly
the keys ``config/asynctask.toml`` documents, and those are exactly the keys the daemon's
config parser accepts (asked of the parser itself, ``asynctask.config.parse_config``), with
the defaults the file sets; and every relative link of the pages reaches a file and a heading.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from asynctask.config import parse_config
from asynctask.errors import ConfigError
from asynctask.executor.cgroups import detect_cgroups, sweep_stale
from tests.docs import blocks as md
from tests.docs.conftest import NOT_RUN
from tests.e2e.conftest import DaemonProcess

ROOT = Path(__file__).resolve().parents[2]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
CONFIG = ROOT / "config" / "asynctask.toml"
REFERENCE = ROOT / "docs" / "operating.md"
REFERENCE_HEADING = "Configuration reference"
RUNNER = Path(__file__).with_name("runner.py")
#: Keys the parser accepts that the config file mentions only in prose, as an older spelling.
LEGACY_KEYS = {("daemon", "retention")}
#: Seconds one python block or one console command may take.
BLOCK_TIMEOUT = 60.0


def _relative(path: Path) -> str:
    """A page's name in messages: its path in the repository (a test's own page: its name)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


class Page:
    """One page's run: its directory, environment, daemon and python runner."""

    def __init__(self, path: Path, tmp: Path) -> None:
        self.path = path
        self.name = _relative(path)
        self.tmp = tmp
        self.home = tmp / "home"
        self.env = {
            **os.environ,
            "ASYNCTASK_HOME": str(self.home),
            "ASYNCTASK_SOCKET": str(self.home / "asynctask.sock"),
            "PYTHONPATH": str(tmp),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.daemon: DaemonProcess | None = None
        self.runner: subprocess.Popen[bytes] | None = None
        self.replies: Any = None
        self.output = tmp / ".python-output"

    # -- the daemon ---------------------------------------------------------------------------

    def start_daemon(self) -> None:
        self.home.mkdir(mode=0o700)  # private from the start, as the daemon wants it
        self.daemon = DaemonProcess(self.home, root=self.tmp).start()

    def close(self) -> None:
        if self.runner is not None:
            self.runner.kill()
            self.runner.wait(10)
            if self.runner.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    self.runner.stdin.close()
            self.replies.close()
        if self.daemon is not None and self.daemon.proc is not None:
            self.daemon.proc.kill()
            self.daemon.proc.wait(10)
        self._stop_own_daemon()
        sweep_stale(detect_cgroups())  # the groups of workers the kill -9 above left behind

    def _stop_own_daemon(self) -> None:
        """A daemon the page's own commands started (``daemon --detach``, a restart) and left
        running: stopped by ``asynctask stop``, else killed, by the pid in the home's pid file,
        and only if that process is a daemon of this home."""
        pid = self._home_daemon()
        if pid is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [sys.executable, "-m", "asynctask", "stop", "--drain", "0s"],
                env=self.env,
                cwd=self.tmp,
                capture_output=True,
                timeout=30,
            )
        if self._home_daemon() == pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _home_daemon(self) -> int | None:
        """The pid of the home's pid file, if that process runs a daemon of this home."""
        try:
            pid = int((self.home / "daemon.pid").read_text().split()[0])
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(self.home).encode() in argv and b"daemon" in argv else None

    def daemon_log(self) -> str:
        logs = [self.home / "daemon-test.log", self.home / "logs" / "daemon.log"]
        text = "".join(log.read_text(errors="replace") for log in logs if log.exists())
        return f"\n--- daemon log (end) ---\n{text[-3000:]}" if text else ""

    # -- blocks -------------------------------------------------------------------------------

    def write_file(self, block: md.Block) -> None:
        assert block.file is not None
        target = (self.tmp / block.file).resolve()
        if not target.is_relative_to(self.tmp.resolve()):
            pytest.fail(
                f"{self.name}:{block.fence_line}: # file: {block.file} leaves the page's dir"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text)

    def run_python(self, block: md.Block) -> None:
        if self.runner is None:
            read, write = os.pipe()
            with open(self.output, "ab") as out:
                self.runner = subprocess.Popen(
                    [sys.executable, "-P", str(RUNNER), str(write)],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.tmp,
                    env=self.env,
                    pass_fds=(write,),
                )
            os.close(write)
            self.replies = os.fdopen(read, "r")
        assert self.runner.stdin is not None
        start = self.output.stat().st_size
        request = {"path": str(self.path), "line": block.line, "code": block.text}
        self.runner.stdin.write(json.dumps(request).encode() + b"\n")
        self.runner.stdin.flush()
        ready, _, _ = select.select([self.replies], [], [], BLOCK_TIMEOUT)
        line = self.replies.readline() if ready else ""
        with open(self.output, "rb") as out:
            out.seek(start)
            output = out.read().decode(errors="replace")
        if not line:
            what = "did not finish" if not ready else "ended its interpreter"
            pytest.fail(
                f"{self.name}:{block.fence_line}: python block {what} within "
                f"{BLOCK_TIMEOUT:g}s\n--- output ---\n{output}{self.daemon_log()}"
            )
        reply = json.loads(line)
        if not reply["ok"]:
            pytest.fail(
                f"{self.name}:{block.fence_line}: python block failed\n{reply['error']}"
                f"--- output ---\n{output}{self.daemon_log()}",
                pytrace=False,
            )

    def run_console(self, block: md.Block) -> None:
        """Each command in ``bash``; its output goes to a file, not a pipe, so that a process
        it leaves running (``daemon &``) cannot hold the command's end up."""
        output = self.tmp / ".console-output"
        for command in md.commands(block):
            with open(output, "wb") as out:
                try:
                    done = subprocess.run(
                        ["bash", "-o", "pipefail", "-c", command.command],
                        cwd=self.tmp,
                        env=self.env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        timeout=BLOCK_TIMEOUT,
                    )
                except subprocess.TimeoutExpired:
                    done = None
            text = output.read_text(errors="replace")
            if done is None:
                pytest.fail(
                    f"{self.name}:{command.line}: `{command.command}` did not finish within "
                    f"{BLOCK_TIMEOUT:g}s\n--- output ---\n{text}{self.daemon_log()}",
                    pytrace=False,
                )
            if done.returncode != command.exits:
                pytest.fail(
                    f"{self.name}:{command.line}: `{command.command}` exited {done.returncode}, "
                    f"expected {command.exits}\n--- output ---\n{text}{self.daemon_log()}",
                    pytrace=False,
                )

    def check_toml(self, block: md.Block, documented: set[tuple[str, str]]) -> None:
        try:
            data = tomllib.loads(block.text)
        except tomllib.TOMLDecodeError as exc:
            pytest.fail(f"{self.name}:{block.fence_line}: toml block: {exc}", pytrace=False)
        unknown = md.undocumented(data, documented)
        if unknown:
            pytest.fail(
                f"{self.name}:{block.fence_line}: toml block uses keys config/asynctask.toml "
                f"does not document: {', '.join(unknown)}",
                pytrace=False,
            )


def _runs(block: md.Block) -> bool:
    return block.skip is None and (
        (block.lang == "python" and block.file is None) or block.lang == "console"
    )


@pytest.fixture(scope="module")
def documented() -> set[tuple[str, str]]:
    return md.documented_keys(CONFIG.read_text())


@pytest.mark.parametrize("path", PAGES, ids=_relative)
def test_page(path: Path, tmp_path: Path, documented: set[tuple[str, str]]) -> None:
    run_page(path, tmp_path, documented)


def run_page(path: Path, tmp: Path, documented: set[tuple[str, str]]) -> None:
    """Act on every block of the page at ``path`` in page order, in the directory ``tmp``;
    ``pytest.fail`` names the page, the line and the output of the first block that fails."""
    text = path.read_text()
    name = _relative(path)
    try:
        found = md.blocks(text)
    except md.DocsError as exc:
        pytest.fail(f"{name}: {exc}", pytrace=False)
    tmp.mkdir(parents=True, exist_ok=True)
    page = Page(path, tmp)
    try:
        if any(_runs(block) for block in found) and not md.starts_own_daemon(text):
            page.start_daemon()
        for block in found:
            if block.skip is not None:
                NOT_RUN.append(f"{name}:{block.fence_line} ({block.lang}): {block.skip}")
            elif block.file is not None:
                page.write_file(block)
            elif block.lang == "python":
                page.run_python(block)
            elif block.lang == "console":
                page.run_console(block)
            elif block.lang == "toml":
                page.check_toml(block, documented)
    finally:
        page.close()


# -- the config reference ---------------------------------------------------------------------


def test_reference_lists_every_documented_key(documented: set[tuple[str, str]]) -> None:
    """The operator's reference and the annotated config file name the same keys."""
    listed = md.reference_keys(REFERENCE.read_text(), REFERENCE_HEADING)
    assert listed, f"{_relative(REFERENCE)} has no '## {REFERENCE_HEADING}' with key rows"
    missing = sorted(f"[{s}] {k}" for s, k in documented - listed)
    extra = sorted(f"[{s}] {k}" for s, k in listed - documented)
    assert not missing, f"{_relative(REFERENCE)} lacks keys config/asynctask.toml has: {missing}"
    assert not extra, f"{_relative(REFERENCE)} lists keys config/asynctask.toml lacks: {extra}"


def test_reference_defaults_are_the_files() -> None:
    """A default the reference shows is the value config/asynctask.toml sets."""
    rows = md.reference_rows(REFERENCE.read_text(), REFERENCE_HEADING)
    wrong = md.default_mismatches(rows, tomllib.loads(CONFIG.read_text()))
    assert wrong == [], f"{_relative(REFERENCE)}: defaults that differ from the file"


#: A name for the probe table of each section that holds one table per name.
_PROBE_NAMES = {"tenants": "probe", "queues": "probe/q", "functions": "probe.mod:fn"}
_UNKNOWN = re.compile(r"unknown config key (?P<key>\S+) \(known: (?P<known>[^)]*)\)")


def _parser_known(section: str) -> set[str]:
    """The keys ``parse_config`` accepts in ``section`` (``""``: the top level), read from its
    own refusal of an unknown key, which lists them."""
    probe: dict[str, Any] = {"zz_probe": 1}
    if section == "":
        document: dict[str, Any] = probe
    elif section in _PROBE_NAMES:
        document = {section: {_PROBE_NAMES[section]: probe}}
    else:
        document = {section: probe}
    with pytest.raises(ConfigError) as refused:
        parse_config(document)
    match = _UNKNOWN.search(str(refused.value))
    problem = f"the parser refused the probe of [{section}] otherwise: {refused.value}"
    assert match is not None, problem
    assert match["key"].endswith("zz_probe"), problem
    return {key.strip() for key in match["known"].split(",")}


def test_documented_keys_are_the_parsers_keys(documented: set[tuple[str, str]]) -> None:
    """What config/asynctask.toml documents, the daemon accepts, and the other way round: a
    key added to the parser without a line in the file fails here."""
    sections = _parser_known("")
    accepted = {
        (f"{s}.*" if s in _PROBE_NAMES else s, key) for s in sections for key in _parser_known(s)
    }
    assert {s.split(".")[0] for s, _ in documented} == sections
    assert sorted(documented - accepted) == [], "documented, but the parser refuses them"
    assert sorted(accepted - documented - LEGACY_KEYS) == [], "accepted, but not documented"


def test_the_probe_sees_a_refused_key() -> None:
    """The probe above reads the parser's message; this keeps that message's shape honest."""
    assert "durability" in _parser_known("daemon")
    assert "weight" in _parser_known("tenants")


# -- links ------------------------------------------------------------------------------------

#: Guide pages other branches of issue 18 are writing; links to them may dangle until they land.
PENDING_PAGES: set[str] = set()


@pytest.mark.parametrize("path", PAGES, ids=_relative)
def test_links_reach_a_file_and_a_heading(path: Path) -> None:
    """A relative link names a file of the repository and, after ``#``, one of its headings."""
    broken = []
    for line, target in md.links(path.read_text()):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            if _relative(linked) not in PENDING_PAGES:
                broken.append(f"{_relative(path)}:{line}: {target}: no such file")
            continue
        if anchor and linked.suffix == ".md" and anchor not in md.anchors(linked.read_text()):
            broken.append(f"{_relative(path)}:{line}: {target}: no such heading")
    assert broken == []
