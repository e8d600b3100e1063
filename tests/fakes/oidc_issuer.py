"""A local OpenID Connect issuer for tests: a real HTTP server on loopback (a daemon
thread) serving ``/.well-known/openid-configuration`` and ``/jwks``, with keys made with
``cryptography`` and a helper that signs tokens::

    with LocalIssuer().start() as issuer:
        rsa = issuer.add_rsa("k1")
        token = issuer.token(rsa, sub="alice", aud="bastion", role="developer")
        issuer.down = True                   # discovery and JWKS answer 503
        issuer.remove("k1")                  # rotated out of the JWKS

``fetches`` counts the JWKS answered (a rate-limit test reads it), ``requests`` all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


@dataclass
class IssuerKey:
    kid: str
    private: Any
    alg: str

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        algo = RSAAlgorithm if self.alg.startswith(("RS", "PS")) else ECAlgorithm
        return {**algo.to_jwk(public, as_dict=True), "kid": self.kid, "use": "sig",
                "alg": self.alg}

    def public_pem(self) -> bytes:
        return bytes(self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_rsa(kid: str, alg: str = "RS256", bits: int = 2048) -> IssuerKey:
    return IssuerKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=bits), alg)


def new_ec(kid: str) -> IssuerKey:
    return IssuerKey(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")


class LocalIssuer:
    def __init__(self) -> None:
        self.keys: list[IssuerKey] = []
        self.extra_jwks: list[dict[str, Any]] = []  # served as they are (odd entries)
        self.down = False
        self.fetches = 0
        self.requests = 0  # every request, answered or not
        self.discovery_issuer: str | None = None  # the discovery's "issuer" (default: ours)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests += 1
                if issuer.down:
                    return self._send(503, {"error": "down"})
                if self.path == "/.well-known/openid-configuration":
                    return self._send(200, {
                        "issuer": issuer.discovery_issuer or issuer.url,
                        "jwks_uri": issuer.url + "/jwks"})
                if self.path == "/jwks":
                    issuer.fetches += 1
                    return self._send(200, {"keys": [*(k.jwk() for k in issuer.keys),
                                                     *issuer.extra_jwks]})
                return self._send(404, {"error": "not found"})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="local-issuer")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> LocalIssuer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ keys, tokens
    def add(self, key: IssuerKey) -> IssuerKey:
        self.keys.append(key)
        return key

    def remove(self, kid: str) -> None:
        self.keys = [k for k in self.keys if k.kid != kid]

    def claims(self, **claims: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {"iss": self.url, "aud": "bastion", "sub": "alice", "iat": now,
                "nbf": now, "exp": now + 600}
        base.update(claims)
        return {k: v for k, v in base.items() if v is not None}

    def token(self, key: IssuerKey, headers: dict[str, Any] | None = None,
              **claims: Any) -> str:
        """A token signed by ``key`` (claims default to valid ones; None drops one)."""
        return jwt.encode(self.claims(**claims), key.private, algorithm=key.alg,
                          headers={"kid": key.kid, **(headers or {})})


def unsigned_token(claims: dict[str, Any], kid: str) -> str:
    """``alg: none``, built by hand (no library makes one willingly)."""
    return f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}."


def hs256_token(claims: dict[str, Any], kid: str, secret: bytes) -> str:
    """HS256 with ``secret`` (the key-confusion attack: the RSA public key as the secret)."""
    signed = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}"
    mac = hmac.new(secret, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{b64(mac)}"
