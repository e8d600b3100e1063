"""Configuration sections for access and spend: TLS, single sign-on, shared rate limits,
budgets. Part of :mod:`bastion.config` (which puts them into ``Settings``), kept apart so
that each module stays small; it reads no environment itself."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- HTTPS (server.tls)
class TlsSettings(_Strict):
    """HTTPS on the gateway's port (docs: README "HTTPS"). The pair is loaded at config
    load (a file that is missing, unreadable, not PEM, or a key that does not match is
    refused here); the files are re-read when they change, while serving."""

    cert: str = Field(description="PEM certificate chain file: the server's certificate "
                                  "first, then its intermediates")
    key: str = Field(description="PEM private key file of that certificate")
    key_password_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding the passphrase of an encrypted key")
    reload_interval: float = Field(
        5.0, gt=0, le=3600,
        description="seconds between looks at the files (mtime, size, inode); a changed "
                    "pair that loads serves new connections, a broken one is logged and the "
                    "old certificate kept")
    min_version: Literal["1.2", "1.3"] = Field("1.2", description="oldest TLS version "
                                                                  "accepted")

    @field_validator("cert", "key")
    @classmethod
    def _path(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError(f"server.tls.{info.field_name} is empty: name a PEM file")
        return value

    @model_validator(mode="after")
    def _loads(self, info: ValidationInfo) -> TlsSettings:
        # bastion.config.gateway_url passes check_files=False: a client needs the scheme,
        # not the (perhaps unreadable to it) key
        if (info.context or {}).get("check_files", True):
            from bastion.server.tls import server_context

            server_context(self.cert, self.key, self.password(), self.min_version)
        return self

    def password(self) -> str | None:
        """The key's passphrase, from ``key_password_env`` (None: the key is not encrypted)."""
        if self.key_password_env is None:
            return None
        from bastion.config import read_secret_env

        value = read_secret_env(self.key_password_env)
        if value is None:
            raise ValueError(f"server.tls.key_password_env: environment variable "
                             f"{self.key_password_env} is not set or empty")
        return value


