"""Keys change the view state; ``p``/``r``/space name the highlighted queue, never its neighbour."""

from __future__ import annotations

import pytest

from asynctask.tui.view import QUIT, Action, ViewState, current, on_key, tenants_of
from tests.tui.snapshots import queue, snapshot

SNAP = snapshot(
    [queue("beta", "beta"), queue("acme", "reports", paused=True), queue("acme", "emails")]
)


def press(state: ViewState, *keys: str, snap: dict | None = None) -> ViewState:
    for key in keys:
        state, action = on_key(snap or SNAP, state, key)
        assert action is None
    return state


def test_tenants_are_every_tenant_named_sorted() -> None:
    snap = snapshot([queue("zeta", "z")], tenants=[{"tenant": "acme"}])
    assert tenants_of(snap) == ["acme", "zeta"]


def test_the_highlight_starts_on_the_first_row_in_tenant_queue_order() -> None:
    assert current(SNAP, ViewState()) == ("acme", "emails")


@pytest.mark.parametrize(("keys", "expected"), [
    (("down",), ("acme", "reports")),
    (("j", "j"), ("beta", "beta")),
    (("j", "j", "j", "j"), ("beta", "beta")),  # stops at the last row
    (("j", "k"), ("acme", "emails")),
    (("up", "up"), ("acme", "emails")),  # and at the first
])  # fmt: skip
def test_up_and_down_move_the_highlight_and_stop_at_the_ends(keys, expected) -> None:
    assert current(SNAP, press(ViewState(), *keys)) == expected


def test_the_highlight_stays_on_its_queue_when_rows_appear_before_it() -> None:
    state = press(ViewState(), "j")  # acme/reports, the second row
    grown = snapshot([queue("acme", "a-first"), *SNAP["queues"]])
    assert current(grown, state) == ("acme", "reports")
    assert current(grown, press(state, "j", snap=grown)) == ("beta", "beta")


def test_a_vanished_queue_gives_the_highlight_back_to_the_first_row() -> None:
    state = press(ViewState(), "j")
    shrunk = snapshot([queue("beta", "beta"), queue("acme", "emails")])
    assert current(shrunk, state) == ("acme", "emails")


def test_t_cycles_all_then_each_tenant_then_all() -> None:
    seen = []
    state = ViewState()
    for _ in range(4):
        state = press(state, "t")
        seen.append(state.tenant)
    assert seen == ["acme", "beta", None, "acme"]


def test_the_tenant_filter_moves_the_highlight_into_that_tenant() -> None:
    state = press(ViewState(), "t", "t")  # beta
    assert (state.tenant, current(SNAP, state)) == ("beta", ("beta", "beta"))
    assert current(SNAP, press(state, "up")) == ("beta", "beta")  # acme's rows are not there


def test_an_unknown_starting_tenant_cycles_back_to_all() -> None:
    assert press(ViewState(tenant="nobody"), "t").tenant is None


@pytest.mark.parametrize(("keys", "action"), [
    (("p",), Action("pause", "acme", "emails")),
    (("r",), Action("resume", "acme", "emails")),
    ((" ",), Action("pause", "acme", "emails")),  # not paused: space pauses
    (("j", " "), Action("resume", "acme", "reports")),  # paused: space resumes
    (("q",), QUIT),
    (("eof",), QUIT),
])  # fmt: skip
def test_action_keys_name_the_highlighted_queue(keys, action) -> None:
    state = press(ViewState(), *keys[:-1])
    assert on_key(SNAP, state, keys[-1])[1] == action


def test_pause_with_no_queue_on_screen_does_nothing() -> None:
    assert on_key(snapshot([]), ViewState(), "p") == (ViewState(), None)


def test_unknown_keys_change_nothing() -> None:
    state = press(ViewState(), "j")
    assert on_key(SNAP, state, "x") == (state, None)
    assert on_key(SNAP, state, "left") == (state, None)
