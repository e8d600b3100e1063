"""The rule tier: known phrasings, invisible Unicode and encoded payloads, in one pass.

Fast (a few regular-expression searches over one folded view) and explainable: every
finding names the rule that fired in ``detail``, never the matched text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bastion.guards.base import Finding
from bastion.guards.injection.encoded import decode_blobs, transformed_views
from bastion.guards.injection.invisible import scan_invisible
from bastion.guards.injection.normalize import fold
from bastion.guards.injection.patterns import ASKED_SCORE, PAYLOAD_RULES, RULES, Rule

INDIRECT_SOURCES = frozenset({"document", "tool"})
_INVISIBLE_KIND = "INVISIBLE_TEXT"
_ENCODED_KIND = "ENCODED_PAYLOAD"


@dataclass(slots=True)
class RuleResult:
    findings: list[Finding] = field(default_factory=list)
    # readable text found inside encoded blobs or invisible tags, for the classifier:
    # (how, text, start, end)
    hidden: list[tuple[str, str, int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Hit:
    rule: Rule
    score: float  # the rule's, or ASKED_SCORE when the phrase is only asked about
    start: int
    end: int

    @property
    def label(self) -> str:
        asked = " (asked about)" if self.score < self.rule.score else ""
        return f"rule {self.rule.name}{asked}"


def _first_hits(view: str, rules: tuple[Rule, ...]) -> list[_Hit]:
    hits = []
    for rule in rules:
        found = rule.find(view)
        if found is not None:
            m, asked = found
            score = min(rule.score, ASKED_SCORE) if asked else rule.score
            hits.append(_Hit(rule, score, m.start(), m.end()))
    return hits


def _best(hits: list[_Hit]) -> _Hit | None:
    return max(hits, key=lambda h: h.score, default=None)


class RuleTier:
    """Runs the rules for one text. ``indirect`` rules apply only to documents and tool
    output, where text addressed to the assistant is itself the attack."""

    def __init__(self) -> None:
        self._direct = tuple(r for r in RULES if r.where == "any")
        self._all = RULES

    @staticmethod
    def hidden_only(text: str) -> list[tuple[str, str, int, int]]:
        """Readable text in Unicode tags and encoded blobs, without running any rule."""
        _, hidden = scan_invisible(text)
        out = [("tags", h.text, h.start, h.end) for h in hidden]
        out += [(d.how, d.text, d.start, d.end) for d in decode_blobs(text)]
        return out

    def scan(self, text: str, source: str) -> RuleResult:
        out = RuleResult()
        rules = self._all if source in INDIRECT_SOURCES else self._direct
        n = len(text)

        inv_hits, hidden = scan_invisible(text)
        for h in inv_hits:
            out.findings.append(Finding(_INVISIBLE_KIND, h.start, h.end, h.score,
                                        f"{h.what}: {h.count} invisible characters"))

        folded = fold(text)
        note = " (after normalisation)" if folded.changed else ""
        for hit in _first_hits(folded.text, rules):
            start, end = folded.span(hit.start, hit.end, n)
            out.findings.append(Finding(hit.rule.kind, start, end, hit.score,
                                        f"{hit.label}{note}"))

        for ht in hidden:
            out.hidden.append(("tags", ht.text, ht.start, ht.end))
            view = fold(ht.text).text
            best = max((h.score for h in _first_hits(view, PAYLOAD_RULES)), default=0.0)
            if best:
                out.findings.append(Finding(_INVISIBLE_KIND, ht.start, ht.end, max(best, 0.95),
                                            "instructions hidden in Unicode tag characters"))

        for d in decode_blobs(text):
            out.hidden.append((d.how, d.text, d.start, d.end))
            top = _best(_first_hits(fold(d.text).text, PAYLOAD_RULES))
            if top is not None:
                out.findings.append(Finding(_ENCODED_KIND, d.start, d.end, top.score,
                                            f"{d.how} payload: {top.label}"))

        for d in transformed_views(folded.text):
            top = _best(_first_hits(d.text, PAYLOAD_RULES))
            if top is not None:
                out.findings.append(Finding(_ENCODED_KIND, 0, n, top.score,
                                            f"{d.how} text: {top.label}"))
        return out
