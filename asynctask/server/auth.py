"""Which tenants a local user may act for, decided from the kernel-verified peer uid.

Admins (``[auth] admins``, default: the daemon's own user) may act for every tenant. Other users
may act only for the tenants ``[auth.users]`` lists for them. Anyone else gets ``Unauthorized``.
"""

from __future__ import annotations

from collections.abc import Mapping

from asynctask.errors import Unauthorized


class AuthPolicy:
    def __init__(self, admins: tuple[int, ...], users: Mapping[int, frozenset[str]]) -> None:
        self._admins = frozenset(admins)
        self._users = dict(users)

    def __repr__(self) -> str:
        return f"<AuthPolicy admins={sorted(self._admins)} users={len(self._users)}>"

    def is_admin(self, uid: int) -> bool:
        return uid in self._admins

    def tenants_of(self, uid: int) -> frozenset[str] | None:
        """``None`` for every tenant (an admin), else the tenants the user may act for."""
        if uid in self._admins:
            return None
        return self._users.get(uid, frozenset())

    def check(self, uid: int, tenant: str) -> None:
        allowed = self.tenants_of(uid)
        if allowed is not None and tenant not in allowed:
            raise Unauthorized(f"uid {uid} may not act for tenant {tenant!r}")
