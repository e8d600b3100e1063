"""Characters a reader does not see but a model does.

* **Unicode tags** (U+E0000-U+E007F) spell out ASCII invisibly ("ASCII smuggling"); the one
  legitimate use is a subdivision flag emoji (a waving black flag U+1F3F4 followed by tag
  letters and U+E007F), which is skipped.
* **Zero-width and other format characters** between letters split a keyword so that filters
  miss it (U+200B, U+200C, U+200D, U+2060, U+FEFF, U+00AD, U+180E). A joiner inside an emoji
  sequence, or one mark at the very start, is normal and skipped.
* **Bidi controls** (U+202A-U+202E, U+2066-U+2069) reorder what is displayed ("Trojan
  Source"); overrides (U+202D/U+202E) are rarer in honest text than isolates.

:func:`scan_invisible` reports what it found and returns the hidden tag text (decoded) so the
rules can look for an attack in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_BLACK_FLAG = "\U0001f3f4"


@dataclass(frozen=True, slots=True)
class InvisibleHit:
    what: str  # "tags", "zero_width", "bidi"
    start: int
    end: int
    count: int
    score: float


@dataclass(frozen=True, slots=True)
class HiddenText:
    text: str
    start: int
    end: int


def _is_emoji(ch: str) -> bool:
    return ord(ch) >= 0x2190 and not ch.isalpha()


def scan_invisible(text: str) -> tuple[list[InvisibleHit], list[HiddenText]]:
    if text.isascii():
        return [], []
    hits: list[InvisibleHit] = []
    hidden: list[HiddenText] = []
    for m in _TAG_RUN.finditer(text):
        if m.start() > 0 and text[m.start() - 1] == _BLACK_FLAG:
            continue  # a subdivision flag such as England's
        run = m.group(0)
        decoded = "".join(chr(ord(c) - 0xE0000) for c in run if 0xE0020 <= ord(c) <= 0xE007E)
        hits.append(InvisibleHit("tags", m.start(), m.end(), len(run),
                                 0.95 if len(decoded) >= 4 else 0.6))
        if decoded:
            hidden.append(HiddenText(decoded, m.start(), m.end()))
    zw = [m.start() for m in _ZERO_WIDTH.finditer(text)
          if 0 < m.start() < len(text) - 1
          and not (_is_emoji(text[m.start() - 1]) or _is_emoji(text[m.start() + 1]))
          and (text[m.start() - 1].isalnum() or text[m.start() + 1].isalnum())]
    if zw:
        # one joiner in a Persian or Indic word is spelling; many inside Latin words are not
        latin = sum(1 for i in zw if text[i - 1].isascii() and text[i + 1].isascii())
        score = min(0.9, 0.3 + 0.15 * latin) if latin else 0.2
        hits.append(InvisibleHit("zero_width", zw[0], zw[-1] + 1, len(zw), score))
    bidi = [m.start() for m in _BIDI.finditer(text)]
    if bidi:
        overrides = sum(1 for i in bidi if text[i] in "\u202d\u202e")
        score = 0.7 if overrides else 0.4
        hits.append(InvisibleHit("bidi", bidi[0], bidi[-1] + 1, len(bidi), score))
    return hits, hidden
