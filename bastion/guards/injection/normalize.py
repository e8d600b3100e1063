"""One matching view of a text for the injection rules and the classifier.

Attackers dress known phrasings up so that a literal match misses them: fullwidth or
mathematical letters (NFKC undoes them), Cyrillic and Greek look-alikes ("іgnоrе"), accents,
leetspeak ("1gn0r3"), zero-width characters between letters, letters spaced out
("i g n o r e"). :func:`fold` maps all of these to plain lower-case Latin text and keeps,
for every character of the view, the offset of the original character it came from, so a
match in the view is reported as a span of the original text.

ASCII text (most prompts) takes a fast path that keeps offsets one to one.
"""

# ruff: noqa: RUF001, RUF002 (look-alike letters are what this module folds)
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Cyrillic, Greek and other look-alikes of Latin letters (after NFKC and casefold)
_CONFUSABLES = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ү": "y", "ɑ": "a", "ɩ": "i", "ο": "o",
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    "γ": "y", "ω": "w", "η": "n", "β": "b", "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h",
    "ŀ": "l", "œ": "oe", "æ": "ae", "ſ": "s", "ꞵ": "b", "ᴀ": "a", "ʀ": "r", "ɪ": "i",
}
# leetspeak digits and symbols, folded only inside words that also contain letters
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "8": "b"})
_LEET_WORD = re.compile(r"(?<![\w@$])(?=[\w@$]*[a-z])(?=[\w@$]*[0134578@$])[\w@$]{3,}")
# a word whose letters are spaced out: "i g n o r e", "i.g.n.o.r.e", "i-g-n-o-r-e"
_SPACED = re.compile(r"(?<![a-z])[a-z](?:[ ._\-*]{1,2}[a-z]){3,}(?![a-z])")


def is_invisible(ch: str) -> bool:
    """Characters that render as nothing: format characters (zero-width, bidi controls,
    Unicode tags, soft hyphen) and variation selectors."""
    cat = unicodedata.category(ch)
    return cat == "Cf" or (cat == "Mn" and ("\ufe00" <= ch <= "\ufe0f" or ch >= "\U000e0100"))


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    if is_invisible(ch):
        return ""
    out = []
    for c in unicodedata.normalize("NFKC", ch).casefold():
        for d in unicodedata.normalize("NFKD", c):
            if unicodedata.category(d) == "Mn":  # accents, combining marks
                continue
            out.append(_CONFUSABLES.get(d, d))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Folded:
    """The matching view and, when it differs in length from the original, the original
    offset of each view character (``None``: offsets are the same)."""

    text: str
    offsets: list[int] | None
    changed: bool  # anything beyond lower-casing was undone (invisibles, look-alikes, leet)

    def span(self, start: int, end: int, length: int) -> tuple[int, int]:
        """The original span of view characters ``[start, end)``."""
        if self.offsets is None:
            return start, end
        if end <= start:
            return self.offsets[start] if start < len(self.offsets) else length, length
        return self.offsets[start], self.offsets[end - 1] + 1


def _leet(text: str) -> str:
    return _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), text)


def fold(text: str, *, unspace: bool = True) -> Folded:
    """Lower-case Latin view of ``text`` with invisibles removed and look-alikes, accents and
    leetspeak folded; ``unspace`` also joins spaced-out letters (for the rules, not the
    classifier, which learns from the same view at training and run time)."""
    if text.isascii():
        low = text.lower()
        view = _leet(low)
        changed = view != low
        offsets: list[int] | None = None
    else:
        parts: list[str] = []
        offsets = []
        changed = False
        for i, ch in enumerate(text):
            if ch.isascii():
                f = ch.lower()
            else:
                f = _fold_char(ch)
                changed = changed or f != ch.lower()
            parts.append(f)
            if len(f) == 1:
                offsets.append(i)
            elif f:
                offsets.extend([i] * len(f))
        view = "".join(parts)
        leeted = _leet(view)
        changed = changed or leeted != view
        view = leeted
    if unspace and _SPACED.search(view):
        view, offsets = _unspace(view, offsets)
        changed = True
    return Folded(view, offsets, changed)


def _unspace(view: str, offsets: list[int] | None) -> tuple[str, list[int]]:
    base = offsets if offsets is not None else list(range(len(view)))
    out: list[str] = []
    out_off: list[int] = []
    pos = 0
    for m in _SPACED.finditer(view):
        out.append(view[pos:m.start()])
        out_off.extend(base[pos:m.start()])
        for j in range(m.start(), m.end()):
            if view[j].isalpha():
                out.append(view[j])
                out_off.append(base[j])
        pos = m.end()
    out.append(view[pos:])
    out_off.extend(base[pos:])
    return "".join(out), out_off
