"""System-prompt leakage: a per-request canary token planted in the system message, and
long verbatim runs of the system prompt itself, found in the model's answer.

The gateway makes a token with :func:`new_canary`, adds it to the system message with
:func:`plant` (an HTML comment on a line of its own at the start: models leave comments
alone when following instructions, and copy them verbatim when they dump their prompt),
and puts it in ``ScanContext.values["canary"]`` for the output scan. The token is 16
random hex digits behind a fixed prefix; it is found exactly, and also with its case or
spacing changed or split by spaces, hyphens or line breaks (only letters and digits are
compared), or without its prefix. Sixteen hex digits do not occur by chance: a match is a
leak (score 1.0).

Without a canary (or besides it) ``ScanContext.values["system_prompt"]`` is compared with
the answer by word n-grams: a run of at least ``min_words`` words (default 12) that the
answer repeats verbatim from the system prompt is a ``SYSTEM_PROMPT_LEAK``, scored by how
long it is (12 words 0.6, 40 or more, or the whole prompt, 1.0). Short system prompts
("You are a helpful assistant.") cannot leak detectably this way, and are not reported.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from bastion.guards.base import Finding, ScanContext
from bastion.guards.output._text import fold

CANARY_KIND = "CANARY_LEAK"
LEAK_KIND = "SYSTEM_PROMPT_LEAK"
PREFIX = "bst-"
_MARKER = "<!-- {} -->"
_HEX = re.compile(r"[0-9a-f]{16}")
_WORD = re.compile(r"\w+")
_NOT_ALNUM = re.compile(r"[\W_]+")


def new_canary() -> str:
    """An unguessable token of a shape models copy verbatim: ``bst-`` and 16 hex digits."""
    return PREFIX + secrets.token_hex(8)


def plant_text(system: str, canary: str) -> str:
    """``system`` with the canary marker on a line of its own before it."""
    return f"{_MARKER.format(canary)}\n{system}"


def plant(messages: list[dict[str, Any]], canary: str) -> list[dict[str, Any]]:
    """A copy of ``messages`` with the canary in the first system (or developer) message;
    the input is not modified. A conversation without a system message is returned as it
    is: adding one would change what the model does (chat templates put in a default
    system prompt only when there is none), and there is no prompt to leak."""
    out = list(messages)
    for i, message in enumerate(out):
        if message.get("role") not in ("system", "developer"):
            continue
        content = message.get("content")
        if isinstance(content, str):
            out[i] = {**message, "content": plant_text(content, canary)}
        elif isinstance(content, list):
            marker = {"type": "text", "text": _MARKER.format(canary) + "\n"}
            out[i] = {**message, "content": [marker, *content]}
        else:
            continue
        break
    return out


def _alnum_index(text: str) -> tuple[str, list[int]]:
    """Lower-cased letters and digits of ``text``, and where each came from."""
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch.isalnum():
            chars.append(ch.lower())
            where.append(i)
    return "".join(chars), where


def find_canary(text: str, canary: str) -> list[tuple[int, int, str]]:
    """Spans of ``canary`` in ``text``: exact, or reformatted (case, spacing, split)."""
    spans: list[tuple[int, int, str]] = []
    start = text.find(canary)
    while start >= 0:
        spans.append((start, start + len(canary), "canary token"))
        start = text.find(canary, start + len(canary))
    if spans:
        return spans
    body = "".join(ch for ch in canary.lower() if ch.isalnum())
    core = body[len(PREFIX) - 1 :] if canary.startswith(PREFIX) else body
    if len(core) < 8:
        return spans
    if core not in _NOT_ALNUM.sub("", text).lower():
        return spans
    squashed, where = _alnum_index(text)
    i = squashed.find(core)
    while i >= 0:
        lo = i
        if squashed[:i].endswith(body[: len(body) - len(core)]):
            lo = i - (len(body) - len(core))  # the prefix came along
        spans.append((where[lo], where[i + len(core) - 1] + 1, "canary token (reformatted)"))
        i = squashed.find(core, i + len(core))
    return spans


class _PromptIndex:
    """Word n-grams of one system prompt (cached: the same prompt serves many requests)."""

    def __init__(self, prompt: str, n: int) -> None:
        words = _WORD.findall(fold(prompt)[0])
        self.length = len(words)
        self.grams = {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
        self.firsts = {g[0] for g in self.grams}


class CanaryScanner:
    name = "canary"
    kinds = (CANARY_KIND, LEAK_KIND)

    def __init__(self, *, min_words: int = 12, system_prompt: bool = True) -> None:
        self._min_words = min_words
        self._n = min(8, min_words)
        self._check_prompt = system_prompt
        self._cache: OrderedDict[str, _PromptIndex] = OrderedDict()

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        findings: list[Finding] = []
        canaries = ctx.values.get("canary")
        if isinstance(canaries, str):
            canaries = [canaries]
        for canary in canaries or ():
            if isinstance(canary, str) and canary:
                findings.extend(Finding(CANARY_KIND, s, e, 1.0, d)
                                for s, e, d in find_canary(text, canary))
        prompt = ctx.values.get("system_prompt")
        if self._check_prompt and isinstance(prompt, str) and prompt:
            findings.extend(self._leaks(text, prompt))
        return findings

    def _index(self, prompt: str) -> _PromptIndex:
        index = self._cache.get(prompt)
        if index is None:
            index = _PromptIndex(prompt, self._n)
            self._cache[prompt] = index
            if len(self._cache) > 64:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(prompt)
        return index

    def _leaks(self, text: str, prompt: str) -> list[Finding]:
        index = self._index(prompt)
        if index.length < self._min_words:
            return []
        folded, offsets = fold(text)
        words = [(m.group(0), m.start(), m.end()) for m in _WORD.finditer(folded)]
        n = self._n
        findings = []
        i = 0
        tokens = [w for w, _, _ in words]
        while i + n <= len(words):
            if tokens[i] not in index.firsts or tuple(tokens[i : i + n]) not in index.grams:
                i += 1
                continue
            j = i + 1  # extend the run while the next n-gram is also in the prompt
            while j + n <= len(words) and tuple(tokens[j : j + n]) in index.grams:
                j += 1
            run_words = j - i + n - 1
            if run_words >= self._min_words:
                start, end = words[i][1], words[j + n - 2][2]
                if offsets is not None:
                    start, end = offsets[start], offsets[end - 1] + 1
                full = min(40, index.length)
                score = 1.0 if run_words >= full else 0.6 + 0.4 * (
                    (run_words - self._min_words) / max(1, full - self._min_words))
                findings.append(Finding(LEAK_KIND, start, end, round(min(1.0, score), 3),
                                        f"{run_words} words verbatim from the system prompt"))
            i = j + n - 1
        return findings


def make_scanner(options: Mapping[str, Any]) -> CanaryScanner:
    unknown = set(options) - {"min_words", "system_prompt"}
    if unknown:
        raise ValueError(f"canary: unknown option(s) {sorted(unknown)}")
    min_words = options.get("min_words", 12)
    if not isinstance(min_words, int) or isinstance(min_words, bool) or min_words < 6:
        raise ValueError("canary: min_words must be an integer >= 6")
    check = options.get("system_prompt", True)
    if not isinstance(check, bool):
        raise ValueError("canary: system_prompt must be true or false")
    return CanaryScanner(min_words=min_words, system_prompt=check)
