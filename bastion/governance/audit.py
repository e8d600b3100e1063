"""The tamper-evident audit log: what admins did, as a hash chain with signed heads.

Actions recorded: ``key.create``, ``key.rotate``, ``key.revoke`` and ``role.grant`` (the
key API), ``config.reload``, ``user.erase.start``/``user.erase`` and ``user.export``
(data subject requests, the user named by its subject id only), ``auth.failure`` (keys
that failed: invalid, expired or revoked, aggregated per minute by
:mod:`bastion.governance.authfail`), and the budgets' breaches.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the entry's own fields
(canonical JSON), so changing, removing or reordering any entry breaks every link after
it. After each append the head, ``(seq, hash)``, is signed with Ed25519 and stored
(``audit_heads``) and written outside the database (``<home>/audit.head``): a log cut
short, however consistently, is shorter than a head someone signed. The signing key is
derived from the deployment secret (HKDF), like the other keys, so whoever can verify
with the public key cannot forge, and the public key is in every head.

Admin actions are rare, so every append is signed (~50 µs), not only every so often.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64
SIGNING_INFO = b"bastion audit signing v1"
ANCHOR_FILE = "audit.head"


def entry_hash(prev: str, entry: Mapping[str, Any]) -> str:
    fields = {k: entry.get(k) for k in ("seq", "ts", "actor", "action", "target", "detail")}
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(prev.encode() + b"\n" + body.encode()).hexdigest()


def _head_message(seq: int, head_hash: str) -> bytes:
    return b"bastion-audit-head\n%d\n%s" % (seq, head_hash.encode())


class Signer:
    def __init__(self, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed[:32])
        self.public_key = self._key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw).hex()

    def sign(self, seq: int, head_hash: str) -> str:
        return self._key.sign(_head_message(seq, head_hash)).hex()


def signature_ok(public_key: str, seq: int, head_hash: str, signature: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(signature), _head_message(seq, head_hash))
    except (InvalidSignature, ValueError):
        return False
    return True


def write_anchor(home: str | os.PathLike[str], head: Mapping[str, Any]) -> None:
    """The newest signed head, outside the database (replaced atomically, 0600)."""
    path = Path(home) / ANCHOR_FILE
    tmp = path.with_name(f".{ANCHOR_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(dict(head)).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_anchor(home: str | os.PathLike[str]) -> dict[str, Any] | None:
    path = Path(home) / ANCHOR_FILE
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:
        return {"unreadable": str(exc)}


@dataclass
class Verdict:
    entries: int = 0
    last_seq: int = 0
    heads: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(entries: Iterable[Mapping[str, Any]], heads: Iterable[Mapping[str, Any]],
           public_key: str | None, anchor: Mapping[str, Any] | None) -> Verdict:
    """Walks the chain in ``seq`` order and checks every head against it. A problem names
    the first entry where the log stops being what was signed."""
    verdict = Verdict()
    prev, expected = GENESIS, 1
    by_seq: dict[int, str] = {}
    for entry in entries:
        seq = int(entry["seq"])
        if seq != expected:
            verdict.problems.append(f"entry {expected} is missing (next is {seq}): "
                                    "entries were deleted or reordered")
            break
        if entry["prev"] != prev:
            verdict.problems.append(f"entry {seq} does not follow entry {seq - 1}: "
                                    "the log was reordered or an entry replaced")
            break
        if entry_hash(prev, entry) != entry["hash"]:
            verdict.problems.append(f"entry {seq} was changed after it was written")
            break
        prev = entry["hash"]
        by_seq[seq] = prev
        verdict.entries += 1
        verdict.last_seq = seq
        expected = seq + 1
    newest = 0
    for head in heads:
        verdict.heads += 1
        seq = int(head["seq"])
        newest = max(newest, seq)
        if public_key is not None and head["public_key"] != public_key:
            verdict.problems.append(f"head {seq} is signed by another key")
        elif not signature_ok(head["public_key"], seq, head["hash"], head["signature"]):
            verdict.problems.append(f"head {seq} has a bad signature")
        elif seq in by_seq and by_seq[seq] != head["hash"]:
            verdict.problems.append(f"entry {seq} is not the one its signed head names")
    if anchor is not None:
        if "unreadable" in anchor:
            verdict.problems.append(f"the head file is unreadable: {anchor['unreadable']}")
        elif not signature_ok(str(anchor.get("public_key")), int(anchor.get("seq", 0)),
                              str(anchor.get("hash")), str(anchor.get("signature"))):
            verdict.problems.append("the head file has a bad signature")
        else:
            newest = max(newest, int(anchor["seq"]))
            seq = int(anchor["seq"])
            if seq in by_seq and by_seq[seq] != anchor["hash"]:
                verdict.problems.append(f"entry {seq} is not the one the head file names")
    if newest > verdict.last_seq and not verdict.problems:
        verdict.problems.append(f"the log ends at entry {verdict.last_seq} but entry "
                                f"{newest} was signed: it was truncated")
    elif verdict.entries and newest < verdict.last_seq and not verdict.problems:
        verdict.problems.append(f"entries {newest + 1}-{verdict.last_seq} were never signed")
    return verdict


def signer_of(settings: Any) -> Signer:
    """The deployment's audit signer (its seed: HKDF of the deployment secret)."""
    from bastion.observe.setup import deployment_secret
    from bastion.observe.spool_crypto import derive

    return Signer(derive(deployment_secret(settings), SIGNING_INFO))


class AuditTrail:
    """What the gateway calls after an admin action: append, sign, anchor (in a thread).
    A store that is down loses the entry, which is logged as an error (the action itself
    already happened)."""

    def __init__(self, settings: Any, store: Any) -> None:
        self._settings = settings
        self._store = store
        self.signer = signer_of(settings)

    async def record(self, actor: str, action: str, target: str | None = None,
                     detail: Mapping[str, Any] | None = None) -> None:
        import logging

        try:
            await self.append(actor, action, target, detail)
        except Exception:
            logging.getLogger("bastion.audit").exception(
                "audit entry lost: %s %s %s", actor, action, target)

    async def append(self, actor: str, action: str, target: str | None = None,
                     detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """As :meth:`record`, but a failure raises (StoreUnavailable when the store is
        down): for an entry the action depends on, like an erasure's tombstone. Returns
        the entry."""
        import asyncio

        def append() -> dict[str, Any]:
            entry, head = self._store.get().audit.append(actor, action, target, detail,
                                                         self.signer, entry_hash)
            write_anchor(self._settings.home, head)
            return dict(entry)

        return await asyncio.to_thread(append)
