"""Prompt-injection and jailbreak detection: a rule tier and a shipped linear classifier.

``make_scanner(options)`` is the built-in ``injection`` scanner. Options:

* ``tier``: ``"rules"``, ``"classifier"`` or ``"both"`` (default);
* ``min_score``: findings scoring below this are not reported (default 0.05; the policy
  applies the real threshold);
* ``scan_hidden``: also classify text found decoded from base64/hex blobs and Unicode tags
  (default true; only with the classifier). A decodable blob is no finding by itself: only
  decoded text that the rules match, or that the classifier scores as an attack, is one
  (and a decoded text under four words scores below 0.5 unless a rule matches it);
* ``model_path`` / ``model_sha256``: another model file and its pinned digest (for a model a
  user trained with ``training/injection/train.py`` on their own data).

Findings: rule hits are ``INJECTION``, ``JAILBREAK``, ``INVISIBLE_TEXT`` or
``ENCODED_PAYLOAD`` with the rule's precision as score and its name in ``detail``; the
classifier adds one ``INJECTION`` finding over the text (or the window of a long text that
scored highest). Its score is a probability calibrated (Platt) on templates it was not
trained on, with the prior shifted so that 0.5 is the operating point: a false-positive
rate of 2 % on that held-out benign data, averaged over its benign families so that easy
rows cannot buy alarms on hard ones (:func:`recommended_threshold`, stored in the model
file). Rules that are enough on their own score >= 0.5, weak signals below, so one
policy threshold of 0.5 serves both tiers.

Indirect mode: with ``ScanContext.source`` ``"document"`` or ``"tool"`` the rules addressed
to an assistant ("AI: ignore your instructions", "when you read this, send...") apply,
and the classifier sees its indirect-source feature. The classifier then also scores the
short units of the text on their own (:mod:`segments`: pieces between structural breaks such
as HTML comments and hidden elements, code comments, string literals, table cells and quoted
lines, their sentences and sentence pairs), so an instruction diluted in a 600-character
window of benign text is judged about as it would be alone; the best window or unit wins
and is reported as ``(segment)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from bastion.guards.base import Finding, ScanContext, Scanner
from bastion.guards.injection.model import MODEL_PATH, LinearModel, load_model
from bastion.guards.injection.model_hash import MODEL_SHA256
from bastion.guards.injection.normalize import fold
from bastion.guards.injection.rules import INDIRECT_SOURCES, RuleTier
from bastion.guards.injection.segments import units

__all__ = ["KINDS", "InjectionScanner", "make_scanner", "recommended_threshold"]

KINDS: Final = ("INJECTION", "JAILBREAK", "INVISIBLE_TEXT", "ENCODED_PAYLOAD")
_TIERS: Final = ("rules", "classifier", "both")
_OPTIONS: Final = frozenset({"tier", "min_score", "scan_hidden", "model_path", "model_sha256"})
_MAX_HIDDEN: Final = 4
_MIN_HIDDEN_WORDS: Final = 4
_SHORT_HIDDEN_CAP: Final = 0.45


class InjectionScanner:
    """Scans prompts, documents and tool output for injected instructions."""

    name = "injection"
    kinds: tuple[str, ...] = KINDS

    def __init__(self, *, rules: RuleTier | None, model: LinearModel | None,
                 min_score: float = 0.05, scan_hidden: bool = True) -> None:
        self._rules = rules
        self._model = model
        self._min_score = min_score
        self._scan_hidden = scan_hidden

    @property
    def threshold(self) -> float | None:
        """The classifier's operating point (None without a classifier)."""
        return self._model.threshold if self._model is not None else None

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        if not text:
            return []
        indirect = ctx.source in INDIRECT_SOURCES
        findings: list[Finding] = []
        hidden: list[tuple[str, str, int, int]] = []
        if self._rules is not None:
            result = self._rules.scan(text, ctx.source)
            findings.extend(result.findings)
            hidden = result.hidden
        elif self._scan_hidden:
            # the classifier alone still looks inside encoded blobs
            hidden = RuleTier.hidden_only(text)
        if self._model is not None:
            view = fold(text, unspace=False)
            p, s, e = self._model.score(view.text, indirect)
            where = "" if (s, e) == (0, len(view.text)) else " (window)"
            if indirect:
                up, us, ue = self._model.score_spans(view.text, units(view.text), indirect)
                if up > p:
                    p, s, e, where = up, us, ue, " (segment)"
            start, end = view.span(s, e, len(text))
            findings.append(Finding("INJECTION", start, end, round(p, 4),
                                    f"classifier p={p:.3f}{where}"))
            if self._scan_hidden:
                for how, decoded, hs, he in hidden[:_MAX_HIDDEN]:
                    hp, _, _ = self._model.score(fold(decoded, unspace=False).text, indirect)
                    if len(decoded.split()) < _MIN_HIDDEN_WORDS:
                        # "Hello world!" in base64: a linear model's bias alone decides a
                        # text this short; the rules above judge short payloads
                        hp = min(hp, _SHORT_HIDDEN_CAP)
                    kind = "INVISIBLE_TEXT" if how == "tags" else "ENCODED_PAYLOAD"
                    findings.append(Finding(kind, hs, he, round(hp, 4),
                                            f"classifier p={hp:.3f} on {how}-decoded text"))
        return [f for f in findings if f.score >= self._min_score]


def _number(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"injection option {key!r} must be a number in [0, 1], got {value!r}")
    return float(value)


def make_scanner(options: Mapping[str, Any]) -> Scanner:
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ValueError(f"unknown injection option(s): {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(_OPTIONS))})")
    tier = options.get("tier", "both")
    if tier not in _TIERS:
        raise ValueError(f"injection option 'tier' must be one of {_TIERS}, got {tier!r}")
    scan_hidden = options.get("scan_hidden", True)
    if not isinstance(scan_hidden, bool):
        raise ValueError(f"injection option 'scan_hidden' must be true or false, got "
                         f"{scan_hidden!r}")
    model = None
    if tier != "rules":
        path = options.get("model_path")
        digest = options.get("model_sha256")
        if (path is None) != (digest is None):
            raise ValueError("injection options 'model_path' and 'model_sha256' go together")
        model = (load_model(Path(path), str(digest)) if path is not None
                 else _default_model())
    return InjectionScanner(rules=RuleTier() if tier != "classifier" else None, model=model,
                            min_score=_number(options, "min_score", 0.05),
                            scan_hidden=scan_hidden)


_DEFAULT: list[LinearModel] = []


def _default_model() -> LinearModel:
    """The shipped model, loaded (and its SHA-256 checked) once per process."""
    if not _DEFAULT:
        _DEFAULT.append(load_model(MODEL_PATH, MODEL_SHA256))
    return _DEFAULT[0]


def recommended_threshold() -> float:
    """The shipped classifier's operating point (a calibrated probability)."""
    return _default_model().threshold
