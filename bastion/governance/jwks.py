"""An OIDC issuer's signing keys (its JWKS), fetched and refreshed off the request path.

:class:`IssuerKeys` holds the public keys by ``kid``; the request path reads them (a dict
lookup) and never waits on the network, except for one short, shared refetch when a token
names a key we do not have (the issuer rotated its keys): :meth:`IssuerKeys.refetch`, at
most one per ``REFETCH_SECONDS`` (a client sending made-up ``kid`` values must not turn
the gateway into a load generator against the issuer).

Sources: ``auth.oidc.jwks_url``, else the ``jwks_uri`` of the issuer's discovery document
(``<issuer>/.well-known/openid-configuration``, whose ``issuer`` must be ours exactly).
Both are https (http only on loopback). A fetch that fails, or a key set with no usable
key, keeps the keys we have: tokens signed by them keep validating while the issuer is
down. Accepted keys: ``RSA`` (2048 bits or more), ``EC`` P-256/P-384, ``OKP``
Ed25519/Ed448, each with a ``kid``, ``use`` absent or ``sig``, and an ``alg`` (when the
key names one) among the pinned algorithms; symmetric (``oct``) keys never.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import PyJWTError

from bastion.config_access import check_oidc_url

if TYPE_CHECKING:
    from bastion.config_access import OidcSettings
    from bastion.httpclient import HTTPClient

log = logging.getLogger("bastion.governance")
REFETCH_SECONDS = 10.0  # at most one refetch for an unknown kid per this (or per refresh)
MAX_DOCUMENT_BYTES = 512 * 1024  # a discovery document or a JWKS
MAX_KEYS = 64
MIN_RSA_BITS = 2048
RETRY_SECONDS = 1.0  # first retry after a failed fetch; doubles up to MAX_RETRY_SECONDS
MAX_RETRY_SECONDS = 30.0
_CURVES: dict[str, type[ec.EllipticCurve]] = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}


_LOADERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "RSA": RSAAlgorithm.from_jwk, "EC": ECAlgorithm.from_jwk, "OKP": OKPAlgorithm.from_jwk}


class JwksError(ValueError):
    """The issuer's discovery document or JWKS could not be used."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    key: Any  # a cryptography public key
    alg: str | None  # the JWK's own alg, when it names one

    def fits(self, alg: str) -> bool:
        """Whether a token signed with ``alg`` may be checked with this key: the key's
        type (and curve) is the algorithm's, and the JWK names no other algorithm."""
        if self.alg is not None and self.alg != alg:
            return False
        if alg.startswith(("RS", "PS")):
            return isinstance(self.key, rsa.RSAPublicKey)
        if alg in _CURVES:
            return isinstance(self.key, ec.EllipticCurvePublicKey) and isinstance(
                self.key.curve, _CURVES[alg])
        if alg == "EdDSA":
            return isinstance(self.key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
        return False


def parse_jwks(document: Any, algorithms: list[str]) -> dict[str, tuple[SigningKey, ...]]:
    """The usable signing keys of a JWKS document, by kid (a kid may name keys of two
    types). Unusable entries are skipped, each logged; raises JwksError when none is left."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise JwksError("the JWKS is not an object with a 'keys' list")
    found: dict[str, tuple[SigningKey, ...]] = {}
    for jwk in keys[:MAX_KEYS]:
        key = _signing_key(jwk, algorithms)
        if key is not None:
            found[key.kid] = (*found.get(key.kid, ()), key)
    if not found:
        raise JwksError(f"the JWKS has no usable signing key for {', '.join(algorithms)}")
    return found


def _signing_key(jwk: Any, algorithms: list[str]) -> SigningKey | None:
    if not isinstance(jwk, dict):
        return None
    kid, kty, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("alg")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        log.warning("JWKS: a key without a usable kid is skipped")
        return None
    if jwk.get("use", "sig") != "sig" or (alg is not None and alg not in algorithms):
        return None  # an encryption key, or one for an algorithm we do not accept
    loader: Callable[[dict[str, Any]], Any] | None = _LOADERS.get(str(kty))
    if loader is None:  # "oct" (a shared secret) above all: never a verification key here
        log.warning("JWKS: key %r of type %r is skipped", kid, kty)
        return None
    public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
    try:
        key = loader(public)
    except (PyJWTError, ValueError, TypeError, KeyError) as exc:
        log.warning("JWKS: key %r cannot be read: %s", kid, exc)
        return None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        log.warning("JWKS: RSA key %r has %d bits (< %d): skipped", kid, key.key_size,
                    MIN_RSA_BITS)
        return None
    signing = SigningKey(kid, key, alg if isinstance(alg, str) else None)
    if not any(signing.fits(a) for a in algorithms):
        return None
    return signing


class IssuerKeys:
    """One issuer's keys, shared by the authenticators built over the same source."""

    def __init__(self, settings: OidcSettings) -> None:
        self.issuer = settings.issuer
        self.jwks_url = settings.jwks_url
        self.algorithms = list(settings.algorithms)
        self.interval = settings.jwks_cache_seconds
        self.timeout = settings.timeout
        self.keys: dict[str, tuple[SigningKey, ...]] = {}
        self.generation = 0  # bumped when the key set changes (cached tokens lapse)
        self.loaded = False  # a JWKS was read at least once
        self.failures = 0  # consecutive failed fetches
        self._discovered: str | None = None
        self._raw: bytes | None = None
        self._client: HTTPClient | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._triggered = -float("inf")  # when an unknown kid last caused a refetch
        self._task: asyncio.Task[None] | None = None

    def same_source(self, settings: OidcSettings) -> bool:
        return (self.issuer, self.jwks_url, self.algorithms, self.interval, self.timeout) == (
            settings.issuer, settings.jwks_url, list(settings.algorithms),
            settings.jwks_cache_seconds, settings.timeout)

    def get(self, kid: str) -> tuple[SigningKey, ...]:
        return self.keys.get(kid, ())

    # ------------------------------------------------------------------ refreshing
    def start(self, background: set[asyncio.Task[None]]) -> None:
        """Refreshes in the background, every ``jwks_cache_seconds`` (sooner after a
        failure), until :meth:`stop` or the gateway's close cancels it."""
        if self._task is not None:
            return
        task = asyncio.get_running_loop().create_task(self.run_forever())
        self._task = task
        background.add(task)
        task.add_done_callback(background.discard)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._inflight is not None:
            self._inflight.cancel()

    async def run_forever(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._delay())
                await self.refresh()
        finally:
            if self._inflight is not None:
                self._inflight.cancel()
            if self._client is not None:
                await self._client.aclose()
                self._client = None

    def _delay(self) -> float:
        if self.failures:
            backoff = RETRY_SECONDS * 2.0 ** min(self.failures - 1, 5)
            return min(self.interval, backoff, MAX_RETRY_SECONDS)
        return self.interval if self.loaded else 0.0

    def refresh(self) -> Awaitable[bool]:
        """One fetch (joined if one is running): True when the keys were read. Awaiting
        it may be cancelled (a timeout) without cancelling the fetch."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.get_running_loop().create_task(self._fetch_logged())
        return asyncio.shield(self._inflight)

    def refetch(self) -> Awaitable[bool] | None:
        """For a token whose kid is unknown: the running fetch, or a new one unless one was
        started for this reason less than ``REFETCH_SECONDS`` ago (then None)."""
        if self._inflight is not None and not self._inflight.done():
            return asyncio.shield(self._inflight)
        now = time.monotonic()
        if now - self._triggered < min(REFETCH_SECONDS, self.interval):
            return None
        self._triggered = now
        return self.refresh()

    async def _fetch_logged(self) -> bool:
        from bastion.httpclient import HTTPClientError

        try:
            await asyncio.wait_for(self._fetch(), self.timeout * 2)
        except (HTTPClientError, OSError, TimeoutError, ValueError) as exc:  # JwksError too
            self._discovered = None  # the JWKS may have moved: discover again next time
            if not self.failures:
                log.warning("OIDC: cannot read the signing keys of %s (keeping %d): %s",
                            self.issuer, len(self.keys), exc)
            self.failures += 1
            return False
        if self.failures:
            log.info("OIDC: signing keys of %s read again: %d", self.issuer, len(self.keys))
        self.failures = 0
        return True

    async def _fetch(self) -> None:
        url = self.jwks_url or self._discovered or await self._discover()
        raw = await self._get(url)
        if raw == self._raw:
            self.loaded = True
            return
        keys = parse_jwks(_json(raw, "the JWKS"), self.algorithms)
        self.keys, self._raw, self.loaded = keys, raw, True
        self.generation += 1

    async def _discover(self) -> str:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = _json(await self._get(url), "the discovery document")
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise JwksError(f"the discovery document at {url} is not for issuer {self.issuer}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise JwksError(f"the discovery document at {url} has no jwks_uri")
        try:
            check_oidc_url(jwks_uri, "jwks_uri")
        except ValueError as exc:
            raise JwksError(str(exc)) from None
        self._discovered = jwks_uri
        return jwks_uri

    async def _get(self, url: str) -> bytes:
        if self._client is None:
            from bastion.httpclient import HTTPClient

            self._client = HTTPClient(max_connections_per_host=2, connect_timeout=self.timeout,
                                      read_timeout=self.timeout)
        response = await self._client.request("GET", url,
                                              headers=[(b"accept", b"application/json")])
        try:
            if response.status != 200:
                raise JwksError(f"GET {url}: HTTP {response.status}")
            body = bytearray()
            async for chunk in response.iter_chunks():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise JwksError(f"GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes")
            return bytes(body)
        finally:
            await response.aclose()


def _json(raw: bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JwksError(f"{what} is not JSON: {exc}") from None
