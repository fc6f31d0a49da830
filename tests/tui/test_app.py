"""The loop's pieces against a scripted client: actions, lost daemons, --once, no terminal."""

from __future__ import annotations

import pytest

from asynctask.errors import DaemonUnavailable, Unauthorized, UsageError
from asynctask.tui.app import perform, poll, run_top
from asynctask.tui.view import Action, ViewState
from tests.tui.snapshots import queue, snapshot


class ScriptedClient:
    def __init__(self, *replies) -> None:
        self.replies = list(replies)
        self.calls: list[tuple] = []

    def _next(self, call: tuple):
        self.calls.append(call)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def stats(self, tenant=None):
        return self._next(("stats", tenant))

    def pause(self, tenant=None, queue=None):
        return self._next(("pause", tenant, queue))

    def resume(self, tenant=None, queue=None):
        return self._next(("resume", tenant, queue))

    def nodes(self):
        return {"cluster": False}  # not scripted: top asks it on its own schedule


STATE = ViewState("acme", ("acme", "reports"))


@pytest.mark.parametrize(("action", "reply", "message"), [
    (Action("pause", "acme", "reports"), 1, "paused acme/reports"),
    (Action("pause", "acme", "reports"), 0, "acme/reports was already paused"),
    (Action("resume", "acme", "reports"), 1, "resumed acme/reports"),
    (Action("resume", "acme", "reports"), Unauthorized("not yours"),
     "resume acme/reports: not yours"),
])  # fmt: skip
def test_perform_calls_the_client_and_reports_on_the_status_line(action, reply, message) -> None:
    client = ScriptedClient(reply)
    state = perform(client, action, STATE)
    assert client.calls == [(action.kind, "acme", "reports")]
    assert state == ViewState("acme", ("acme", "reports"), message)


def test_a_lost_daemon_keeps_the_last_frame_and_says_so_until_it_answers() -> None:
    old, new = snapshot([queue("acme", "a")]), snapshot([queue("acme", "b")])
    client = ScriptedClient(DaemonUnavailable("no daemon answering"), new)
    snap, state = poll(client, old, STATE)
    assert snap is old
    assert state.message == "daemon: no daemon answering"
    snap, state = poll(client, snap, state)
    assert (snap, state.message) == (new, "")
    assert client.calls == [("stats", None), ("stats", None)]


def test_a_poll_keeps_the_outcome_of_the_last_action() -> None:
    client = ScriptedClient(snapshot([]))
    _, state = poll(client, snapshot([]), ViewState(message="paused acme/reports"))
    assert state.message == "paused acme/reports"


def test_once_prints_one_frame_without_the_key_help(capsys) -> None:
    client = ScriptedClient(snapshot([queue("acme", "reports", backlog=7)]))
    run_top(client, once=True, tenant="acme", source="/run/at.sock")
    out = capsys.readouterr().out
    assert "asynctask top  /run/at.sock" in out
    assert "tenant: acme" in out
    assert any(line.split()[1:4] == ["acme", "reports", "7"] for line in out.splitlines())
    assert "quit" not in out


def test_without_a_terminal_top_refuses_before_asking_the_daemon() -> None:
    client = ScriptedClient()
    with pytest.raises(UsageError, match="needs a terminal"):
        run_top(client)  # pytest's stdin and stdout are not terminals
    assert client.calls == []


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(UsageError, match="--interval"):
        run_top(ScriptedClient(), interval=0)
