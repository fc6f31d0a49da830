"""deploy/Dockerfile and deploy/docker-compose.yml refer to what exists. Docker does not run
here, so the image is not built by any test: these check that every file the Dockerfile copies
is in the repository, that each command it and the compose file run is accepted by the real
command line (its flags parsed, with --help), and that the compose file's config is valid."""

from __future__ import annotations

import subprocess
import sys

import pytest

from asynctask.config import load_config
from tests.deploy.units import compose_lists, dockerfile_instructions, exec_form
from tests.e2e.conftest import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"


def _accepted(argv: list[str]) -> None:
    """``asynctask ARGS --help`` exits 0: the command exists and takes every flag given
    (click parses them all before answering --help)."""
    assert argv[0] == "asynctask", argv
    done = subprocess.run(
        [sys.executable, "-m", "asynctask", *argv[1:], "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{argv}: {done.stderr}"


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE)


def test_every_copied_path_exists(instructions) -> None:
    copies = [exec_form(args) for kind, args in instructions if kind == "COPY"]
    assert copies
    for *sources, _target in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_the_image_runs_the_command_line(instructions) -> None:
    [entry] = [exec_form(a) for k, a in instructions if k == "ENTRYPOINT"]
    [cmd] = [exec_form(a) for k, a in instructions if k == "CMD"]
    assert entry == ["asynctask"]
    _accepted(entry + cmd)
    [health] = [a for k, a in instructions if k == "HEALTHCHECK"]
    probe = exec_form(health.split(" CMD ", 1)[1])
    assert probe[:2] == ["asynctask", "health"]
    _accepted(probe)
    [volume] = [a for k, a in instructions if k == "VOLUME"]
    home = cmd[cmd.index("--home") + 1]
    assert volume == home  # the home is the volume: the database outlives the container


def test_the_installed_extra_is_the_daemons(instructions) -> None:
    runs = " ".join(a for k, a in instructions if k == "RUN")
    assert "'/src[daemon]'" in runs


def test_the_compose_commands_are_accepted() -> None:
    [command] = compose_lists(COMPOSE, "command")
    _accepted(["asynctask", *command])
    [probe] = compose_lists(COMPOSE, "test")
    assert probe[0] == "CMD"
    _accepted(probe[1:])
    config = command[command.index("--config") + 1]
    assert f"./asynctask.toml:{config}:ro" in COMPOSE.read_text()


def test_the_compose_config_is_valid() -> None:
    config = load_config(ROOT / "deploy" / "asynctask.toml")
    assert config.observe.http == ("0.0.0.0", 9464)
    assert config.observe.allow_remote
