"""Phone numbers: a cheap pattern proposes digit runs, `phonenumbers` (Google's
libphonenumber metadata, offline) decides.

``PhoneNumberMatcher`` over the whole text costs milliseconds per kilobyte; parsing only
the few runs that look like a number (7 to 15 digits with phone-like separators) costs
tens of microseconds each. A number written in international form (``+49 ...``,
``0049 ...``) that is valid for its country is confident on its own; a national one must
be valid for one of the languages' countries and gains from a context word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers

from bastion.guards.base import Finding
from bastion.guards.pii.context import ContextIndex

REGIONS = {"en": ("US", "GB"), "de": ("DE", "AT", "CH"), "fr": ("FR", "BE"), "es": ("ES",),
           "it": ("IT",), "nl": ("NL", "BE")}

_CANDIDATE = re.compile(
    r"(?<![\w+\-/.])(?:\+|\(\+?)?\d[\d ().\-/]{5,22}\d"
    r"(?:\s?(?:x|ext\.?|extension)\s?\d{1,5})?(?!\w|[\-./]\d)",
    re.IGNORECASE,
)
_DATE_LIKE = re.compile(
    r"^(?:\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}(?:$|[ T]\d)|(?:19|20)\d\d[\-/.])"
)
_GROUPS = re.compile(r"\d+")
_EXTENSION = re.compile(r"\s?(?:x|ext\.?|extension)\s?", re.IGNORECASE)
_IPV4_LIKE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


class PhoneFinder:
    def __init__(self, languages: Iterable[str]) -> None:
        regions: list[str] = []
        for lang in languages:
            for region in REGIONS.get(lang, ()):
                if region not in regions:
                    regions.append(region)
        self.regions = tuple(regions)

    def __call__(self, text: str, ctx: ContextIndex) -> list[Finding]:
        out = []
        for m in _CANDIDATE.finditer(text):
            raw = m.group(0)
            digits = sum(c.isdigit() for c in _EXTENSION.split(raw)[0])
            if not 7 <= digits <= 15 or _DATE_LIKE.match(raw) or _IPV4_LIKE.match(raw):
                continue
            groups = _GROUPS.findall(raw)
            if 2 * sum(len(g) == 1 for g in groups) > len(groups):
                continue  # "1 2 3 4 5 6 7": a list of numbers, not a phone number
            near = ctx.near("PHONE_NUMBER", m.start(), m.end())
            score = self._score(raw, near)
            if (score and not raw.lstrip("(").startswith(("+", "00"))
                    and ctx.near("NOT_PII_NUMBER", m.start(), m.end(), 32, 0)):
                score = min(score, 0.3)  # "licence number 6940579", "order 0301234567"
            if score:
                out.append(Finding("PHONE_NUMBER", m.start(), m.end(), score, "phone"))
        return out

    def _score(self, raw: str, near: bool) -> float:
        lead = raw.lstrip("(")
        if lead.startswith(("+", "00")):
            number = raw if lead.startswith("+") else "+" + lead[2:]
            parsed = _parse(number, None)
            if parsed is not None and phonenumbers.is_valid_number(parsed):
                return 1.0 if near else 0.95
            if parsed is not None and phonenumbers.is_possible_number(parsed) and near:
                return 0.7
            return 0.0
        possible = False
        first = next(c for c in raw if c.isdigit())
        for region in self.regions:
            # national forms in these countries open with the trunk prefix 0, except
            # the NANP's (never 0), Spain's (none) and Italy's (0 kept, mobiles 3)
            if (first == "0") == (region in _NO_TRUNK_ZERO) and region != "IT":
                continue
            parsed = _parse(raw, region)
            if parsed is None:
                continue
            if phonenumbers.is_valid_number_for_region(parsed, region):
                # short national numbers collide with house numbers, licence numbers...
                # and a bare digit run is as often an order or ticket number
                if raw.isdigit():
                    return 0.9 if near else 0.4
                if sum(c.isdigit() for c in raw) >= 9:
                    return 0.95 if near else 0.7
                return 0.9 if near else 0.45
            possible = possible or phonenumbers.is_possible_number(parsed)
        if near and (possible or sum(c.isdigit() for c in raw) >= 7):
            return 0.6
        return 0.0


_NO_TRUNK_ZERO = frozenset({"US", "ES"})


def _parse(raw: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
