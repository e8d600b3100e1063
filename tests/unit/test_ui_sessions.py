"""Dashboard sessions without a server: what each kind of session is bound to, and the
cookie and link formats' edges."""

from __future__ import annotations

import time

import pytest

from bastion.governance.keys import MASTER, KeyTable, Principal
from bastion.governance.roles import GRANTS
from bastion.ui.sessions import Sessions, cookie_value, login_token

SECRET = b"k" * 32


def sessions(master: bytes | None = b"master-key-123456789", open_mode: bool = False,
             keys: KeyTable | None = None) -> Sessions:
    s = Sessions(SECRET, keys or KeyTable(b"p" * 32), 3600)
    s.configure(master, open_mode, 3600, secure=False)
    return s


def key_row(key_id: str = "key_1", **extra: object) -> dict[str, object]:
    return {"id": key_id, "digest": "ab" * 32, "role": "viewer", "team": "alpha",
            "updated_at": time.time(), **extra}


def test_a_short_signing_key_is_refused() -> None:
    with pytest.raises(ValueError):
        Sessions(b"short", KeyTable(b"p" * 32), 60)


def test_a_master_session_ends_when_the_master_key_changes() -> None:
    s = sessions()
    cookie = s.issue("master", MASTER)
    assert s.verify(cookie) is not None
    s.configure(b"another-master-key-0000", False, 3600, secure=False)
    assert s.verify(cookie) is None
    s.configure(None, True, 3600, secure=False)  # the key removed: nothing to match
    assert s.verify(cookie) is None


def test_an_open_session_ends_when_a_master_key_is_set() -> None:
    s = sessions(None, True)
    cookie = s.issue("open", MASTER)
    assert s.verify(cookie) is not None
    s.configure(b"now-there-is-a-master-key", False, 3600, secure=False)
    assert s.verify(cookie) is None


def test_a_key_session_follows_the_key_table() -> None:
    table = KeyTable(b"p" * 32)
    table.apply([key_row()])
    s = sessions(keys=table)
    principal = table.by_id("key_1")
    assert principal is not None
    cookie = s.issue("key", principal)
    found = s.verify(cookie)
    assert found is not None and found.principal.team == "alpha"
    table.apply([key_row(updated_at=time.time() + 1, revoked_at=time.time())])
    assert s.verify(cookie) is None


def test_a_key_session_never_outlives_the_key() -> None:
    table = KeyTable(b"p" * 32)
    soon = time.time() + 60
    table.apply([key_row(expires_at=soon)])
    s = sessions(keys=table)
    principal = table.by_id("key_1")
    assert principal is not None
    cookie = s.issue("key", principal)
    session = s.verify(cookie)
    assert session is not None and session.expires_at == pytest.approx(soon)
    assert s.verify(cookie, now=soon + 1) is None


def test_an_sso_session_keeps_the_mapped_role_and_team_only() -> None:
    s = sessions()
    principal = Principal(key_id="oidc:alice", role="developer", team="alpha", user="alice",
                          expires_at=time.time() + 600, grants=GRANTS["developer"])
    session = s.verify(s.issue("oidc", principal))
    assert session is not None
    assert (session.principal.role, session.principal.team) == ("developer", "alpha")
    assert session.principal.grants == GRANTS["developer"]
    assert session.expires_at <= time.time() + 600


def test_a_cookie_signed_with_another_secret_is_refused() -> None:
    other = Sessions(b"o" * 32, KeyTable(b"p" * 32), 3600)
    other.configure(b"master-key-123456789", False, 3600, secure=False)
    assert sessions().verify(other.issue("master", MASTER)) is None


def test_an_unknown_kind_or_version_is_refused() -> None:
    s = sessions()
    assert s.verify(s.issue("root", MASTER)) is None


def test_each_session_has_its_own_csrf_token() -> None:
    s = sessions()
    a, b = s.verify(s.issue("master", MASTER)), s.verify(s.issue("master", MASTER))
    assert a is not None and b is not None
    assert a.csrf != b.csrf and len(a.csrf) == 64


def test_a_sign_in_link_works_once_and_expires() -> None:
    s = sessions(None, True)
    token = login_token(SECRET)
    assert s.redeem(token) and not s.redeem(token)
    late = login_token(SECRET, now=time.time() - 2 * 86400)
    assert not s.redeem(late)
    assert not s.redeem(login_token(b"x" * 32))
    for junk in ("", ".", "a.b", "é.é", token.split(".")[0]):
        assert not s.redeem(junk)


def test_the_cookie_flags_follow_https() -> None:
    s = sessions()
    assert b"Secure" not in s.cookie_header("v")
    s.configure(b"master-key-123456789", False, 3600, secure=True)
    assert s.cookie_header("v").endswith(b"; Secure")
    assert b"Max-Age=0" in s.clear_cookie_header()


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), (b"", None), (b"bastion_session=", None),
    (b"a=1; bastion_session=v1; b=2", "v1"),
    (b"bastion_session=first; bastion_session=second", "first"),
    (b'bastion_session="quoted"', "quoted"), (b"xbastion_session=no", None),
    (b"\xff\xfe=; bastion_session=ok", "ok"),
])
def test_cookie_values_are_read_from_the_header(header: bytes | None,
                                                expected: str | None) -> None:
    assert cookie_value(header, "bastion_session") == expected
