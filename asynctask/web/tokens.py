"""Login tokens and CSRF tokens of the web console: signed, never stored.

A login token is ``v1.<uid>.<expires>.<nonce>.<mac>``, the MAC an HMAC-SHA256 of the rest with
the daemon's web secret (``<home>/web.secret``, 0600, made by ``server.http.ensure_token``). The
daemon issues one to a socket caller for that caller's uid (``asynctask web-token``); the
console takes it once at ``/login`` and keeps it as the session cookie. It names a uid, not
tenants: what that uid may see is decided by ``AuthPolicy`` at every request, so a change of
``[auth]`` applies to open sessions at the next restart, without re-issuing tokens.

A CSRF token is the HMAC of the session token under another label: a page's forms carry it, and
an action is taken only when the form's value matches the cookie's session. Nothing is kept per
session, so a restart keeps sessions open and nothing grows with logins.

No clock is read here: ``now`` is an argument, as in ``core/``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

VERSION: Final = "v1"
#: The longest token read; anything longer is refused before any work.
MAX_TOKEN: Final = 256


@dataclass(frozen=True, slots=True)
class Login:
    """A valid login token: whose, and until when (epoch seconds)."""

    uid: int
    expires: int


def issue(secret: bytes, uid: int, now: float, ttl: float) -> tuple[str, int]:
    """A new token for ``uid`` valid ``ttl`` seconds from ``now``, and its expiry."""
    expires = int(now + ttl)
    body = f"{VERSION}.{uid}.{expires}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_mac(secret, 'login', body)}", expires


def verify(secret: bytes, token: str, now: float) -> Login | None:
    """The login ``token`` names, or ``None`` if it is malformed, forged or expired."""
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        return None
    body, _, mac = token.rpartition(".")
    parts = body.split(".")
    if len(parts) != 4 or parts[0] != VERSION:
        return None
    if not hmac.compare_digest(mac, _mac(secret, "login", body)):
        return None
    uid_text, expires_text = parts[1], parts[2]
    if not uid_text.isdigit() or not expires_text.isdigit():
        return None
    expires = int(expires_text)
    if expires <= now:
        return None
    return Login(int(uid_text), expires)


def csrf_of(secret: bytes, session: str) -> str:
    """The CSRF token of the forms of ``session``'s pages."""
    return _mac(secret, "csrf", session)


def csrf_ok(secret: bytes, session: str, given: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), csrf_of(secret, session).encode())


def _mac(secret: bytes, label: str, text: str) -> str:
    digest = hmac.new(secret, f"{label}:{text}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
