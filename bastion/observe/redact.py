"""Built-in redaction for stored traces (content mode ``redacted``), off the request path.

Until the guards (PII and secrets scanners) run on a request, this is what keeps obvious
personal data and credentials out of the trace store: e-mail addresses, payment card
numbers (Luhn-checked), IBANs (mod-97-checked), US social security numbers, phone
numbers, IP addresses, and API keys and tokens of well-known shapes. Each match becomes a
typed placeholder such as ``<EMAIL>``, so a stored trace still reads naturally.
"""

from __future__ import annotations

import re
from typing import Any

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("SECRET", re.compile(
        r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
        r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}"
        r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"
    )),
    ("SECRET", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-]{16,}")),
    ("EMAIL", re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")),
    ("IBAN", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")),
    ("CREDIT_CARD", re.compile(r"\b(?:\d[ \-]?){12,18}\d\b")),
    ("US_SSN", re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")),
    ("IP_ADDRESS", re.compile(
        r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
    )),
    ("PHONE", re.compile(  # international (+CC ...) or North American (3-3-4)
        r"(?<![\w+])\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){1,5}[ .\-]?\d{2,4}\b"
        r"|(?<![\w(])\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}\b(?![ .\-]?\d)"
    )),
]
_CHECKS = {
    "CREDIT_CARD": lambda s: _luhn(re.sub(r"\D", "", s)),
    "IBAN": lambda s: _iban_ok(s.replace(" ", "")),
}
# Text none of the patterns can match has no digit, no "@" and no key prefix: most
# message text is ruled out by this one search.
_MAYBE = re.compile(r"[@0-9]|sk-|AKIA|gh[pousr]_|xox[abprs]-|AIza|eyJ|(?i:bearer)")


def _checked(label: str, check: Any) -> Any:
    placeholder = f"<{label}>"

    def sub(match: re.Match[str]) -> str:
        found = match.group(0)
        return placeholder if check(found) else found

    return sub


_SUBS: list[tuple[re.Pattern[str], Any]] = [
    (pattern, _checked(label, _CHECKS[label]) if label in _CHECKS else f"<{label}>")
    for label, pattern in _PATTERNS
]


def redact_text(text: str) -> str:
    if len(text) < 6 or _MAYBE.search(text) is None:
        return text
    for pattern, replacement in _SUBS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """Redacts every string inside a JSON-like value (message lists, tool calls...)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    return value


def _luhn(digits: str) -> bool:
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(iban: str) -> bool:
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1
