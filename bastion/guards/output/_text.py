"""Text helpers the output checks share: case- and accent-insensitive folding that keeps
offsets into the original text, and one regex for many literals.

Folding maps "Élan", "ELAN" and "elan" to the same string. Most characters fold to one
character (é -> e), so the folded text has the original's offsets; only the few that expand
(ß -> ss, ﬁ -> fi) need an offset table, built only when one occurs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import TypeAlias


class _FoldTable(dict[int, str]):
    """str.translate table computed on first sight of each non-ASCII character."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        decomposed = unicodedata.normalize("NFKD", ch)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
        self[code] = folded
        return folded


_TABLE = _FoldTable()
_Trie: TypeAlias = dict[str, "_Trie"]
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def fold_char(ch: str) -> str:
    return ch.lower() if ch.isascii() else _TABLE[ord(ch)]


def fold(text: str) -> tuple[str, list[int] | None]:
    """``text`` lower-cased without accents, and the original offset of each folded
    character (``None``: the same offsets)."""
    if text.isascii():
        return text.lower(), None
    folded = text.translate(_TABLE).lower()
    if len(folded) == len(text):
        return folded, None
    pieces: list[str] = []
    offsets: list[int] = []
    pos = 0
    for m in _NON_ASCII.finditer(text):  # ASCII runs in one piece, the rest one by one
        i = m.start()
        pieces.append(text[pos:i].lower())
        offsets.extend(range(pos, i))
        f = _TABLE[ord(text[i])].lower()
        pieces.append(f)
        offsets.extend([i] * len(f))
        pos = i + 1
    pieces.append(text[pos:].lower())
    offsets.extend(range(pos, len(text)))
    return "".join(pieces), offsets


def original_span(offsets: list[int] | None, start: int, end: int, length: int) -> tuple[int, int]:
    """The span in the original text of folded ``[start, end)``."""
    if offsets is None:
        return start, end
    if start >= len(offsets):
        return length, length
    return offsets[start], (offsets[end - 1] + 1 if end > start else offsets[start])


def trie_pattern(words: Iterable[str]) -> str:
    """A regex alternation of ``words`` built as a trie (``foo|foobar|fox`` becomes
    ``fo(?:o(?:bar)?|x)``): the engine follows one branch per character instead of trying
    every word at every position, so hundreds of words cost about what a few do. The
    longest word matches first at a position."""
    return trie_regex(tuple(re.escape(ch) for ch in word) for word in words)


def trie_regex(sequences: Iterable[Sequence[str]]) -> str:
    """:func:`trie_pattern` over sequences of regex fragments (one per character, e.g.
    ``u+`` to allow "fuuuck")."""
    trie: _Trie = {}
    for seq in sequences:
        if not seq:
            continue
        node = trie
        for fragment in seq:
            node = node.setdefault(fragment, {})
        node[""] = {}
    return _emit(trie) if trie else "(?!)"


def _emit(node: _Trie) -> str:
    ends = "" in node
    branches = [fragment + _emit(child) for fragment, child in sorted(node.items()) if fragment]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if ends else body
