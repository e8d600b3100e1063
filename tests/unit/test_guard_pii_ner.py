"""The PII scanner's NER tier: the packaged spaCy model is checked by SHA-256 and loaded
once, and finds a person, an organisation and a place in an English sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.guards.base import ScanContext
from bastion.guards.pii import make_scanner, ner


def test_finds_person_organisation_and_location() -> None:
    text = "Yesterday Angela Merkel met the board of Siemens in Munich."
    got = {(f.kind, text[f.start:f.end]) for f in make_scanner({}).scan(text, ScanContext())}
    assert ("PERSON", "Angela Merkel") in got
    assert ("ORGANIZATION", "Siemens") in got
    assert ("LOCATION", "Munich") in got


def test_ner_false_reports_no_names() -> None:
    text = "Yesterday Angela Merkel met the board of Siemens in Munich."
    assert make_scanner({"ner": False}).scan(text, ScanContext()) == []


def test_model_loaded_once_per_process_with_only_ner() -> None:
    first = ner.load(ner.DEFAULT_MODEL)
    assert ner.load(ner.DEFAULT_MODEL) is first
    assert first.pipe_names == ["ner"]


def test_tampered_model_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    folder, hashes = ner.MODELS[ner.DEFAULT_MODEL]
    forged = dict(hashes, **{"ner/model": "0" * 64})
    monkeypatch.setitem(ner.MODELS, ner.DEFAULT_MODEL, (folder, forged))
    with pytest.raises(ner.ModelIntegrityError, match="ner/model"):
        ner.verify(ner.DEFAULT_MODEL)


def test_verify_returns_the_model_folder() -> None:
    root = ner.verify(ner.DEFAULT_MODEL)
    assert isinstance(root, Path) and (root / "ner" / "model").is_file()


def test_prefilter_skips_sentences_without_capitalised_words() -> None:
    finder = ner.NerFinder()
    text = "the weather is nice today. Please call Maria Rossi. It works."
    spans = finder.chunks(text)
    assert [text[a:b].strip() for a, b in spans] == ["Please call Maria Rossi."]
    assert ner.NerFinder(prefilter=False).chunks(text)[0][0] == 0


def test_offsets_map_back_into_long_text() -> None:
    filler = "nothing to see here, just words. " * 40
    text = filler + "Then Barack Obama spoke." + filler
    got = [f for f in make_scanner({}).scan(text, ScanContext()) if f.kind == "PERSON"]
    assert [text[f.start:f.end] for f in got] == ["Barack Obama"]
