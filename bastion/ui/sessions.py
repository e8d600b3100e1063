"""Dashboard sessions: a signed cookie, its CSRF token, and one-time sign-in links.

A session is a cookie the gateway signed (keyed BLAKE2b under a key derived from the
deployment secret, so every worker and replica sharing that secret accepts it) naming who
signed in and until when; nothing is kept per session on the server. What it names is
looked up again on every request:

- a virtual key's session holds the key's id: a key revoked or expired ends its sessions
  at once (the key table is the one the ``/v1`` path uses);
- a master key's session holds a MAC of the master key: a changed master key ends them;
- an SSO session holds the token's claims as mapped (team, role, user) and ends when the
  token would have expired;
- ``open`` (no master key and no SSO, loopback only) comes from a one-time sign-in link
  (:meth:`Sessions.login_token`), printed by ``bastion serve`` and ``bastion ui url``.

A state change made with a session (any method but GET and HEAD) must carry the session's
CSRF token in ``x-csrf-token`` (the page has it; another site can neither read it nor send
a custom header without a CORS preflight, which this gateway never grants); the cookie is
``HttpOnly`` and ``SameSite=Strict``, and ``Secure`` when the gateway serves HTTPS.
Logging out ends the session in this worker at once, and everywhere when it expires;
within one process the revoked ids are kept until then.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from dataclasses import dataclass
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

import orjson

from bastion.errors import AuthenticationFailed, PermissionDenied
from bastion.governance.keys import MASTER, Principal, expired
from bastion.governance.roles import GRANTS, ROLES

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.governance.keys import KeyTable
    from bastion.server.types import Request

COOKIE = "bastion_session"
CSRF_HEADER = b"x-csrf-token"
SESSION_INFO = b"bastion ui session v1"
LOGIN_TOKEN_SECONDS = 24 * 3600
SAFE_METHODS = frozenset(("GET", "HEAD"))
_MAX_COOKIE = 4096


def session_key(settings: Settings) -> bytes:
    """The sessions' signing key, from the deployment secret (shared by every worker and
    replica that shares the secret; a new secret ends every session)."""
    from bastion.observe.setup import deployment_secret
    from bastion.observe.spool_crypto import derive

    return derive(deployment_secret(settings), SESSION_INFO)


def login_token(key: bytes, now: float | None = None) -> str:
    """A one-time sign-in token for ``open`` gateways (valid a day; once per process)."""
    now = time.time() if now is None else now
    body = _b64(orjson.dumps({"n": secrets.token_urlsafe(12),
                              "exp": int(now + LOGIN_TOKEN_SECONDS)}))
    return f"{body}.{_b64(_mac(key, body.encode(), b'bastion-ui-link'))[:32]}"


def _mac(key: bytes, data: bytes, person: bytes) -> bytes:
    return blake2b(data, key=key, digest_size=32, person=person).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    """A verified session: its id, who it is, and when it ends."""

    sid: str
    kind: str  # key | master | oidc | open
    principal: Principal
    expires_at: float
    csrf: str


class Sessions:
    """Issues and checks session cookies and sign-in links for one gateway."""

    def __init__(self, secret_key: bytes, keys: KeyTable, lifetime_s: float,
                 secure: bool = False) -> None:
        if len(secret_key) < 32:
            raise ValueError("the session key must be 32 bytes")
        self._key = secret_key
        self._keys = keys
        self.lifetime_s = lifetime_s
        self.secure = secure
        self.master_key: bytes | None = None  # set by the gateway (and on reload)
        self.open = False  # no master key and no SSO: sign in with a one-time link
        self._logged_out: dict[str, float] = {}  # sid -> its expiry
        self._used_links: dict[str, float] = {}  # a link's nonce -> its expiry

    def configure(self, master_key: bytes | None, open_mode: bool, lifetime_s: float,
                  secure: bool) -> None:
        """The gateway's current settings (at start and on every reload)."""
        self.master_key = master_key
        self.open = open_mode
        self.lifetime_s = lifetime_s
        self.secure = secure

    # ------------------------------------------------------------------ issuing
    def issue(self, kind: str, principal: Principal, now: float | None = None) -> str:
        """A cookie value for ``principal`` signed in as ``kind``."""
        now = time.time() if now is None else now
        expires = now + self.lifetime_s
        if principal.expires_at is not None:
            expires = min(expires, principal.expires_at)
        body: dict[str, Any] = {"v": 1, "sid": secrets.token_urlsafe(16), "k": kind,
                                "iat": int(now), "exp": expires}
        if kind == "key":
            body["id"] = principal.key_id
        elif kind == "master":
            body["m"] = self._master_mark()
        elif kind == "oidc":
            body["p"] = {"id": principal.key_id, "role": principal.role,
                         "team": principal.team, "user": principal.user}
        payload = _b64(orjson.dumps(body))
        return f"{payload}.{_b64(_mac(self._key, payload.encode(), b'bastion-ui-sess'))}"

    def cookie_header(self, value: str) -> bytes:
        secure = "; Secure" if self.secure else ""
        return (f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; "
                f"Max-Age={int(self.lifetime_s)}{secure}").encode()

    def clear_cookie_header(self) -> bytes:
        secure = "; Secure" if self.secure else ""
        return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}".encode()

    def login_token(self, now: float | None = None) -> str:
        return login_token(self._key, now)

    def redeem(self, token: str, now: float | None = None) -> bool:
        """Whether ``token`` is a valid sign-in link not used before in this process."""
        now = time.time() if now is None else now
        body = self._signed(token, b"bastion-ui-link", 32)
        if body is None:
            return False
        nonce, exp = body.get("n"), body.get("exp")
        if not isinstance(nonce, str) or not isinstance(exp, int) or exp <= now:
            return False
        self._sweep(self._used_links, now)
        if nonce in self._used_links:
            return False
        self._used_links[nonce] = float(exp)
        return True

    # ------------------------------------------------------------------ checking
    def from_request(self, request: Request) -> Session | None:
        """The request's session, or None when it sends no session cookie. A cookie that
        is forged, expired, logged out, or whose key is gone is a 401; a state change
        without the session's CSRF token is a 403."""
        value = cookie_value(request.header(b"cookie"), COOKIE)
        if value is None:
            return None
        session = self.verify(value)
        if session is None:
            raise AuthenticationFailed(
                "The dashboard session has expired or was ended: sign in again",
                code="invalid_session", reason="invalid")
        if request.method not in SAFE_METHODS:
            given = request.header(CSRF_HEADER)
            if given is None or not hmac.compare_digest(given, session.csrf.encode()):
                raise PermissionDenied(
                    "A change made with a dashboard session needs its CSRF token in the "
                    "x-csrf-token header", code="csrf_failed")
        return session

    def verify(self, value: str, now: float | None = None) -> Session | None:
        now = time.time() if now is None else now
        if len(value) > _MAX_COOKIE:
            return None
        body = self._signed(value, b"bastion-ui-sess", None)
        if body is None or body.get("v") != 1:
            return None
        sid, kind, exp = body.get("sid"), body.get("k"), body.get("exp")
        if not isinstance(sid, str) or not isinstance(exp, int | float) or exp <= now:
            return None
        if sid in self._logged_out:
            return None
        principal = self._principal(kind, body, now)
        if principal is None:
            return None
        return Session(sid, str(kind), principal, float(exp), self.csrf_of(sid))

    def csrf_of(self, sid: str) -> str:
        return _mac(self._key, sid.encode(), b"bastion-ui-csrf").hex()

    def logout(self, session: Session, now: float | None = None) -> None:
        self.signed_out(session.sid, session.expires_at, now)

    def signed_out(self, sid: str, expires_at: float, now: float | None = None) -> None:
        """Refuses the session ``sid`` from now on (until it would have expired)."""
        self._sweep(self._logged_out, time.time() if now is None else now)
        self._logged_out[sid] = expires_at

    # ------------------------------------------------------------------ helpers
    def _principal(self, kind: Any, body: dict[str, Any], now: float) -> Principal | None:
        if kind == "key":
            key_id = body.get("id")
            found = self._keys.by_id(key_id) if isinstance(key_id, str) else None
            return None if found is None or expired(found, now) else found
        if kind == "master":
            mark = body.get("m")
            ok = (self.master_key is not None and isinstance(mark, str)
                  and hmac.compare_digest(mark, self._master_mark()))
            return MASTER if ok else None
        if kind == "open":
            return MASTER if self.open else None
        if kind == "oidc":
            p = body.get("p")
            if not isinstance(p, dict) or p.get("role") not in ROLES:
                return None
            role = str(p["role"])
            return Principal(key_id=str(p.get("id")), role=role, team=p.get("team"),
                             user=p.get("user"), expires_at=float(body["exp"]),
                             grants=GRANTS[role])
        return None

    def _master_mark(self) -> str:
        if self.master_key is None:
            return ""
        return _b64(_mac(self._key, self.master_key, b"bastion-ui-mast")[:16])

    def _signed(self, value: str, person: bytes, length: int | None) -> dict[str, Any] | None:
        payload, dot, mac = value.partition(".")
        if not dot or not payload or not mac or not value.isascii():
            return None
        expected = _b64(_mac(self._key, payload.encode(), person))
        if length is not None:
            expected = expected[:length]
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            body = orjson.loads(_unb64(payload))
        except (ValueError, orjson.JSONDecodeError):
            return None
        return body if isinstance(body, dict) else None

    @staticmethod
    def _sweep(seen: dict[str, float], now: float) -> None:
        if len(seen) > 1000:
            for sid in [s for s, exp in seen.items() if exp <= now]:
                del seen[sid]


def cookie_value(header: bytes | None, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header (the first one when repeated: a
    browser sends the most specific path first)."""
    if not header:
        return None
    for part in header.decode("latin-1").split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key == name:
            return value.strip().strip('"') or None
    return None
