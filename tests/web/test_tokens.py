"""Login and CSRF tokens (``asynctask/web/tokens.py``): pure functions, time as an argument."""

from __future__ import annotations

from asynctask.web import tokens

SECRET = b"s" * 32


def test_a_token_names_its_uid_until_it_expires() -> None:
    token, expires = tokens.issue(SECRET, 1234, now=1000.0, ttl=60)
    assert expires == 1060
    assert tokens.verify(SECRET, token, 1059.9) == tokens.Login(1234, 1060)
    assert tokens.verify(SECRET, token, 1060.0) is None


def test_a_changed_or_foreign_token_is_refused() -> None:
    token, _ = tokens.issue(SECRET, 1234, now=1000.0, ttl=60)
    version, uid, expires, nonce, mac = token.split(".")
    assert tokens.verify(SECRET, ".".join([version, "0", expires, nonce, mac]), 1000) is None
    assert tokens.verify(SECRET, ".".join([version, uid, "9999999999", nonce, mac]), 1000) is None
    assert tokens.verify(b"t" * 32, token, 1000) is None
    for junk in ("", "v1", "v1.1.2.3", token + "é", "x" * 1000, "v2" + token[2:]):
        assert tokens.verify(SECRET, junk, 1000) is None


def test_the_csrf_token_belongs_to_one_session() -> None:
    one, _ = tokens.issue(SECRET, 1, now=0, ttl=60)
    two, _ = tokens.issue(SECRET, 1, now=0, ttl=60)
    assert tokens.csrf_ok(SECRET, one, tokens.csrf_of(SECRET, one))
    assert not tokens.csrf_ok(SECRET, two, tokens.csrf_of(SECRET, one))
    assert not tokens.csrf_ok(SECRET, one, "")
    assert not tokens.csrf_ok(SECRET, one, "é")
