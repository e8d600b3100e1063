"""Short units of a document that the classifier scores on their own (indirect mode only).

An instruction of one or two sentences inside a 600-character window of benign text is
diluted: the window's n-grams are mostly the document's, and the L2-normalised features
of the attack weigh a fraction of what they weigh alone. Retrieved documents and tool
output also hide text where a reader does not look: HTML comments, hidden elements and
``alt``/``aria-label`` attributes, code comments, docstrings and string literals, JSON
string values, table cells, quoted replies. :func:`units` cuts a (folded) document at those
structural boundaries and at sentence ends, so each candidate instruction can be scored
about as it would be alone.

Pieces are the text between structural breaks (blank lines, line starts with list, quote or
comment markers, HTML tags and comments, table pipes, double quotes, block-comment marks);
attribute values of tags that carry readable text are pieces too. Units are each piece of
at most :data:`MAX_UNIT` characters, each of its sentences and each pair of adjacent
sentences; units under :data:`MIN_WORDS` words are dropped (a linear model's bias decides
those, and the rules judge short phrases anyway).
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Final

MIN_WORDS: Final = 5
MAX_UNIT: Final = 600
MAX_UNITS: Final = 160  # a cap on work per text; beyond it the windows alone judge

_BREAK = re.compile(
    r"\n[ \t]*(?:[#>*+|-]+|//+|\d{1,2}[.)])?[ \t]*"  # a new line and its list/quote/comment mark
    r"|<!--|-->|<[^<>]{1,500}>"  # HTML comments and tags
    r"|\s*\|\s*|\"|/\*+|\*+/|(?<![:\w])//+"  # table cells, string literals, comments
)
_ATTR = re.compile(r"\b(?:alt|title|aria-label|content|placeholder|value|data-[\w-]+)\s*=\s*"
                   r"(?:\"([^\"]{12,})\"|'([^']{12,})')")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _pieces(view: str) -> list[tuple[int, int]]:
    """Spans of text between structural breaks, plus readable tag attributes."""
    out: list[tuple[int, int]] = []
    pos = 0
    for m in _BREAK.finditer(view):
        if m.start() > pos:
            out.append((pos, m.start()))
        tag = m.group(0)
        if tag.startswith("<") and "=" in tag:
            for a in _ATTR.finditer(tag):
                g = 1 if a.group(1) is not None else 2
                out.append((m.start() + a.start(g), m.start() + a.end(g)))
        pos = m.end()
    if pos < len(view):
        out.append((pos, len(view)))
    return out


def _sentences(view: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, pos = [], start
    for m in _SENTENCE_END.finditer(view, start, end):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, end))
    return spans


def _words(view: str, span: tuple[int, int]) -> int:
    # whitespace-separated words: a URL or a path is one, however many \w+ runs it has
    return len(view[span[0] : span[1]].split())


def units(view: str) -> list[tuple[int, int]]:
    """Distinct spans of ``view`` to score alone, in document order, at most MAX_UNITS."""
    seen: set[tuple[int, int]] = set()
    out: list[tuple[int, int]] = []

    def add(span: tuple[int, int]) -> None:
        if span not in seen and span[1] - span[0] <= MAX_UNIT and _words(view, span) >= MIN_WORDS:
            seen.add(span)
            out.append(span)

    for s, e in _pieces(view):
        sents = _sentences(view, s, e)
        add((s, e))
        if len(sents) > 1:
            for a in sents:
                add(a)
            for a, b in pairwise(sents):
                add((a[0], b[1]))
        if len(out) >= MAX_UNITS:
            break
    return out[:MAX_UNITS]