# ---------------------------------------------------------------- shared rate limits
def check_redis_url(value: str | None, name: str) -> str | None:
    """A redis://, rediss:// or unix:// URL whose password (if any) is not a weak one."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    from bastion.secret_values import weak_secret

    if not value.strip() or value != value.strip():
        raise ValueError(f"{name} is empty or has surrounding blanks")
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        raise ValueError(f"{name} is not a URL") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"{name} must be a redis://, rediss:// or unix:// URL")
    if password is not None:
        weak = weak_secret(password, minimum=1)
        if weak is not None:
            raise ValueError(f"{name}: its password {weak}")
    return value


class Limits(_Strict):
    """A rate limit of a team, a user or a model alias (``limits.teams``, ``limits.users``,
    ``limits.models``): at least one of these."""

    rpm: int | None = Field(None, gt=0, strict=True, description="requests per minute")
    tpm: int | None = Field(
        None, gt=0, strict=True,
        description="tokens per minute: each request reserves its prompt (estimated from the "
                    "body's size) plus max_tokens, settled to its usage")
    max_parallel: int | None = Field(
        None, gt=0, strict=True, description="requests in flight at once (per process)")

    @model_validator(mode="after")
    def _some(self) -> Limits:
        if self.rpm is None and self.tpm is None and self.max_parallel is None:
            raise ValueError("a limit needs at least one of rpm, tpm, max_parallel "
                             "(an empty one would limit nothing)")
        return self


class LimitSettings(_Strict):
    """Rate limits of teams, users and models, and the keys' and theirs across processes
    and replicas (docs: README "Rate limits"). Without ``redis_url`` each process enforces
    them in memory, on what it serves."""

    teams: dict[str, Limits] = Field(
        default_factory=dict,
        description="team -> its limit, over all its keys together ('*': each team without "
                    "its own); checked besides each key's own limits")
    users: dict[str, Limits] = Field(
        default_factory=dict,
        description="user -> its limit ('*': each user without its own); the request's "
                    "'user' field, else the key's user (as budgets)")
    models: dict[str, Limits] = Field(
        default_factory=dict,
        description="model alias -> its limit, the total of every caller, the master key "
                    "included ('*': each alias without its own)")

    redis_url: str | None = Field(
        None, description="Redis holding the limits' sliding windows, shared by every worker "
                          "and replica (redis://, rediss:// or unix://); unset: in memory")
    fail: Literal["open", "closed"] = Field(
        "open", description="when Redis does not answer: open (this process's in-memory "
                            "limits decide) or closed (503 limits_unavailable)")
    lease_fraction: float = Field(
        0.01, gt=0, le=0.1,
        description="a process takes request slots and tokens from Redis in leases of at "
                    "most this fraction of a scope's RPM and TPM (at least one request, at "
                    "least the request's reservation)")
    lease_seconds: float = Field(
        1.0, gt=0, le=10, description="an unused lease lapses after this many seconds")
    timeout: float = Field(0.25, gt=0, le=5, description="seconds for one Redis call")
    window_seconds: float = Field(
        60.0, ge=1, le=60,
        description="length of the sliding window the per-minute limits count over; keep "
                    "60 (tests shorten it)")

    @field_validator("redis_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return check_redis_url(value, "limits.redis_url")

    @field_validator("teams", "users", "models")
    @classmethod
    def _names(cls, value: dict[str, Limits]) -> dict[str, Limits]:
        for name in value:
            if not name.strip() or name != name.strip():
                raise ValueError(f"the name {name!r} is empty or has surrounding blanks")
        return value


# ---------------------------------------------------------------- budgets (spend limits)
class Budget(_Strict):
    """A spend limit over a period, in ``budgets.currency``."""

    limit: float = Field(gt=0, description="hard limit: requests are refused (402) at it")
    period: Literal["daily", "weekly", "monthly", "total"] = Field(
        "monthly", description="calendar periods in UTC (weeks start on Monday)")
    soft: float | None = Field(
        None, gt=0, description="notify (webhook, audit log, metric) once a period at this spend")

    @model_validator(mode="after")
    def _check(self) -> Budget:
        if self.soft is not None and self.soft >= self.limit:
            raise ValueError("soft must be below limit")
        return self


class BudgetSettings(_Strict):
    currency: str = Field("USD", min_length=1, max_length=8,
                          description="the unit of the prices (models[].pricing) and budgets")
    teams: dict[str, Budget] = Field(
        default_factory=dict, description="team -> budget ('*': each team without its own)")
    users: dict[str, Budget] = Field(
        default_factory=dict,
        description="user -> budget ('*': each user without its own); a key's user, else "
                    "the request's 'user' field")
    assumed_max_tokens: int = Field(
        4096, ge=1, description="output tokens reserved for a request that sets no max_tokens")
    webhook: str | None = Field(
        None, pattern=r"^https?://", description="POSTed a JSON event on a soft or hard breach")
    redis_url: str | None = Field(
        None, description="Redis holding the budgets' spend and reservations, shared by every "
                          "worker and replica (redis://, rediss:// or unix://); unset: "
                          "limits.redis_url when that is set, else each process keeps its "
                          "own ledger in memory (and allows the whole budget)")
    fail: Literal["open", "closed"] = Field(
        "open", description="when Redis does not answer: open (this process's in-memory "
                            "ledger decides) or closed (budgeted requests get 503 "
                            "budgets_unavailable)")
    hold_seconds: float = Field(
        600.0, gt=0, le=86400,
        description="a reservation in Redis that is not settled within this many seconds "
                    "(its process died) stops counting; must exceed the longest request")
    lease_fraction: float = Field(
        0.01, ge=0, le=0.1,
        description="a process reserves from Redis in leases of this fraction of the "
                    "smallest limit of a request's budgets (at least its worst case); "
                    "0: one reservation per request")
    timeout: float = Field(0.25, gt=0, le=5, description="seconds for one Redis call")

    @field_validator("redis_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return check_redis_url(value, "budgets.redis_url")


# ---------------------------------------------------------------- single sign-on (OIDC)
# asymmetric only: a shared-secret HS* algorithm next to a JWKS is the key-confusion
# attack (the public key used as the HMAC secret), and "none" is no signature at all
OIDC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")


def _loopback_host(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_oidc_url(value: str, name: str) -> str:
    """An https URL, or http on a loopback host (a local issuer, tests)."""
    from urllib.parse import urlsplit

    if not value.strip() or value != value.strip():
        raise ValueError(f"{name} is empty or has surrounding blanks")
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError as exc:
        raise ValueError(f"{name} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{name} must be an https:// URL with a host")
    if parts.scheme == "http" and not _loopback_host(host):
        raise ValueError(f"{name} must use https (http only for a loopback issuer): "
                         "keys fetched over plain http can be swapped in transit")
    if parts.query or parts.fragment:
        raise ValueError(f"{name} must not have a query or fragment")
    return value


class OidcSettings(_Strict):
    """Bearer JWTs from an OpenID Connect issuer (docs: README "Single sign-on (OIDC)")."""

    issuer: str = Field(description="the issuer URL, matched exactly against the 'iss' claim")
    audience: str | list[str] = Field(
        description="our audience: a token's 'aud' must contain it (or one of these)")
    jwks_url: str | None = Field(
        None, description="the JWKS; default: jwks_uri of <issuer>/.well-known/"
                          "openid-configuration")
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256"],
        description=f"accepted signature algorithms, pinned (default [RS256]; of "
                    f"{', '.join(OIDC_ALGORITHMS)}); none and HS* are refused")
    team_claim: str = Field("team", min_length=1,
                            description="claim naming the team (a dotted path reaches inside "
                                        "objects, e.g. bastion.team)")
    role_claim: str = Field("role", min_length=1,
                            description="claim naming the role: a string or a list (groups)")
    user_claim: str = Field("sub", min_length=1, description="claim naming the user")
    default_role: str = Field("user", description="role of a token with no role claim")
    role_map: dict[str, str] = Field(
        default_factory=dict,
        description="role claim value -> bastion role (a list claim takes the highest); when "
                    "empty, claim values are bastion role names; a value that maps to nothing "
                    "is refused (403)")
    leeway: float = Field(30.0, ge=0, le=300, description="seconds of clock skew allowed "
                                                          "for exp, nbf and iat")
    jwks_cache_seconds: float = Field(600.0, ge=1, le=86400,
                                      description="seconds between JWKS refreshes")
    required_claims: list[str] = Field(
        default_factory=list, description="claims a token must carry (besides iss, aud, exp, "
                                          "sub; default none); dotted paths as for team_claim")
    timeout: float = Field(5.0, gt=0, le=60, description="seconds for a discovery or JWKS fetch")

    @model_validator(mode="after")
    def _check(self) -> OidcSettings:
        check_oidc_url(self.issuer, "auth.oidc.issuer")
        if self.jwks_url is not None:
            check_oidc_url(self.jwks_url, "auth.oidc.jwks_url")
        audiences = [self.audience] if isinstance(self.audience, str) else self.audience
        if not audiences or any(not a.strip() for a in audiences):
            raise ValueError("auth.oidc.audience is empty: every token would need no audience")
        if not self.algorithms:
            raise ValueError("auth.oidc.algorithms is empty")
        for alg in self.algorithms:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ValueError(
                    f"auth.oidc.algorithms: {alg!r} is refused (unsigned or shared-secret "
                    "tokens cannot be checked against an issuer's public keys)")
            if alg not in OIDC_ALGORITHMS:
                raise ValueError(f"auth.oidc.algorithms: unknown algorithm {alg!r} "
                                 f"(one of {', '.join(OIDC_ALGORITHMS)})")
        from bastion.governance.roles import ROLES

        for role in (self.default_role, *self.role_map.values()):
            if role not in ROLES:
                raise ValueError(f"auth.oidc: unknown role {role!r} (one of {', '.join(ROLES)})")
        for claim in (self.team_claim, self.role_claim, self.user_claim, *self.required_claims):
            if not claim.strip():
                raise ValueError("auth.oidc: a claim name is empty")
        return self

    @property
    def audiences(self) -> tuple[str, ...]:
        return (self.audience,) if isinstance(self.audience, str) else tuple(self.audience)


class AuthSettings(_Strict):
    oidc: OidcSettings | None = Field(
        None, description="single sign-on: OIDC/JWT bearer tokens (off when unset)")


# ---------------------------------------------------------------- dashboard (ui)
class UiSettings(_Strict):
    """The dashboard at ``/ui`` (docs: README "Dashboard")."""

    enabled: bool = Field(True, description="serve the dashboard at /ui")
    session_hours: float = Field(
        8.0, gt=0, le=24 * 30,
        description="hours a dashboard sign-in lasts (never past its key's or token's "
                    "expiry); signing in again starts a new one")
    refresh_seconds: float = Field(
        5.0, ge=1, le=3600, description="seconds between the live pages' updates")
