"""Single sign-on: OIDC/JWT bearer tokens → principals.

A token that is not a virtual key nor the master key and has the shape of a compact JWS
(three dot-separated parts) is checked here when ``auth.oidc`` is set
(:meth:`OidcAuthenticator.verify`), in this order, each failure a 401:

1. size (at most ``MAX_TOKEN_BYTES``) and shape, before anything is decoded;
2. the header: ``alg`` among the pinned ``auth.oidc.algorithms`` (never ``none`` nor
   ``HS*``: the configuration refuses them), a ``kid``, no ``crit`` nor ``b64``;
3. the key: the issuer's key of that ``kid`` (:mod:`bastion.governance.jwks`, in memory),
   of the algorithm's type and curve; an unknown ``kid`` raises :class:`SigningKeyUnknown`,
   which ``Gateway.handle`` answers by awaiting one shared, rate-limited refetch (the
   issuer rotated its keys) and checking again; no keys at all is a 503 ``oidc_unavailable``;
4. the signature;
5. the claims: ``iss`` exactly ours, ``aud`` containing ours, ``exp`` required and not past,
   ``nbf`` and ``iat`` not in the future (each with ``leeway`` seconds), ``sub``, and
   ``required_claims``.

Then the claims become a :class:`~bastion.governance.keys.Principal` (:func:`principal_of`):
``key_id`` ``oidc:<sub>`` (what traces and the audit log name), the team, the user, and the
role from ``role_claim`` through ``role_map`` (a list, such as groups, takes the highest
mapped role: admin > developer > viewer > user; no role claim gives ``default_role``; a
claim that maps to nothing is refused with a 403, never given a default: least privilege).
A validated token is cached by its digest until it expires (at most
``TOKEN_CACHE_SECONDS``, and only while the issuer's key set is unchanged), so a repeat
request costs a hash and a dict read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
import re
import time
from collections.abc import Awaitable, Callable
from hashlib import blake2b
from typing import TYPE_CHECKING, Any, NoReturn

import orjson
from jwt.algorithms import Algorithm, get_default_algorithms

from bastion.config_access import OIDC_ALGORITHMS
from bastion.errors import AuthenticationFailed, PermissionDenied, ServerError
from bastion.governance.jwks import IssuerKeys
from bastion.governance.keys import Principal
from bastion.governance.roles import GRANTS, ROLES

if TYPE_CHECKING:
    from bastion.config_access import OidcSettings

MAX_TOKEN_BYTES = 16 * 1024
TOKEN_CACHE_SECONDS = 300.0
TOKEN_CACHE_MAX = 10_000
MAX_CLAIM_CHARS = 256
_SEGMENT = re.compile(rb"[A-Za-z0-9_-]+")
_VERIFIERS: dict[str, Algorithm] = {
    name: algorithm for name, algorithm in get_default_algorithms().items()
    if name in OIDC_ALGORITHMS
}
_NEEDS_TEAM = ("developer", "viewer")  # roles that read a team's data


def looks_like_jwt(token: bytes) -> bool:
    """The shape of a compact JWS: three dot-separated parts (checked fully in verify)."""
    return token.count(b".") == 2


class SigningKeyUnknown(AuthenticationFailed):
    """A token names a key the issuer's key set we hold does not have (or we hold none):
    ``await retry()`` refetches the keys once (shared, rate-limited) and checks again.
    Not awaited, it is a 401."""

    def __init__(self, message: str, retry: Callable[[], Awaitable[Principal]]) -> None:
        super().__init__(message, code="unknown_signing_key", reason="invalid")
        self.retry = retry


def _invalid(message: str, reason: str = "invalid", code: str = "invalid_token"
             ) -> AuthenticationFailed:
    return AuthenticationFailed(message, code=code, reason=reason)


class OidcAuthenticator:
    """Checks bearer JWTs against one issuer (``auth.oidc``) and maps their claims."""

    def __init__(self, settings: OidcSettings, keys: IssuerKeys | None = None) -> None:
        self.settings = settings
        self.keys = keys if keys is not None else IssuerKeys(settings)
        self._audiences = frozenset(settings.audiences)
        self._cache: dict[bytes, tuple[float, int, Principal]] = {}

    def rebuilt(self, settings: OidcSettings | None) -> OidcAuthenticator | None:
        """The authenticator for new settings (a reload): this one when they are the same,
        else a new one that keeps these keys when it reads them from the same place."""
        if settings is None:
            return None
        if settings == self.settings:
            return self
        return OidcAuthenticator(settings, self.keys if self.keys.same_source(settings)
                                 else None)

    def verify(self, token: bytes, now: float | None = None, final: bool = False) -> Principal:
        """The principal of a valid token; raises AuthenticationFailed (401),
        PermissionDenied (403: a role that maps to nothing), SigningKeyUnknown (an unknown
        kid, unless ``final``) or ServerError (503: no keys, when ``final``)."""
        now = time.time() if now is None else now
        digest = blake2b(token, digest_size=32, person=b"bastion-oidc").digest()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now and hit[1] == self.keys.generation:
            return hit[2]
        claims = self._claims(token, now, final)
        principal = principal_of(claims, self.settings)
        if len(self._cache) >= TOKEN_CACHE_MAX:
            self._cache.clear()
        until = min(float(claims["exp"]), now + TOKEN_CACHE_SECONDS)
        self._cache[digest] = (until, self.keys.generation, principal)
        return principal

    async def _after_refetch(self, token: bytes) -> Principal:
        waiting = self.keys.refetch()
        if waiting is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting, self.settings.timeout)
        return self.verify(token, final=True)

    def _claims(self, token: bytes, now: float, final: bool) -> dict[str, Any]:
        """The claims of a token whose signature and registered claims are valid."""
        if len(token) > MAX_TOKEN_BYTES:
            raise _invalid(f"The bearer token is larger than {MAX_TOKEN_BYTES} bytes",
                           "malformed")
        parts = token.split(b".")
        if len(parts) != 3:
            raise _invalid("The bearer token is not a JWT (three dot-separated parts)",
                           "malformed")
        header_part, payload_part, signature_part = parts
        header = _json_segment(header_part, "header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.settings.algorithms:
            shown = alg[:32] if isinstance(alg, str) else alg
            raise _invalid(f"The token's algorithm {shown!r} is not accepted (accepted: "
                           f"{', '.join(self.settings.algorithms)})")
        if "crit" in header or "b64" in header:
            raise _invalid("The token's header has critical extensions this gateway does "
                           "not support")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("The token's header names no signing key (kid)")
        keys = [k for k in self.keys.get(kid) if k.fits(alg)]
        if not keys:
            self._unknown_key(token, kid, alg, final)
        signature = _segment(signature_part, "signature")
        verifier = _VERIFIERS[alg]
        signed = header_part + b"." + payload_part
        if not any(verifier.verify(signed, k.key, signature) for k in keys):
            raise _invalid("The token's signature is invalid")
        claims = _json_segment(payload_part, "payload")
        self._check_claims(claims, now)
        return claims

    def _unknown_key(self, token: bytes, kid: str, alg: str, final: bool) -> NoReturn:
        if self.keys.get(kid):  # the kid is known, for another key type or algorithm
            raise _invalid(f"The signing key {kid[:64]!r} is not a key for {alg}")
        if not self.keys.keys:
            if final:
                raise ServerError(
                    "Single sign-on is unavailable: the issuer's signing keys could not be "
                    f"read from {self.settings.issuer}", code="oidc_unavailable", status=503,
                    retry_after=5)
            raise SigningKeyUnknown("The issuer's signing keys are not loaded yet",
                                    lambda: self._after_refetch(token))
        if final:
            raise _invalid(f"The token's signing key {kid[:64]!r} is not among the issuer's "
                           "keys", code="unknown_signing_key")
        raise SigningKeyUnknown(f"The token's signing key {kid[:64]!r} is unknown",
                                lambda: self._after_refetch(token))

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        s = self.settings
        if claims.get("iss") != s.issuer:
            raise _invalid("The token was not issued by the configured issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not self._audiences.intersection(
                a for a in audiences if isinstance(a, str)):
            raise _invalid("The token is not meant for this gateway (audience)")
        exp = _number(claims, "exp")
        if exp is None:
            raise _invalid("The token has no expiry (exp)")
        if now > exp + s.leeway:
            raise _invalid("The token has expired", "expired", "expired_token")
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf > now + s.leeway:
            raise _invalid("The token is not valid yet (nbf)", code="token_not_yet_valid")
        iat = _number(claims, "iat")
        if iat is not None and iat > now + s.leeway:
            raise _invalid("The token was issued in the future (iat)")
        missing = [c for c in ("sub", *s.required_claims) if claim(claims, c) is None]
        if missing:
            raise _invalid(f"The token lacks required claims: {', '.join(missing)}")


def _segment(part: bytes, what: str) -> bytes:
    if not _SEGMENT.fullmatch(part):
        raise _invalid(f"The bearer token is not a JWT (its {what} is not base64url)",
                       "malformed")
    try:
        return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise _invalid(f"The bearer token is not a JWT (its {what} is not base64url)",
                       "malformed") from None


def _json_segment(part: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(_segment(part, what))
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise _invalid(f"The bearer token is not a JWT (its {what} is not a JSON object)",
                       "malformed")
    return value


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value):
        raise _invalid(f"The token's '{name}' claim is not a number of seconds")
    return float(value)


# ------------------------------------------------------------------ claims → principal
def claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, else by dotted path into objects (``bastion.team``); a claim whose
    name has dots (``https://example.com/team``) is found by its name first."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _text(claims: dict[str, Any], path: str, required: bool) -> str | None:
    value = claim(claims, path)
    if value is None or value == "":
        if required:
            raise _invalid(f"The token has no '{path}' claim")
        return None
    if not isinstance(value, str) or len(value) > MAX_CLAIM_CHARS:
        raise _invalid(f"The token's '{path}' claim is not a string of at most "
                       f"{MAX_CLAIM_CHARS} characters")
    return value


def role_of(claims: dict[str, Any], settings: OidcSettings) -> str:
    """The Bastion role the claims map to (see the module docstring)."""
    value = claim(claims, settings.role_claim)
    if value is None or value == [] or value == "":
        return settings.default_role
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _invalid(f"The token's '{settings.role_claim}' claim is not a string or a "
                       "list of strings")
    table = settings.role_map or {role: role for role in ROLES}
    mapped = {table[v] for v in values if v in table}
    if not mapped:
        shown = ", ".join(repr(v[:64]) for v in values[:5])
        raise PermissionDenied(
            f"The token's '{settings.role_claim}' claim ({shown}) maps to no Bastion role; "
            "see auth.oidc.role_map", code="role_not_mapped")
    return next(role for role in ROLES if role in mapped)


def principal_of(claims: dict[str, Any], settings: OidcSettings) -> Principal:
    sub = _text(claims, "sub", required=True)
    user = _text(claims, settings.user_claim, required=True)
    team = _text(claims, settings.team_claim, required=False)
    role = role_of(claims, settings)
    if role in _NEEDS_TEAM and team is None:
        raise PermissionDenied(
            f"A {role} needs a team to read: the token has no '{settings.team_claim}' claim",
            code="team_required")
    exp = claims.get("exp")
    return Principal(key_id=f"oidc:{sub}", role=role, team=team, user=user,
                     expires_at=float(exp) if isinstance(exp, int | float) else None,
                     grants=GRANTS[role])
