"""A weighted term list matched in one pass: the shared engine of banned topics and the
toxicity lexicon.

A term is a word or phrase, folded (case and accents ignored) and matched on word
boundaries; a trailing ``*`` makes it a prefix (``vaccin*`` matches "vaccine",
"vaccination"). Every term carries ``(label, weight)`` pairs: a term may count for more than
one label. Exact terms and prefixes each compile into one trie-shaped regex.

``fuzzy`` matching (the toxicity lexicon) also accepts stretched letters ("fuuuck": each
letter of a term matches a run of itself, a doubled letter a run of two or more), an
optional apostrophe ("youre" for "you're") and ``-``, ``_`` or ``.`` between the words of a
phrase. Hits are then keyed by a signature (runs collapsed, apostrophes dropped) that the
term and every spelling of it share.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import groupby

from bastion.guards.output._text import fold, trie_regex

_SPACES = re.compile(r"\s+")
_APOSTROPHES = re.compile("['\u2019`]")
_GAP = re.compile(r"[\s\-_.]+")


def normalize_term(term: str) -> str:
    return _SPACES.sub(" ", fold(term.strip())[0])


def signature(s: str) -> str:
    """What every spelling of a term has in common: apostrophes dropped, the gaps between
    words one space, each run of a letter one letter."""
    s = _GAP.sub(" ", _APOSTROPHES.sub("", s))
    return "".join(ch for ch, _ in groupby(s))


def _fragments(term: str, fuzzy: bool) -> tuple[str, ...]:
    if not fuzzy:
        return tuple(r"\s+" if ch == " " else re.escape(ch) for ch in term)
    out: list[str] = []
    for ch, run in groupby(term):
        n = len(list(run))
        if ch == " ":
            out.append(r"[\s\-_.]+")
        elif ch in "'\u2019":
            out.append("['\u2019`]?")
        elif ch.isalpha():
            out.append(re.escape(ch) + ("+" if n == 1 else f"{{{n},}}"))
        else:
            out.append(re.escape(ch) * n)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Hit:
    label: str
    weight: float
    term: str  # the term's key (signature when fuzzy), "*" appended for a prefix
    start: int  # offsets into the string that was matched (folded)
    end: int


class TermMatcher:
    """Finds weighted terms; :meth:`hits` works on already folded text (see ``fold``)."""

    def __init__(self, terms: Mapping[str, Iterable[tuple[str, float]]],
                 fuzzy: bool = False) -> None:
        self._fuzzy = fuzzy
        self._labels: dict[str, list[tuple[str, float]]] = {}
        exact: list[tuple[str, ...]] = []
        prefixes: list[tuple[str, ...]] = []
        for raw, pairs in terms.items():
            is_prefix = raw.endswith("*")
            term = normalize_term(raw.rstrip("*"))
            if not term:
                continue
            key = self._key(term) + ("*" if is_prefix else "")
            self._labels.setdefault(key, []).extend(pairs)
            (prefixes if is_prefix else exact).append(_fragments(term, fuzzy))
        parts = []
        if exact:
            parts.append(rf"(?P<e>{trie_regex(exact)})(?!\w)")
        if prefixes:
            parts.append(rf"(?P<p>{trie_regex(prefixes)})\w*")
        self._pattern = re.compile(rf"(?<!\w)(?:{'|'.join(parts) or '(?!)'})")

    def _key(self, s: str) -> str:
        return signature(s) if self._fuzzy else _SPACES.sub(" ", s)

    def hits(self, folded: str) -> list[Hit]:
        out = []
        for m in self._pattern.finditer(folded):
            groups = m.groupdict()
            if groups.get("e") is not None:
                key = self._key(groups["e"])
            else:
                key = self._key(groups["p"]) + "*"
            for label, weight in self._labels.get(key, ()):
                out.append(Hit(label, weight, key, m.start(), m.end()))
        return out


def evidence_score(weights_by_term: Mapping[str, list[float]]) -> float:
    """1 - exp(-total): distinct terms add their weight, a repeated term adds a quarter of
    it each time (one word said five times is weaker evidence than five words)."""
    total = 0.0
    for weights in weights_by_term.values():
        w = max(weights)
        total += w * (1 + 0.25 * (len(weights) - 1))
    return 1 - math.exp(-total)
