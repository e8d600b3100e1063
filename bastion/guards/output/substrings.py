"""Banned substrings: literal strings a policy never wants in the text (a competitor's name,
an internal code word, a phrase legal has ruled out).

All entries compile into one trie-shaped regex, so a list of hundreds costs about what a
few do. Matching is case- and accent-insensitive unless ``case_sensitive`` is set;
``whole_words`` keeps "art" from matching inside "start". A finding's ``detail`` is the
entry's index in the list (``substring #3``), never the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bastion.guards.base import Finding, ScanContext
from bastion.guards.output._text import fold, original_span, trie_pattern

KIND = "BANNED_SUBSTRING"
_OPTIONS = {"substrings", "case_sensitive", "whole_words"}


class BannedSubstrings:
    name = "banned_substrings"
    kinds = (KIND,)

    def __init__(self, substrings: list[str], *, case_sensitive: bool = False,
                 whole_words: bool = False) -> None:
        self._case_sensitive = case_sensitive
        self._index: dict[str, int] = {}
        for i, entry in enumerate(substrings):
            key = entry if case_sensitive else fold(entry)[0]
            self._index.setdefault(key, i)
        body = trie_pattern(self._index)
        if whole_words:
            body = rf"(?<!\w)(?:{body})(?!\w)"
        self._pattern = re.compile(body)

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        if self._case_sensitive:
            haystack, offsets = text, None
        else:
            haystack, offsets = fold(text)
        findings = []
        for m in self._pattern.finditer(haystack):
            start, end = original_span(offsets, m.start(), m.end(), len(text))
            findings.append(Finding(KIND, start, end, 1.0, f"substring #{self._index[m.group(0)]}"))
        return findings


def make_scanner(options: Mapping[str, Any]) -> BannedSubstrings:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ValueError(f"banned_substrings: unknown option(s) {sorted(unknown)}")
    entries = options.get("substrings")
    if (not isinstance(entries, list) or not entries
            or not all(isinstance(e, str) and e for e in entries)):
        raise ValueError("banned_substrings: substrings must be a non-empty list of "
                         "non-empty strings")
    flags = {}
    for flag in ("case_sensitive", "whole_words"):
        value = options.get(flag, False)
        if not isinstance(value, bool):
            raise ValueError(f"banned_substrings: {flag} must be true or false")
        flags[flag] = value
    return BannedSubstrings(entries, **flags)
