"""Redaction for stored traces (content mode ``redacted``): the guards' own detectors.

There is one implementation of "what is a secret, what is personal data": the secrets
scanner (:mod:`bastion.guards.secrets`) and the PII scanner (:mod:`bastion.guards.pii`).
A stored trace goes through both, with every kind they know, so nothing that
``bastion guard scan`` finds is kept verbatim (``password=...``,
``aws_secret_access_key=...``, e-mail addresses, IBANs, names...). Every finding either
scanner reports becomes a typed placeholder such as ``<EMAIL>`` or ``<SECRET>``, so a
stored trace still reads naturally; weak ones too (a bare date, nine digits that pass the
11-proef, scored below the ``standard`` policy's 0.5): a policy decides what to block or
rewrite in a request, storage only what it may keep, and keeps less (``full`` keeps all).

This runs where the trace records are built, in the ingest process, never on the request
path. The NER tier of the PII scanner (names, places, organisations) is its most expensive
part (measured on a 2-vCPU machine, per trace of 1,000 characters: about 13 ms with it,
1.5 ms without, 0.2 ms for the regexes this replaced) and can be turned off with
``tracing.redact_ner``; the pattern tiers and the cue-based names ("my name is ...")
always run.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

from bastion.guards.base import Finding, ScanContext, Scanner, merge_spans

log = logging.getLogger("bastion.observe.redact")

# findings kept: all (the PII scanner's own floor is its min_score, 0.3; secrets' is 0.35)
THRESHOLD = 0.0
# stored placeholders keep their historical names (traces stored before and after read alike)
_LABELS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "IBAN_CODE": "IBAN"}
_CTX = ScanContext()


class StoreRedactor:
    """The secrets and PII scanners over every string of a value; built once per process
    (the NER model loads on first use)."""

    def __init__(self, *, ner: bool = True, threshold: float = THRESHOLD) -> None:
        self.ner = ner
        self.threshold = threshold
        self._scanners: list[Scanner] | None = None
        self._lock = threading.Lock()

    def _build(self, ner: bool) -> list[Scanner]:
        from bastion.guards import pii, secrets

        # every rule and kind (their defaults): what `bastion guard scan` reports
        return [cast(Scanner, secrets.make_scanner({})), pii.make_scanner({"ner": ner})]

    def scanners(self) -> list[Scanner]:
        scanners = self._scanners
        if scanners is None:
            with self._lock:
                if self._scanners is None:
                    self._scanners = self._build(self.ner)
                scanners = self._scanners
        return scanners

    def findings(self, text: str) -> list[Finding]:
        """What gets replaced in ``text``: both scanners' findings (at the threshold), where
        two overlap the stronger one (then the longer)."""
        found: list[Finding] = []
        for scanner in self.scanners():
            try:
                found.extend(f for f in scanner.scan(text, _CTX) if f.score >= self.threshold)
            except Exception:
                if not self._without_ner(scanner):
                    raise
                return self.findings(text)
        return merge_spans(found)

    def _without_ner(self, failed: Scanner) -> bool:
        """The NER model cannot run (not installed, a file that fails its checksum): keep
        redacting with the pattern tiers rather than lose the trace's content, and say so
        once."""
        if not self.ner or failed.name != "pii":
            return False
        log.warning("trace redaction: the NER model failed; redacting without it "
                    "(names are then found by their cues only)", exc_info=True)
        with self._lock:
            self.ner = False
            self._scanners = self._build(False)
        return True

    def text(self, text: str) -> str:
        if len(text) < 4:
            return text
        found = self.findings(text)
        if not found:
            return text
        out: list[str] = []
        at = 0
        for f in found:
            out.append(text[at : f.start])
            out.append(f"<{_LABELS.get(f.kind, f.kind)}>")
            at = f.end
        out.append(text[at:])
        return "".join(out)

    def value(self, value: Any) -> Any:
        """Redacts every string inside a JSON-like value (message lists, tool calls...)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value


# Without the NER model until configured: the gateway process itself (the OpenTelemetry
# export's content attributes) never loads it or runs it beside the event loop; the ingest
# process sets it from ``tracing.redact_ner``.
_default = StoreRedactor(ner=False)


def configure(*, ner: bool) -> None:
    """Sets this process's redaction (the ingest calls it with ``tracing.redact_ner``)."""
    global _default
    if ner != _default.ner:
        _default = StoreRedactor(ner=ner)


def redactor() -> StoreRedactor:
    return _default


def redact_text(text: str) -> str:
    return _default.text(text)


def redact_value(value: Any) -> Any:
    """Redacts every string inside a JSON-like value (message lists, tool calls...)."""
    return _default.value(value)
