"""Which tenants a caller may act for, decided once per connection from kernel-verified facts.

A connection's ``Principal`` is its peer's uid (``SO_PEERCRED``) and whether the peer is one of
the daemon's own workers or a process a worker started (the daemon decides that when it accepts
the connection, from the peer pid: ``executor/lineage.py``).

* A worker's process acts for the tenant of the task it runs, and for nothing else, whatever its
  uid (workers run as the daemon's uid, an admin): it is never an admin, and a worker that has
  not run a task yet may do nothing at all.
* Admins (``[auth] admins``, default: the daemon's own user) may act for every tenant.
* Other users may act only for the tenants ``[auth.users]`` lists for them.

Anyone else gets ``Unauthorized``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from asynctask.errors import Unauthorized

_NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a connection acts as, fixed when it is accepted.

    ``is_worker``: the peer is a worker of this daemon or a process it started;
    ``worker_tenant`` is then the tenant of that worker's task (None: it has run none).
    """

    uid: int
    pid: int = 0
    is_worker: bool = False
    worker_tenant: str | None = None

    def __str__(self) -> str:
        if self.is_worker:
            return f"a task of tenant {self.worker_tenant!r}" if self.worker_tenant else "a worker"
        return f"uid {self.uid}"


class AuthPolicy:
    def __init__(self, admins: tuple[int, ...], users: Mapping[int, frozenset[str]]) -> None:
        self._admins = frozenset(admins)
        self._users = dict(users)

    def __repr__(self) -> str:
        return f"<AuthPolicy admins={sorted(self._admins)} users={len(self._users)}>"

    def is_admin(self, who: Principal) -> bool:
        return not who.is_worker and who.uid in self._admins

    def tenants_of(self, who: Principal) -> frozenset[str] | None:
        """``None`` for every tenant (an admin), else the tenants the caller may act for."""
        if who.is_worker:
            return _NOTHING if who.worker_tenant is None else frozenset((who.worker_tenant,))
        if who.uid in self._admins:
            return None
        return self._users.get(who.uid, _NOTHING)

    def check(self, who: Principal, tenant: str) -> None:
        allowed = self.tenants_of(who)
        if allowed is not None and tenant not in allowed:
            raise Unauthorized(f"{who} may not act for tenant {tenant!r}")
