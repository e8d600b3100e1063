"""The trace spool's encryption at rest: request bodies wait on disk only as AES-256-GCM.

Until the ingest has stored them (redacted, or not at all, as the content mode says), the
spool holds whole requests and answers; a raw read of the data directory must not find
them. A sealed spool file is::

    MAGIC (8 bytes) | salt (16 random bytes) | record | record | ...
    record = length (4 bytes, little endian) | ciphertext of one or more JSON lines | tag

Each file has its own key, HKDF-SHA256(spool key, salt) (so the record counter can be the
nonce: never reused under one key), and the spool key is HKDF-SHA256 of the secret with
``info=b"bastion spool v1"``. The secret is ``store.encryption_key``
(``BASTION_ENCRYPTION_KEY``) when set, else 32 random bytes generated once into
``<home>/encryption.key`` (0600). One ``encrypt`` call per record (a request's line), not
per field: ~0.6 µs for a 1.5 kB line.

Reading tolerates what a SIGKILL leaves: a torn last record is counted and skipped; a
record that fails authentication (tampered, another key) is counted and skipped too,
and the records after it are still read (the length framing does not depend on the key).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"BSPOOL\x01\n"
SALT_BYTES = 16
HEADER_BYTES = len(MAGIC) + SALT_BYTES
TAG_BYTES = 16
INFO = b"bastion spool v1"
KEY_FILE = "encryption.key"


def _hkdf(secret: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


def derive(secret: bytes, info: bytes) -> bytes:
    """A 32-byte key for one purpose (``info``) from the deployment's secret."""
    return _hkdf(secret, None, info)


def spool_key(secret: bytes) -> bytes:
    """The spool's key, derived from the configured or generated secret."""
    return _hkdf(secret, None, INFO)


def load_secret(configured: str | None, home: str | os.PathLike[str]) -> bytes:
    """The secret the spool key comes from: ``configured`` (already checked for strength
    by the settings), else ``<home>/encryption.key``, generated on first use (32 random
    bytes, hex, 0600; created under a temporary name and linked into place, so two worker
    processes starting together agree on one)."""
    if configured is not None:
        if not configured.strip():  # the settings refuse it; never a silent empty key
            raise ValueError("the encryption key is empty")
        return configured.encode()
    path = Path(home) / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode() + b"\n")
        os.fsync(fd)  # a key lost to a crash would make the spool unreadable
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process made it first: theirs it is
    finally:
        tmp.unlink()
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    text = path.read_bytes().strip()
    if len(text) < 32:
        raise ValueError(f"{path} holds no usable key ({len(text)} characters); remove it "
                         "only if the spool holds nothing still to be ingested")
    return text


class FileSealer:
    """Seals the records of one spool file (its header first)."""

    __slots__ = ("_aead", "_count", "header")

    def __init__(self, key: bytes) -> None:
        salt = os.urandom(SALT_BYTES)
        self.header = MAGIC + salt
        self._aead = AESGCM(_hkdf(key, salt, INFO + b" file"))
        self._count = 0

    def seal(self, plain: bytes) -> bytes:
        """One record: length, ciphertext and tag (nonce: the record's number)."""
        self._count += 1
        sealed = self._aead.encrypt(self._count.to_bytes(12, "little"), plain, None)
        return len(sealed).to_bytes(4, "little") + sealed


@dataclass
class Opened:
    """What a spool file held: its lines, and the records that could not be read."""

    lines: list[bytes]
    failed: int = 0  # records that failed authentication
    torn: int = 0  # an incomplete last record or line (a SIGKILL mid-write)


def is_sealed(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def open_file(data: bytes, key: bytes | None) -> Opened:
    """The lines of a spool file's bytes, sealed or plain. A plain file's unterminated
    last line is torn; a sealed file without the key counts all its records as failed."""
    if not is_sealed(data):
        lines = data.split(b"\n")  # lines end at \n only (a body may hold a bare \r)
        torn = 1 if lines[-1] else 0
        return Opened([line for line in lines[:-1] if line], torn=torn)
    out = Opened([])
    if len(data) < HEADER_BYTES:
        out.torn = 1
        return out
    aead = AESGCM(_hkdf(key, data[len(MAGIC) : HEADER_BYTES], INFO + b" file")) if key else None
    at, count, end = HEADER_BYTES, 0, len(data)
    while at < end:
        if end - at < 4:
            out.torn += 1
            break
        size = int.from_bytes(data[at : at + 4], "little")
        if size < TAG_BYTES or end - at - 4 < size:
            out.torn += 1  # cut short (or a length that was never written whole)
            break
        count += 1
        record = data[at + 4 : at + 4 + size]
        at += 4 + size
        if aead is None:
            out.failed += 1
            continue
        try:
            plain = aead.decrypt(count.to_bytes(12, "little"), record, None)
        except InvalidTag:
            out.failed += 1
            continue
        out.lines.extend(line for line in plain.split(b"\n") if line)
    return out


def write_sealed(path: Path, key: bytes, plain: bytes) -> None:
    """A new sealed file holding ``plain`` as one record (0600)."""
    sealer = FileSealer(key)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, sealer.header + sealer.seal(plain))
    finally:
        os.close(fd)
