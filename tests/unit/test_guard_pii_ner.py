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
    text = "The weather is nice today. Please call Maria Rossi. It works."
    spans = finder.chunks(text)
    assert [text[a:b].strip() for a, b in spans] == ["Please call Maria Rossi."]
    assert ner.NerFinder(prefilter=False).chunks(text)[0][0] == 0
    # text with no capitals at all keeps its names in lower case: it is sent
    assert finder.chunks("call maria rossi tomorrow") == [(0, 25)]


def test_offsets_map_back_into_long_text() -> None:
    filler = "nothing to see here, just words. " * 40
    text = filler + "Then Barack Obama spoke." + filler
    got = [f for f in make_scanner({}).scan(text, ScanContext()) if f.kind == "PERSON"]
    assert [text[f.start:f.end] for f in got] == ["Barack Obama"]


def spans(text: str, kind: str) -> list[str]:
    return [text[f.start:f.end] for f in make_scanner({}).scan(text, ScanContext())
            if f.kind == kind and f.score >= 0.5]


def test_a_found_name_is_found_again() -> None:
    text = "The film was directed by Bryan Maclean and starring Maclean himself."
    assert "Maclean" in spans(text, "PERSON")[-1]


def test_lists_with_a_name_are_names() -> None:
    text = "They had six children: Hleb, Sheila, Donna, Sherry, Donald and Shane."
    assert {"Hleb", "Shane"} <= set(spans(text, "PERSON"))


def test_address_block_lines_and_addressee() -> None:
    text = "Maureen Thibault\n\n41086 Kiannonkatu 98\n Suite 464\n OULU\n\n Finland 80896"
    assert spans(text, "PERSON") == ["Maureen Thibault"]
    streets = spans(text, "STREET_ADDRESS")
    assert "41086 Kiannonkatu 98" in streets and "OULU" in streets
    assert not spans("Hauptstraße 5\nthanks for your help", "STREET_ADDRESS")[1:]


def test_place_and_organisation_cues() -> None:
    assert "RYSSBY" in spans("Ms. Austin flew to RYSSBY on Sunday morning.", "LOCATION")
    assert spans("I work for Acme Widgets Ltd in town", "ORGANIZATION") == ["Acme Widgets Ltd"]


def test_cache_gives_the_same_findings() -> None:
    text = "Ada Lovelace wrote to Charles Babbage from London."
    cold = make_scanner({"ner_cache": False}).scan(text, ScanContext())
    warm = make_scanner({}).scan(text, ScanContext())
    assert cold == warm == make_scanner({}).scan(text, ScanContext())
    with pytest.raises(ValueError, match="ner_cache"):
        make_scanner({"ner_cache": 1})


def test_ner_max_chars_caps_what_the_model_reads() -> None:
    text = "Barack Obama spoke. " + "nothing here at all. " * 20 + "Then Angela Merkel did."
    got = {text[f.start:f.end] for f in make_scanner({"ner_max_chars": 100}).scan(
        text, ScanContext()) if f.kind == "PERSON"}
    assert "Barack Obama" in got and "Angela Merkel" not in got
    with pytest.raises(ValueError, match="ner_max_chars"):
        make_scanner({"ner_max_chars": -1})


def test_prefilter_skips_code_and_tech_acronyms() -> None:
    finder = ner.NerFinder()
    assert finder.chunks("The API returns JSON over HTTP. Call getUserName(user_id) first.") == []
    assert finder.chunks("The API was written by Grace Hopper.") != []
