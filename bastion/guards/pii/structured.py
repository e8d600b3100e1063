"""Identifiers with a fixed shape: found by pattern, kept only if their check digits (or
parser) agree.

Scores follow one scale: a match whose validation is strong (IBAN mod 97 with the
country's length, Luhn with a known card prefix, a parsed IP address) is 0.95 on its own;
one whose check passes one random number in ten (the Dutch 11-proef) or that has no check
(nine bare digits as a US SSN) stays below 0.5 unless a context word stands near it, which
raises it to 0.95 or more.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from bastion.guards.base import Finding
from bastion.guards.pii import checksums
from bastion.guards.pii.context import ContextIndex

Finder = Callable[[str, ContextIndex], list[Finding]]


@dataclass(frozen=True, slots=True)
class Recognizer:
    """One finder and the kinds it can report (to skip it when none are wanted), plus the
    characters its matches must contain (to skip it on text that has none)."""

    kinds: tuple[str, ...]
    find: Finder
    needs: re.Pattern[str] | None = None


def _boost(ctx: ContextIndex, kind: str, start: int, end: int, base: float,
           boosted: float) -> float:
    return boosted if ctx.near(kind, start, end) else base


_EMAIL = re.compile(
    r"(?<![\w.%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}"
    r"[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])"
)


def find_email(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _EMAIL.finditer(text):
        if ".." not in m.group(0):
            out.append(Finding("EMAIL_ADDRESS", m.start(), m.end(), 1.0, "email pattern"))
    return out


_URL = re.compile(
    r"(?<![\w@/])(?:(?:https?|ftp)://|www\.)[^\s<>\"'`]{2,2000}", re.IGNORECASE
)
_URL_TRAIL = ".,;:!?)]}'\""


def find_url(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _URL.finditer(text):
        end = m.end()
        while end > m.start() and text[end - 1] in _URL_TRAIL:
            if text[end - 1] == ")" and text.count("(", m.start(), end) >= text.count(
                    ")", m.start(), end):
                break
            end -= 1
        if end - m.start() > 8:
            out.append(Finding("URL", m.start(), end, 0.9, "url"))
    return out


_CARD = re.compile(r"(?<![\d\-.,/])\d(?:[ \-]?\d){11,18}(?![\d\-]|[.,/]\d)")


def find_credit_card(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _CARD.finditer(text):
        raw = m.group(0)
        seps = {c for c in raw if not c.isdigit()}
        if len(seps) > 1:
            continue
        digits = raw.replace(" ", "").replace("-", "")
        if checksums.credit_card(digits):
            score = _boost(ctx, "CREDIT_CARD", m.start(), m.end(), 0.95, 1.0)
            if score < 1.0 and ctx.near("NOT_PII_NUMBER", m.start(), m.end(), 32, 0):
                score = 0.4  # "tracking number 4967...": Luhn passes one number in ten
            out.append(Finding("CREDIT_CARD", m.start(), m.end(), score, "luhn+iin"))
    return out


_IBAN_HEAD = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})(?=[ \-]?[A-Za-z0-9])")


def find_iban(text: str, ctx: ContextIndex) -> list[Finding]:
    """Walks the country's length of characters after the check digits (single spaces or
    hyphens between groups allowed): a greedy pattern would swallow the next word."""
    out = []
    n = len(text)
    for m in _IBAN_HEAD.finditer(text):
        country = m.group(1).upper()
        want = checksums.IBAN_LENGTHS.get(country)
        if want is None:
            continue
        chars = [country, m.group(2)]
        got, i = 4, m.end()
        while got < want and i < n:
            ch = text[i]
            if ch.isascii() and ch.isalnum():
                chars.append(ch.upper())
                got += 1
                i += 1
            elif ch in " -" and i + 1 < n and text[i + 1].isascii() and text[i + 1].isalnum():
                i += 1
            else:
                break
        if got != want or (i < n and text[i].isascii() and text[i].isalnum()):
            continue
        if checksums.iban("".join(chars)):
            score = _boost(ctx, "IBAN_CODE", m.start(), i, 0.95, 1.0)
            out.append(Finding("IBAN_CODE", m.start(), i, score, f"iban {country} mod-97"))
    return out


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])")
_VERSION_BEFORE = re.compile(r"(?:v|version|ver\.?|release)\s*$", re.IGNORECASE)


def find_ip(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group(0))
        except ValueError:
            continue
        if _VERSION_BEFORE.search(text, max(0, m.start() - 10), m.start()):
            continue
        score = _boost(ctx, "IP_ADDRESS", m.start(), m.end(), 0.95, 1.0)
        out.append(Finding("IP_ADDRESS", m.start(), m.end(), score, "ipv4"))
    if ":" in text:
        for m in _IPV6.finditer(text):
            raw = m.group(0).split("%")[0]
            if len(raw) < 6 or raw.count(":") < 2 or not any(c.isalnum() for c in raw):
                continue
            try:
                ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            out.append(Finding("IP_ADDRESS", m.start(), m.end(), 0.95, "ipv6"))
    return out


_MAC = re.compile(
    r"(?<![\w:\-.])(?:[0-9A-Fa-f]{2}([:\-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![\w:\-]|\.\w)"
)


def find_mac(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _MAC.finditer(text):
        hexdigits = re.sub(r"[^0-9A-Fa-f]", "", m.group(0))
        if len(set(hexdigits.lower())) < 2:
            continue
        out.append(Finding("MAC_ADDRESS", m.start(), m.end(), 0.95, "mac"))
    return out


_SSN = re.compile(r"(?<![\d\-])(\d{3})([\- ]?)(\d{2})\2(\d{4})(?![\d\-])")


def find_us_ssn(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _SSN.finditer(text):
        digits = m.group(1) + m.group(3) + m.group(4)
        if not checksums.us_ssn(digits):
            continue
        near = ctx.near("US_SSN", m.start(), m.end())
        sep = m.group(2)
        if sep == "-":
            score = 1.0 if near else 0.85
        elif near:
            score = 0.95
        else:
            continue  # nine digits (or 3-2-4 with spaces) and no word saying SSN
        out.append(Finding("US_SSN", m.start(), m.end(), score, "ssn ranges"))
    return out


_DE_TAX = re.compile(r"(?<![\d\-/.])[1-9]\d(?: ?\d{3}){3}(?![\d\-]|[./]\d)")


def find_de_tax_id(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _DE_TAX.finditer(text):
        digits = m.group(0).replace(" ", "")
        if len(digits) == 11 and checksums.de_tax_id(digits):
            score = _boost(ctx, "DE_TAX_ID", m.start(), m.end(), 0.6, 0.98)
            out.append(Finding("DE_TAX_ID", m.start(), m.end(), score, "mod 11,10"))
    return out


_FR_NIR = re.compile(
    r"(?<![\w\-])[12378] ?\d{2} ?\d{2} ?(?:\d{2}|2[ABab]) ?\d{3} ?\d{3} ?(?:\d{2})(?![\w\-])"
)


def find_fr_nir(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _FR_NIR.finditer(text):
        code = m.group(0).replace(" ", "").upper()
        if checksums.fr_nir(code):
            score = _boost(ctx, "FR_NIR", m.start(), m.end(), 0.95, 1.0)
            out.append(Finding("FR_NIR", m.start(), m.end(), score, "nir key mod 97"))
    return out


_ES_NIF = re.compile(r"(?<![\w\-])(?:\d{8}|[XYZxyz][\- ]?\d{7})[\- ]?[A-Za-z](?![\w\-])")


def find_es_nif(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _ES_NIF.finditer(text):
        code = m.group(0).replace(" ", "").replace("-", "").upper()
        if checksums.es_dni(code):
            score = _boost(ctx, "ES_NIF", m.start(), m.end(), 0.95, 1.0)
            out.append(Finding("ES_NIF", m.start(), m.end(), score, "dni/nie letter"))
    return out


_OMO = "0-9LMNPQRSTUV"
_IT_CF = re.compile(
    rf"(?<![\w])[A-Za-z]{{6}}[{_OMO}]{{2}}[ABCDEHLMPRSTabcdehlmprst][{_OMO}]{{2}}[A-Za-z]"
    rf"[{_OMO}]{{3}}[A-Za-z](?![\w])"
)


def find_it_fiscal_code(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _IT_CF.finditer(text):
        raw = m.group(0)
        if not (raw.isupper() or raw.islower()):
            continue
        if checksums.it_fiscal_code(raw.upper()):
            score = _boost(ctx, "IT_FISCAL_CODE", m.start(), m.end(), 0.95, 1.0)
            out.append(Finding("IT_FISCAL_CODE", m.start(), m.end(), score, "check char"))
    return out


_NL_BSN = re.compile(
    r"(?<![\d\-/.])(?:\d{9}|\d{4}\.\d{2}\.\d{3}|\d{3} \d{3} \d{3})(?![\d\-]|[./]\d)"
)


def find_nl_bsn(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _NL_BSN.finditer(text):
        digits = m.group(0).replace(".", "").replace(" ", "")
        if checksums.nl_bsn(digits):
            score = _boost(ctx, "NL_BSN", m.start(), m.end(), 0.4, 0.95)
            out.append(Finding("NL_BSN", m.start(), m.end(), score, "11-proef"))
    return out


_NINO = re.compile(r"(?<![\w])[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w])")


def find_uk_nino(text: str, ctx: ContextIndex) -> list[Finding]:
    out = []
    for m in _NINO.finditer(text):
        if checksums.uk_nino(m.group(0).replace(" ", "")):
            score = _boost(ctx, "UK_NINO", m.start(), m.end(), 0.9, 1.0)
            out.append(Finding("UK_NINO", m.start(), m.end(), score, "nino prefix/suffix"))
    return out


_DIGIT = re.compile(r"\d")

RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(("EMAIL_ADDRESS",), find_email, re.compile("@")),
    Recognizer(("URL",), find_url, re.compile(r"(?i)://|www\.")),
    Recognizer(("CREDIT_CARD",), find_credit_card, _DIGIT),
    Recognizer(("IBAN_CODE",), find_iban, _DIGIT),
    Recognizer(("IP_ADDRESS",), find_ip, re.compile(r"\d\.\d|:")),
    Recognizer(("MAC_ADDRESS",), find_mac, re.compile(r"[0-9A-Fa-f]{2}[:\-.]")),
    Recognizer(("US_SSN",), find_us_ssn, _DIGIT),
    Recognizer(("DE_TAX_ID",), find_de_tax_id, _DIGIT),
    Recognizer(("FR_NIR",), find_fr_nir, _DIGIT),
    Recognizer(("ES_NIF",), find_es_nif, _DIGIT),
    Recognizer(("IT_FISCAL_CODE",), find_it_fiscal_code, _DIGIT),
    Recognizer(("NL_BSN",), find_nl_bsn, _DIGIT),
    Recognizer(("UK_NINO",), find_uk_nino, _DIGIT),
)
