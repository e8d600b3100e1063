"""The scanner contract: what a scanner gets, what it returns, how it is registered.

A scanner looks at one piece of text and reports :class:`Finding` objects: a span (or
the whole text) with a kind and a score in [0, 1]. It does not decide what happens: the
policy engine compares scores with the policy's threshold and applies the action
(``block``, ``redact``, ``pseudonymize``, ``flag``, ``log``) to the findings' spans.

Scanners are synchronous, CPU-only and pure (no I/O on the request path); whatever they
need (compiled patterns, model weights) is loaded once by the factory. A factory gets the
policy entry's ``options`` mapping and returns a scanner; it raises ``ValueError`` naming
the bad option.

Register from a plugin::

    from bastion.hookspecs import hookimpl

    @hookimpl
    def register_scanners(register):
        register("my_scanner", lambda options: MyScanner(**options))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Stage = Literal["input", "output"]
# what the text is: a user/system prompt, a retrieved document or tool output (indirect
# injection), or the model's answer
Source = Literal["prompt", "system", "document", "tool", "completion"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a scanner found. ``start``/``end`` are character offsets into the scanned
    text (end exclusive); a verdict about the whole text (a classifier's) spans it all.
    ``kind`` is an entity or category in upper snake case: ``EMAIL_ADDRESS``,
    ``CREDIT_CARD``, ``PERSON``, ``SECRET``, ``INJECTION``, ``TOXICITY``...
    ``detail`` is a short, non-sensitive explanation (never the matched text itself: a
    finding goes into traces and logs)."""

    kind: str
    start: int
    end: int
    score: float = 1.0
    detail: str = ""

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end


@dataclass(slots=True)
class ScanContext:
    """What a scanner may know about the text besides the text itself."""

    stage: Stage = "input"
    source: Source = "prompt"
    # the request's text fields scanned before this one (e.g. the prompt, when scanning
    # the completion) and per-request values such as canary tokens
    values: dict[str, Any] = field(default_factory=dict)
    language: str | None = None  # ISO 639-1 when known ("en", "de", ...); None: detect


@runtime_checkable
class Scanner(Protocol):
    """Finds things in text. ``name`` is the registered name; ``kinds`` the kinds of
    finding it can report (for docs, ``bastion guard scan`` and metrics)."""

    name: str
    kinds: tuple[str, ...]

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]: ...


ScannerFactory = Callable[[Mapping[str, Any]], Scanner]
RegisterScanner = Callable[[str, ScannerFactory], None]


def merge_spans(findings: list[Finding]) -> list[Finding]:
    """Non-overlapping findings, by position: where two overlap, the higher score (then
    the longer span) wins. What redaction and pseudonymization replace."""
    ordered = sorted(findings, key=lambda f: (-f.score, -(f.end - f.start), f.start))
    taken: list[Finding] = []
    for f in ordered:
        if f.end <= f.start:
            continue
        if all(f.end <= t.start or f.start >= t.end for t in taken):
            taken.append(f)
    return sorted(taken, key=lambda f: f.start)
