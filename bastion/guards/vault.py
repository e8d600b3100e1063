"""Reversible pseudonymization: placeholders for sensitive values, and the way back.

A session (``x-bastion-session`` / ``metadata.session_id``; else the request alone) gets
its own table: the same value always gets the same placeholder within it (``<PERSON_1>``,
``<EMAIL_ADDRESS_2>``...), so a conversation stays coherent for the model. The originals
are kept encrypted (AES-256-GCM, a random nonce per value, the session id as associated
data) and dropped ``ttl`` seconds after the session was last used. Lookups by value go
through a keyed hash (HMAC-SHA-256), so the table holds no plaintext at all.

:func:`restore` puts the originals back into the model's answer, tolerating what models do
to placeholders: other case (``<person_1>``), other brackets (``[PERSON_1]``,
``{PERSON_1}``), spaces inside (``< PERSON_1 >``), or none at all (``PERSON_1``).
Parentheses are left in place: ``(PERSON_1)`` is as likely a bare placeholder in the
text's own parentheses as a rewritten one, and ``(Alice)`` reads right either way.
:class:`StreamRestorer` does the same on a stream, holding back a tail that
could still become a placeholder when the next chunk arrives.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.secret_values import vault_key_bytes

# <KIND_N> with tolerance: optional opening bracket, optional spaces, the kind, _N, closing
_PLACEHOLDER = re.compile(
    r"(?P<open>[<\[{][ \t]*)?(?P<kind>[A-Za-z][A-Za-z_]*?)_(?P<n>\d{1,4})"
    r"(?P<close>[ \t]*[>\]}])?"
)
# a stream's tail that may still grow into a placeholder: an opening bracket and/or a
# word at the very end (held back only if it is the start of a known placeholder)
_TAIL = re.compile(r"(?P<open>[<\[{][ \t]*)?(?P<word>[A-Za-z0-9_]*)[ \t]*$")
_MAX_HOLD = 64


@dataclass
class _Session:
    by_digest: dict[bytes, str] = field(default_factory=dict)  # HMAC(value) -> placeholder
    originals: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)  # -> nonce, ct
    counts: dict[str, int] = field(default_factory=dict)  # kind -> last number
    used: float = 0.0


class Vault:
    """Per-session pseudonym tables, in memory, encrypted, with a TTL. Thread-safe (guards
    run in a worker thread)."""

    def __init__(self, key: bytes | None = None, ttl: float = 3600.0,
                 max_sessions: int = 100_000) -> None:
        key = key if key is not None else AESGCM.generate_key(bit_length=256)
        if len(key) != 32:
            raise ValueError("the vault key must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)
        self._mac_key = hmac.new(key, b"bastion-vault-lookup", hashlib.sha256).digest()
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_base64(cls, text: str | None, ttl: float) -> Vault:
        """From the config's base64 key (None: a random one). A given but empty or weak key
        is refused (ValueError), never silently replaced."""
        return cls(vault_key_bytes(text) if text is not None else None, ttl)

    def pseudonym(self, session: str, kind: str, value: str) -> str:
        """The placeholder for ``value`` in ``session`` (the same one every time)."""
        digest = hmac.new(self._mac_key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()
        with self._lock:
            s = self._session(session)
            found = s.by_digest.get(digest)
            if found is not None:
                return found
            n = s.counts.get(kind, 0) + 1
            s.counts[kind] = n
            placeholder = f"<{kind}_{n}>"
            nonce = os.urandom(12)
            s.originals[placeholder] = (
                nonce, self._aead.encrypt(nonce, value.encode(), session.encode()))
            s.by_digest[digest] = placeholder
            return placeholder

    def originals(self, session: str) -> dict[str, str]:
        """Placeholder -> original for a session (decrypted now; empty if expired)."""
        with self._lock:
            s = self._sessions.get(session)
            if s is None or self._expired(s, time.monotonic()):
                return {}
            s.used = time.monotonic()
            items = list(s.originals.items())
        return {p: self._aead.decrypt(nonce, ct, session.encode()).decode()
                for p, (nonce, ct) in items}

    def forget(self, session: str) -> None:
        with self._lock:
            self._sessions.pop(session, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _session(self, session: str) -> _Session:
        now = time.monotonic()
        s = self._sessions.get(session)
        if s is None or self._expired(s, now):
            s = self._sessions[session] = _Session()
        self._sessions.move_to_end(session)
        s.used = now
        self._evict(now)
        return s

    def _expired(self, s: _Session, now: float) -> bool:
        return now - s.used > self.ttl

    def _evict(self, now: float) -> None:
        sessions = self._sessions
        while sessions:
            oldest = next(iter(sessions.values()))
            if len(sessions) <= self.max_sessions and not self._expired(oldest, now):
                break
            sessions.popitem(last=False)


def _lookup(originals: dict[str, str]) -> dict[str, str]:
    """Canonical ``KIND_N`` (upper case) -> original."""
    return {p[1:-1].upper(): v for p, v in originals.items()}


def restore(text: str, originals: dict[str, str]) -> str:
    """``text`` with every placeholder of ``originals`` (in any of the forms models write
    them) replaced by its original value. Unknown look-alikes are left as they are."""
    if not originals or "_" not in text:
        return text
    return _restore(text, _lookup(originals))


def _restore(text: str, table: dict[str, str]) -> str:
    """:func:`restore` with the table already canonical (``KIND_N`` -> original)."""

    def sub(m: re.Match[str]) -> str:
        value = table.get(f"{m.group('kind').upper()}_{int(m.group('n'))}")
        if value is None:
            return m.group(0)
        opening, closing = m.group("open"), m.group("close")
        if (opening is None) == (closing is None):
            return value  # <PERSON_1>, [person_1], PERSON_1...
        # one bracket only: it belongs to the text around, unless it is an angle bracket
        if opening is not None:
            return value if opening.strip() == "<" else opening + value
        assert closing is not None
        return value if closing.strip() == ">" else value + closing

    return _PLACEHOLDER.sub(sub, text) if "_" in text else text


class StreamRestorer:
    """Restores placeholders in a stream of text pieces: :meth:`feed` returns what can be
    sent now; a tail that could still turn into a placeholder (``<PER``, ``[EMAIL_ADD``)
    waits for the next piece, at most ``_MAX_HOLD`` characters. :meth:`flush` returns the
    rest at the end."""

    def __init__(self, originals: dict[str, str]) -> None:
        self.originals = originals
        self._table = _lookup(originals)  # once per stream, not per piece
        self._names = sorted(self._table)  # KIND_N, upper case
        self._pending = ""

    def feed(self, piece: str) -> str:
        text = self._pending + piece
        if not self.originals:
            self._pending = ""
            return text
        cut = len(text)
        tail = _TAIL.search(text)
        if tail is not None and len(text) - tail.start() <= _MAX_HOLD:
            word = tail.group("word").upper()
            if (word and any(name.startswith(word) for name in self._names)) or (
                not word and tail.group("open")
            ):
                cut = tail.start()
        ready, self._pending = text[:cut], text[cut:]
        return _restore(ready, self._table)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return _restore(rest, self._table) if self._table else rest
