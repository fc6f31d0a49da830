"""The ``web_token`` op (``server/ops.py``): who may have a console login. Refusals come from
``Ops`` before the daemon is reached."""

from __future__ import annotations

from typing import Any

import pytest

from asynctask.errors import Unauthorized
from asynctask.server.auth import AuthPolicy, Principal
from asynctask.server.ops import Ops


class _Backend:
    def __init__(self) -> None:
        self.issued: list[int] = []

    def web_token(self, uid: int) -> dict[str, Any]:
        self.issued.append(uid)
        return {"token": f"for {uid}"}


def _ops(backend: _Backend) -> Ops:
    policy = AuthPolicy((0,), {1000: frozenset({"acme"})})
    return Ops(backend, policy, 1 << 20)  # type: ignore[arg-type]


def test_a_user_gets_a_token_for_their_own_uid() -> None:
    backend = _Backend()
    ops = _ops(backend)
    assert ops(Principal(uid=1000, pid=5), "web_token", {}) == {"token": "for 1000"}
    assert ops(Principal(uid=0, pid=6), "web_token", {}) == {"token": "for 0"}
    assert backend.issued == [1000, 0]


@pytest.mark.parametrize(
    "who",
    [
        Principal(uid=0, pid=7, is_worker=True, worker_tenant="acme"),  # a task, as an admin uid
        Principal(uid=2000, pid=8),  # a user no [auth.users] entry names
    ],
)
def test_a_task_or_a_user_with_no_tenant_gets_none(who: Principal) -> None:
    backend = _Backend()
    with pytest.raises(Unauthorized):
        _ops(backend)(who, "web_token", {})
    assert backend.issued == []
