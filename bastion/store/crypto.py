"""Trace bodies at rest: AES-256-GCM under numbered data keys, and a blind text index.

Keys::

    deployment secret (store.encryption_key, else <home>/encryption.key)
      └─ HKDF "bastion store v1" ─► the store key (StoreKeys; the ingest gets it on its pipe)
           ├─ HKDF "bastion data key wrap v1" ─► the key-encryption key (KEK)
           └─ HKDF "bastion search index v1"  ─► the blind index key
    data keys 1, 2, ...: 32 random bytes each, kept in the ``data_keys`` table wrapped
    (AES-256-GCM under the KEK, the key's id as associated data); the newest is current

The deployment secret also peppers virtual keys and signs the audit log, so it stays put;
what rotates are the data keys (``bastion keys rotate-data-key``): a new one encrypts new
writes, the old ones still decrypt until every body is re-encrypted and they are dropped.

A sealed value (a trace's body, or its two previews)::

    version (1 byte, 1) | data key id (4 bytes, big endian) | nonce (12 random bytes)
    | ciphertext and 16-byte tag
    associated data = the 5 header bytes | purpose (b"body" / b"preview") | 0 | trace id

so a value moved to another trace, or a preview swapped for a body, fails authentication.

The blind index: text search cannot read ciphertext, and a plaintext word index would give
the words away. The store indexes, instead of words, keyed hashes of them: each word of the
text (lower case, accents folded, split at anything but letters and digits) becomes 13
letters of BLAKE2b under the index key (52 bits: at a million distinct words a false match
is about one in 4 billion). A query's words are hashed the same way, so a word, and every
word of several (AND), still find their traces; a word prefix or a phrase cannot (a hash
of ``refund`` says nothing of ``refunds``), and neither can a query without letters or
digits. The index key does not rotate with the data keys (the index would have to be
rebuilt), so the hashes show which traces share a word, never the word.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.store.errors import StoreUnavailable

VERSION = 1
HEADER_BYTES = 5
NONCE_BYTES = 12
BODY = b"body"
PREVIEW = b"preview"
TOKEN_CHARS = 13
_ALPHABET = str.maketrans("0123456789abcdef", "abcdefghijklmnop")  # letters only: one
_WORD = re.compile(r"[^\W_]+")  # token for FTS5's unicode61 and Postgres' parser alike
_ASCII_WORD = re.compile(r"[a-z0-9]+")  # the same on lower-case ASCII, faster
_CACHE_MAX = 200_000
# the record keys a sealed body holds, and those its sealed previews hold
BODY_FIELDS = ("input", "output", "spans")
PREVIEW_FIELDS = ("preview_in", "preview_out")


class DataKeyError(StoreUnavailable):
    """The store's data keys cannot be opened: another deployment secret than the one they
    were made under (a replica without the shared ``BASTION_ENCRYPTION_KEY``)."""


class BodyUnreadable(ValueError):
    """A sealed value failed authentication (altered, moved, or its key is gone)."""


class DataKeyInUse(ValueError):
    """A data key that cannot be dropped: the current one, or one bodies are still under."""


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


@dataclass(frozen=True, slots=True)
class StoreKeys:
    """The store key: what the store derives its KEK and its blind index key from."""

    secret: bytes = field(repr=False)

    @classmethod
    def from_deployment_secret(cls, secret: bytes) -> StoreKeys:
        return cls(_hkdf(secret, b"bastion store v1"))

    def kek(self) -> bytes:
        return _hkdf(self.secret, b"bastion data key wrap v1")

    def index_key(self) -> bytes:
        return _hkdf(self.secret, b"bastion search index v1")


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def _wrap_ad(key_id: int) -> bytes:
    return b"bastion data key %d" % key_id


def wrap(kek: bytes, key_id: int, key: bytes) -> bytes:
    """A data key as stored: nonce and AES-256-GCM of it under the KEK."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, key, _wrap_ad(key_id))


def unwrap(kek: bytes, key_id: int, wrapped: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], bytes(wrapped[NONCE_BYTES:]),
                                   _wrap_ad(key_id))
    except InvalidTag:
        raise DataKeyError(
            f"store.encryption_key does not open data key {key_id} of this store: it was "
            "made under another deployment secret. Every gateway and replica on one store "
            "needs the same BASTION_ENCRYPTION_KEY (and a single host keeps "
            "<home>/encryption.key)") from None


def key_id_of(sealed: bytes) -> int | None:
    """The data key a sealed value is under (None: not a sealed value of this version)."""
    if len(sealed) < HEADER_BYTES + NONCE_BYTES + 16 or sealed[0] != VERSION:
        return None
    return int.from_bytes(sealed[1:HEADER_BYTES], "big")


