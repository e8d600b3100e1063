"""Encoded payloads: base64, hex and URL-encoded blobs, rot13 and reversed text.

An attacker hides the instruction from filters and asks the model to decode it. A blob is
only a finding when it decodes to readable text that the rules (or the classifier) judge
to be an attack: images, keys, hashes and JWTs decode to bytes or JSON and are left alone.
rot13 and reversed text cannot be found by their shape, so the rules are run on the
rot13 and reversed views, but only when a cheap search finds an encoded keyword first.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[ :]?){10,}(?![0-9A-Fa-f])")
_URLENC = re.compile(r"(?:%[0-9A-Fa-f]{2}){8,}")
_ROT13_KEYS = re.compile(r"vtaber|sbetrg|qvfertneq|vafgehpgvba|cebzcg|cerivbhf|flfgrz|cnffjbeq")
_REVERSED_KEYS = re.compile(r"erongi|tegrof|drageksid|snoitcurtsni|tpmorp|suoiverp|drowssap")
_MAX_BLOBS = 16
_MAX_BLOB_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Decoded:
    how: str  # "base64", "hex", "url", "rot13", "reversed"
    text: str
    start: int
    end: int


def _readable(raw: bytes) -> str | None:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(s) < 8:
        return None
    letters = sum(c.isalpha() or c == " " for c in s)
    if letters < 0.75 * len(s) or " " not in s.strip():
        return None  # bytes, JSON of a token, an identifier: not an instruction
    return s


def _b64(blob: str) -> bytes | None:
    s = blob.rstrip("=")
    if len(s) % 4 == 1:
        return None
    pad = "=" * (-len(s) % 4)
    try:
        if "-" in s or "_" in s:
            return base64.urlsafe_b64decode(s + pad)
        return base64.b64decode(s + pad, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode_blobs(text: str) -> Iterator[Decoded]:
    """Readable text hidden in base64, hex or URL-encoded blobs of ``text``."""
    n = 0
    for m in _B64.finditer(text):
        blob = m.group(0)
        if len(blob) > _MAX_BLOB_CHARS or blob.isalpha() or blob.isdigit():
            continue
        raw = _b64(blob)
        if raw is not None and (s := _readable(raw)) is not None:
            yield Decoded("base64", s, m.start(), m.end())
            n += 1
            if n >= _MAX_BLOBS:
                return
    for m in _HEX.finditer(text):
        digits = re.sub(r"[ :]", "", m.group(0))
        if len(digits) % 2 or len(digits) > _MAX_BLOB_CHARS:
            continue
        s = _readable(bytes.fromhex(digits))
        if s is not None:
            yield Decoded("hex", s, m.start(), m.end())
    for m in _URLENC.finditer(text):
        s = unquote(m.group(0))
        if _readable(s.encode("utf-8", "replace")) is not None:
            yield Decoded("url", s, m.start(), m.end())


def transformed_views(folded: str) -> Iterator[Decoded]:
    """The rot13 and reversed views of the folded text, when they look worth matching."""
    if _ROT13_KEYS.search(folded):
        yield Decoded("rot13", codecs.decode(folded, "rot13"), 0, len(folded))
    if _REVERSED_KEYS.search(folded):
        yield Decoded("reversed", folded[::-1], 0, len(folded))
