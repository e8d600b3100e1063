"""Virtual keys: tokens, their digests, the principals they stand for, the in-memory table.

A token is ``bst-`` and 43 base62 characters (32 random bytes), shown once when made. The
store keeps only a MAC of it under a pepper: keyed BLAKE2b-256 (BLAKE2's own MAC mode, a
PRF like HMAC). The pepper is derived from the deployment's secret
(``store.encryption_key``, else ``<home>/encryption.key``) and never stored with the keys,
so a copy of the database does not let anyone test guesses. (A 32-byte random token needs
no slow hash: there is nothing to guess.)

The request path asks :meth:`KeyTable.lookup`: one MAC and one dict read. Keyed BLAKE2b
costs 0.54 µs here; HMAC-SHA256 through OpenSSL 3 cost 1.5 µs (a provider fetch per call),
and more on a core the gateway shares (docs/benchmarks.md).
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

from bastion.config_access import Budget
from bastion.governance.roles import GRANTS

TOKEN_PREFIX = "bst-"  # noqa: S105 - the prefix, not a key
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
TOKEN_CHARS = 43  # 62**43 > 2**256
TOKEN_LENGTH = len(TOKEN_PREFIX) + TOKEN_CHARS
PEPPER_INFO = b"bastion api key pepper v1"


def new_token() -> str:
    """A new key: 32 random bytes in base62, fixed width."""
    n = int.from_bytes(secrets.token_bytes(32), "big")
    chars = []
    for _ in range(TOKEN_CHARS):
        n, r = divmod(n, 62)
        chars.append(_ALPHABET[r])
    return TOKEN_PREFIX + "".join(chars)


def digest(pepper: bytes, token: bytes) -> bytes:
    return blake2b(token, key=pepper, digest_size=32, person=b"bastion-api-key").digest()


def hint(token: str) -> str:
    """What lists show of a key: enough to tell keys apart, nothing to use."""
    return f"{TOKEN_PREFIX}...{token[-4:]}"


def looks_like_key(token: bytes) -> bool:
    return len(token) == TOKEN_LENGTH and token.startswith(b"bst-")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: a virtual key's attributes, or the master key (``key_id`` None)."""

    key_id: str | None
    role: str
    team: str | None = None
    user: str | None = None
    name: str | None = None
    models: frozenset[str] | None = None  # None: every model
    limits: tuple[int | None, int | None, int | None] | None = None  # rpm, tpm, parallel
    budget: Budget | None = None  # the key's own spend limit
    guard_policy: str | None = None  # its requests' guard policy, before any attached one
    content_mode: str | None = None  # what of its traces' content is kept (never more
    priority: int | None = None  # than its team's mode allows); its admission priority
    expires_at: float | None = None
    grants: frozenset[str] = field(default=frozenset())

    @property
    def admin(self) -> bool:
        return "admin" in self.grants

    def can(self, permission: str) -> bool:
        return permission in self.grants

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models

    def sees_team(self, team: str | None) -> bool:
        """Whether data of ``team`` is this principal's to read (an admin reads all)."""
        return self.admin or (self.team is not None and team == self.team)


MASTER = Principal(key_id=None, role="admin", name="master key", grants=GRANTS["admin"])


def principal_of(row: Mapping[str, Any]) -> Principal:
    models = row.get("models")
    limits = dict(row.get("limits") or {})
    budget = limits.pop("budget", None)
    return Principal(
        key_id=row["id"], role=row["role"], team=row.get("team"), user=row.get("user"),
        name=row.get("name"), models=frozenset(models) if models is not None else None,
        limits=(limits.get("rpm"), limits.get("tpm"), limits.get("max_parallel"))
        if limits else None,
        budget=Budget.model_validate(budget) if budget else None,
        guard_policy=row.get("guard_policy"), content_mode=row.get("content_mode"),
        priority=row.get("priority"), expires_at=row.get("expires_at"),
        grants=GRANTS.get(row["role"], frozenset()),
    )


class KeyTable:
    """The live keys of a worker, by digest. Rows come from the store (at start, then
    every poll) and from this worker's own changes; applying a row again is harmless, and
    an older version of a row never replaces a newer one."""

    __slots__ = ("_by_digest", "_digest_of", "_pepper", "_revoked", "_version", "loaded",
                 "stamp")

    def __init__(self, pepper: bytes) -> None:
        self._pepper = pepper
        self._by_digest: dict[bytes, Principal] = {}
        self._digest_of: dict[str, bytes] = {}
        self._version: dict[str, float] = {}
        self._revoked: dict[bytes, str] = {}  # digest -> id: for the audit of failed uses
        self.stamp = 0.0  # the newest updated_at applied
        self.loaded = False  # the first full read from the store is in

    def apply(self, rows: Iterable[Mapping[str, Any]]) -> int:
        changed = 0
        for row in rows:
            key_id, updated = row["id"], float(row["updated_at"])
            if self._version.get(key_id, -1.0) >= updated:
                continue
            self._version[key_id] = updated
            self.stamp = max(self.stamp, updated)
            old = self._digest_of.pop(key_id, None)
            if old is not None:
                self._by_digest.pop(old, None)
            changed += 1
            if row.get("revoked_at") is not None:
                self._revoked[bytes.fromhex(row["digest"])] = key_id
                continue
            key_digest = bytes.fromhex(row["digest"])
            self._by_digest[key_digest] = principal_of(row)
            self._digest_of[key_id] = key_digest
        return changed

    def lookup(self, token: bytes) -> Principal | None:
        """The principal of a live key (expired ones too: the caller says why it fails)."""
        return self._by_digest.get(digest(self._pepper, token))

    def by_id(self, key_id: str) -> Principal | None:
        """The principal of a live key by its id (a dashboard session names its key so)."""
        found = self._digest_of.get(key_id)
        return None if found is None else self._by_digest.get(found)

    def revoked_id(self, token: bytes) -> str | None:
        """The id of a revoked key (its use is refused like an unknown key's; the audit
        log names it)."""
        return self._revoked.get(digest(self._pepper, token))

    def digest_hex(self, token: str) -> str:
        return digest(self._pepper, token.encode()).hex()

    def principals(self) -> list[Principal]:
        return list(self._by_digest.values())

    def __len__(self) -> int:
        return len(self._by_digest)


def expired(principal: Principal, now: float | None = None) -> bool:
    return principal.expires_at is not None and principal.expires_at <= (now or time.time())
