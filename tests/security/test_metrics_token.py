"""The /metrics listener wants a bearer token (issue 13: it named every tenant and queue to any
local user). The daemon writes the token to ``<home>/metrics.token`` (0600) or to
``[metrics] token_file``; Prometheus sends it with ``authorization: credentials_file``."""

from __future__ import annotations

import os
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import DaemonProcess, make_daemon

__all__ = ["make_daemon"]  # the e2e fixture, shared with this directory

CONFIG = '[metrics]\nhttp = "127.0.0.1:0"\n'


def _get(url: str, token: str | None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read().decode()


def _started(make_daemon, config: str = CONFIG) -> tuple[DaemonProcess, str]:
    daemon = make_daemon(config).start()
    daemon.client().submit("tests.e2e.tasks:add", 1, 2).wait(timeout=30)
    url = daemon.client().ping()["metrics_url"]
    assert url.startswith("http://127.0.0.1:")
    return daemon, url


def test_no_token_gets_401_and_no_metrics(make_daemon) -> None:
    _, url = _started(make_daemon)
    status, headers, body = _get(url, None)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert "asynctask_" not in body
    assert "default" not in body  # no tenant name


def test_a_wrong_token_gets_401(make_daemon) -> None:
    daemon, url = _started(make_daemon)
    right = (daemon.home / "metrics.token").read_text().strip()
    for wrong in ("x" * len(right), right[:-1], right + "x", ""):
        status, _, body = _get(url, wrong)
        assert status == 401, wrong
        assert "asynctask_" not in body
    status, _, _ = _get(url.replace("/metrics", "/other"), "nope")
    assert status == 401  # nothing is told about paths either


def test_the_right_token_gets_the_metrics(make_daemon) -> None:
    daemon, url = _started(make_daemon)
    token = (daemon.home / "metrics.token").read_text().strip()
    status, headers, body = _get(url, token)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'asynctask_tasks_completed_total{tenant="default"' in body


def _raw(url: str, *headers: str) -> bytes:
    """The status line of a GET /metrics sent byte for byte, with these header lines."""
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = "GET /metrics HTTP/1.1\r\nHost: x\r\n" + "".join(h + "\r\n" for h in headers)
        sock.sendall((head + "\r\n").encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply.split(b"\r\n", 1)[0]


def test_the_header_is_read_strictly(make_daemon) -> None:
    daemon, url = _started(make_daemon)
    token = (daemon.home / "metrics.token").read_text().strip()
    ok, unauthorized = b"HTTP/1.1 200 OK", b"HTTP/1.1 401 Unauthorized"
    assert _raw(url, f"Authorization: Bearer {token}") == ok
    assert _raw(url, f"authorization:   bearer {token}  ") == ok  # names and schemes: any case
    assert _raw(url, f"Authorization: Bearer {token.upper()}") == unauthorized
    assert _raw(url, f"Authorization: Basic {token}") == unauthorized
    assert _raw(url, f"Authorization: {token}") == unauthorized
    assert _raw(url, f"X-Authorization: Bearer {token}") == unauthorized
    two = (f"Authorization: Bearer {token}", "Authorization: Bearer nope")
    assert _raw(url, *two) == unauthorized


def test_the_token_file_is_private_and_random(make_daemon, tmp_path: Path) -> None:
    daemon, _ = _started(make_daemon)
    path = daemon.home / "metrics.token"
    info = os.lstat(path)
    assert stat.S_ISREG(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    token = path.read_text().strip()
    assert len(token) >= 32
    other = make_daemon(CONFIG, home=tmp_path / "other").start()
    assert (other.home / "metrics.token").read_text().strip() != token


def test_a_planted_symlink_is_replaced_not_followed(make_daemon, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    victim.chmod(0o644)
    home = tmp_path / "home"
    home.mkdir()
    (home / "metrics.token").symlink_to(victim)
    daemon, url = _started(make_daemon)
    assert victim.read_text() == "keep me\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    path = daemon.home / "metrics.token"
    assert not path.is_symlink()
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert _get(url, path.read_text().strip())[0] == 200


def test_an_open_token_file_is_replaced_and_a_private_one_kept(make_daemon, tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    token_path = home / "metrics.token"
    token_path.write_text("readable-by-everyone-readable-by-everyone\n")
    token_path.chmod(0o644)
    daemon, url = _started(make_daemon)
    fresh = token_path.read_text().strip()
    assert fresh != "readable-by-everyone-readable-by-everyone"
    assert _get(url, "readable-by-everyone-readable-by-everyone")[0] == 401
    assert daemon.stop() == 0
    daemon.start()  # a restart keeps the private token: a Prometheus config stays valid
    url = daemon.client().ping()["metrics_url"]
    assert token_path.read_text().strip() == fresh
    assert _get(url, fresh)[0] == 200


def test_token_file_sets_where_the_token_goes(make_daemon, tmp_path: Path) -> None:
    elsewhere = tmp_path / "secrets" / "asynctask-metrics.token"
    elsewhere.parent.mkdir(mode=0o700)
    daemon, url = _started(make_daemon, CONFIG + f'token_file = "{elsewhere}"\n')
    assert not (daemon.home / "metrics.token").exists()
    assert stat.S_IMODE(os.lstat(elsewhere).st_mode) == 0o600
    assert _get(url, elsewhere.read_text().strip())[0] == 200
    assert _get(url, None)[0] == 401


@pytest.mark.parametrize("value", ["", 5, "relative/path.token"])
def test_a_bad_token_file_is_a_config_error(value) -> None:
    from asynctask.config import parse_config
    from asynctask.errors import ConfigError

    with pytest.raises(ConfigError, match=r"bad value for metrics\.token_file"):
        parse_config({"metrics": {"http": "127.0.0.1:0", "token_file": value}})


@pytest.mark.parametrize(
    ("mode", "kept"), [(0o600, True), (0o640, True), (0o400, True), (0o660, False), (0o604, False)]
)
def test_an_existing_token_is_kept_only_when_private(tmp_path: Path, mode: int, kept: bool) -> None:
    from asynctask.server.http import ensure_token

    path = tmp_path / "metrics.token"
    old = "a" * 43
    path.write_text(old + "\n")
    path.chmod(mode)
    token = ensure_token(str(path))
    assert (token == old) is kept
    assert path.read_text() == f"{token}\n"
    if not kept:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600


def test_a_token_file_someone_else_owns_is_replaced(tmp_path: Path) -> None:
    from asynctask.server.http import ensure_token

    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    path = tmp_path / "metrics.token"
    path.write_text("b" * 43 + "\n")
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    token = ensure_token(str(path))
    assert token != "b" * 43
    assert os.lstat(path).st_uid == os.geteuid()


def test_a_token_path_that_is_a_directory_stops_the_start(make_daemon, tmp_path: Path) -> None:
    (tmp_path / "home" / "metrics.token").mkdir(parents=True)
    daemon = make_daemon(CONFIG)
    with pytest.raises(AssertionError, match=r"metrics\.token_file: cannot write the token"):
        daemon.start()
    assert (tmp_path / "home" / "metrics.token").is_dir()
