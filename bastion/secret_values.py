"""What makes a configured secret usable: master and encryption keys, vault keys, headers
that carry a credential. An empty, blank, short or placeholder secret is a bypass, so
every place a secret is read asks here (the settings' validators, reload, config check).
Messages name what is wrong, never the value."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping

from pydantic import SecretStr

MIN_SECRET_LENGTH = 16
# values that appear in examples and quickstarts (LiteLLM's sk-1234 included): a key anyone
# can guess is no key
_PLACEHOLDERS = re.compile(
    r"change[-_ ]?me|replace[-_ ]?me|your[-_ ]?(master[-_ ]?)?key|placeholder|example|"
    r"x{8,}|^(sk-)?123456789|^(sk-)?(password|secret|admin|default|master[-_]?key)$",
    re.IGNORECASE,
)
# names of headers that carry a credential (checked here, redacted from the logs)
SECRET_HEADER = re.compile(r"(?i)auth|key|token|secret|password|cookie")
_GENERATE = "python3 -c 'import secrets; print(\"sk-\" + secrets.token_urlsafe(32))'"


def weak_secret(value: str, minimum: int = MIN_SECRET_LENGTH) -> str | None:
    """Why ``value`` cannot serve as a secret (None: it can). An empty, blank, short or
    placeholder secret is a bypass, so every place a secret is read asks this."""
    if value == "":
        return "is empty"
    if not value.strip():
        return "is blank (only whitespace)"
    if any(c.isspace() for c in value):
        return "contains whitespace (a copy-paste error?)"
    if len(value) < minimum:
        return f"is {len(value)} characters long; at least {minimum} are required"
    if _PLACEHOLDERS.search(value):
        return "is a placeholder value from an example"
    if len(set(value)) < 6:
        return "repeats too few characters to be guessed only with difficulty"
    return None


def _strong(what: str, unset: str) -> Callable[[SecretStr | None], SecretStr | None]:
    """A settings validator refusing a weak ``what`` (e.g. "master key"); ``unset`` says
    what leaving it unset does instead."""

    def check(value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        reason = weak_secret(value.get_secret_value())
        if reason is not None:
            raise ValueError(
                f"the {what} {reason}. Use a random key of {MIN_SECRET_LENGTH}+ characters "
                f"(e.g. {_GENERATE}); {unset}"
            )
        return value

    return check


strong_key = _strong("master key",
                     "on loopback, leave it unset (not empty) to run without one")
strong_encryption_key = _strong(
    "encryption key", "or leave it unset (not empty) for a key generated into "
    "<home>/encryption.key")


def vault_key_bytes(text: str) -> bytes:
    """The 32 bytes of a base64 AES-256 key; ValueError (naming what is wrong, never the
    value) for an empty, malformed, short or degenerate (one repeated byte) key."""
    if not text.strip():
        raise ValueError("the vault key is empty; unset it for a random key per process")
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the vault key is not valid base64") from None
    if len(key) != 32:
        raise ValueError(f"the vault key decodes to {len(key)} bytes; AES-256 needs 32 "
                         "(e.g. python3 -c 'import os,base64; "
                         "print(base64.b64encode(os.urandom(32)).decode())')")
    if len(set(key)) < 8:
        raise ValueError("the vault key repeats too few byte values to be a random key")
    return key


def credential_headers(headers: Mapping[str, str], where: str) -> dict[str, str]:
    """Checks configured headers that carry a credential (Authorization, X-Api-Key...): an
    empty one, or a scheme with no credential (``Bearer ``, from an unset ``${VAR:-}``),
    is refused rather than sent."""
    for name, value in headers.items():
        if not SECRET_HEADER.search(name):
            continue
        parts = value.split()
        if not parts or (len(parts) == 1 and parts[0].lower() in ("bearer", "basic", "token")):
            raise ValueError(
                f"{where} header {name!r} carries no credential (empty, or a scheme "
                "without a value: is the variable it comes from set?)"
            )
    return dict(headers)