class Codec:
    """Seals and opens values under a set of unwrapped data keys; hashes words for the
    blind index. ``keys``: id to key; the newest (highest id) is current."""

    def __init__(self, keys: Mapping[int, bytes], index_key: bytes,
                 tokens: dict[str, str] | None = None) -> None:
        if not keys:
            raise ValueError("a codec needs at least one data key")
        self._aead = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = max(keys)
        self._index_key = index_key
        self._tokens = tokens if tokens is not None else {}  # word -> token (a cache)

    @property
    def key_ids(self) -> frozenset[int]:
        return frozenset(self._aead)

    def seal(self, purpose: bytes, trace_id: str, plain: bytes) -> bytes:
        header = bytes([VERSION]) + self.current.to_bytes(4, "big")
        nonce = os.urandom(NONCE_BYTES)
        ad = header + purpose + b"\x00" + trace_id.encode()
        return header + nonce + self._aead[self.current].encrypt(nonce, plain, ad)

    def open(self, purpose: bytes, trace_id: str, sealed: bytes) -> bytes:
        """The plaintext; BodyUnreadable when it fails authentication or its key is gone."""
        sealed = bytes(sealed)  # Postgres gives a memoryview
        key_id = key_id_of(sealed)
        if key_id is None:
            raise BodyUnreadable("not a sealed value (damaged)")
        aead = self._aead.get(key_id)
        if aead is None:
            raise BodyUnreadable(f"its data key {key_id} is not in the store's keyring "
                                 "(dropped)")
        nonce = sealed[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
        ad = sealed[:HEADER_BYTES] + purpose + b"\x00" + trace_id.encode()
        try:
            return aead.decrypt(nonce, sealed[HEADER_BYTES + NONCE_BYTES :], ad)
        except InvalidTag:
            raise BodyUnreadable("it failed authentication (altered, or moved from "
                                 "another trace)") from None

    # ------------------------------------------------------------------ rows
    def seal_row(self, row: dict[str, Any]) -> None:
        """A row of :func:`bastion.store.records.to_row`, in place: the bodies and the
        previews into ``sealed`` and ``sealed_preview``, ``search`` into hashes."""
        trace_id = row["id"]
        body = {k: row[k] for k in BODY_FIELDS}
        row["sealed"] = self.seal(BODY, trace_id, _dumps(body))
        previews = [row[k] for k in PREVIEW_FIELDS]
        row["sealed_preview"] = (self.seal(PREVIEW, trace_id, _dumps(previews))
                                 if any(p is not None for p in previews) else None)
        for key in (*BODY_FIELDS, *PREVIEW_FIELDS):
            row[key] = None
        row["search"] = self.blind(row["search"])
        row["body_key"] = self.current

    def reseal(self, purpose: bytes, trace_id: str, sealed: bytes | None) -> bytes | None:
        """A sealed value under the current key (BodyUnreadable if it cannot be opened)."""
        if sealed is None:
            return None
        return self.seal(purpose, trace_id, self.open(purpose, trace_id, sealed))

    def open_row(self, trace_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """The plaintext columns of a sealed row: those of ``BODY_FIELDS`` when the row has
        ``sealed``, those of ``PREVIEW_FIELDS`` when it has ``sealed_preview``; raises
        BodyUnreadable."""
        out: dict[str, Any] = {}
        if "sealed" in row:
            body = (orjson.loads(self.open(BODY, trace_id, row["sealed"]))
                    if row["sealed"] is not None else {})
            out.update({k: body.get(k) for k in BODY_FIELDS})
        if "sealed_preview" in row:
            previews = (orjson.loads(self.open(PREVIEW, trace_id, row["sealed_preview"]))
                        if row["sealed_preview"] is not None else [None, None])
            out.update(zip(PREVIEW_FIELDS, previews, strict=True))
        return out

    # ------------------------------------------------------------- blind index
    def token(self, word: str) -> str:
        """The index's stand-in for one normalised word."""
        found = self._tokens.get(word)
        if found is None:
            if len(self._tokens) >= _CACHE_MAX:
                self._tokens.clear()
            digest = blake2b(word.encode(), key=self._index_key, digest_size=7,
                             person=b"bastion-search").hexdigest()
            found = self._tokens[word] = digest[:TOKEN_CHARS].translate(_ALPHABET)
        return found

    def blind(self, text: str | None) -> str | None:
        """The search column of a sealed row: each distinct word's token, in order."""
        if not text:
            return None
        return " ".join(self.query_tokens(text)) or None

    def query_tokens(self, text: str) -> list[str]:
        """The tokens a text search looks for: one per distinct word of the query."""
        unique = dict.fromkeys(words(text))
        found = list(map(self._tokens.get, unique))
        if None in found:  # words not seen lately
            found = [t or self.token(w) for t, w in zip(found, unique, strict=True)]
        return found  # type: ignore[return-value]  # no None left


def words(text: str) -> Iterable[str]:
    """The normalised words of a text: lower case (case-folded), accents removed, split at
    anything that is not a letter or a digit."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    folded = unicodedata.normalize("NFKD", text.casefold())
    return _WORD.findall("".join(c for c in folded if not unicodedata.combining(c)))


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
