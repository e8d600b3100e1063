"""Output checks: toxicity, banned topics, banned substrings, canary and system-prompt
leakage, JSON-schema validation; each with its hard negatives and option validation."""

from __future__ import annotations

import json
import random
import string
import time

import pytest

from bastion.guards.base import ScanContext
from bastion.guards.builtin import BUILTIN_SCANNERS, _lazy
from bastion.guards.output import canary, schema, substrings, topics, toxicity
from bastion.guards.output._text import fold, trie_pattern

CTX = ScanContext(stage="output", source="completion")


def top(findings) -> float:  # type: ignore[no-untyped-def]
    return max((f.score for f in findings), default=0.0)


def test_registered_under_their_names() -> None:
    options = {"toxicity": {}, "banned_topics": {"topics": ["politics"]},
               "banned_substrings": {"substrings": ["x"]}, "canary": {}, "json_schema": {}}
    for name, opts in options.items():
        scanner = _lazy(BUILTIN_SCANNERS[name])(opts)
        assert scanner.name == name and scanner.kinds


# ----------------------------------------------------------------------- helpers

def test_fold_keeps_offsets_even_when_characters_expand() -> None:
    assert fold("Élan CAFÉ") == ("elan cafe", None)
    folded, offsets = fold("Straße X")
    assert folded == "strasse x" and offsets is not None
    assert offsets[folded.index("x")] == "Straße X".index("X")


def test_trie_pattern_matches_longest_first() -> None:
    import re

    pattern = re.compile(trie_pattern(["foo", "foobar", "fox", "a.b"]))
    assert [m.group(0) for m in pattern.finditer("foobar fox foo a.b axb")] == [
        "foobar", "fox", "foo", "a.b"]


# ---------------------------------------------------------------------- toxicity

@pytest.fixture(scope="module")
def tox() -> toxicity.ToxicityScanner:
    return toxicity.make_scanner({})


TOXIC = {
    "You are a fucking idiot.": "insult",
    "you idiot": "insult",
    "I'll kill you if you come back here": "threat",
    "I'm going to stab him tomorrow": "threat",
    "go kill yourself": "self_harm",
    "kys": "self_harm",
    "Immigrants are vermin and should be exterminated": "hate",
    "send nudes now": "sexual",
    "Du bist so ein Arschloch": "insult",
    "Ich bringe dich um": "threat",
    "Va te faire foutre, connard": "insult",
    "hijo de puta": "insult",
    "Vaffanculo, stronzo": "insult",
    "Je bent een klootzak": "insult",
}
OBFUSCATED = ["f u c k you", "f*ck you", "you're such a b!tch", "k1ll yourself",
              "piece of sh!t", "FUUUUCK YOU", "you m0r0n", "a**hole"]
BENIGN = [
    "Kill the process and restart the server.", "Let's shoot a photo at sunset.",
    "The function returns null.", "Blood test results are in.", "Scunthorpe United won.",
    "Assess the class hierarchy.", "The cancer research team at the hospital.",
    "This bug is killing me.", "A cocktail party on Friday.", "Please execute the script.",
    "The attack surface of the API is small.", "Hit the button to shoot the email off.",
    "Suicide prevention hotline: call 988.", "He graduated summa cum laude.",
    "Mein Kind ist krank.", "The peacock spread its tail.", "Cut the cake into six pieces.",
    "We need to kill two birds with one stone.", "Dutch: de kat zit op de mat.",
]


@pytest.mark.parametrize("text", sorted(TOXIC))
def test_toxic_texts_score_high_with_their_category(tox, text: str) -> None:  # type: ignore[no-untyped-def]
    findings = tox.scan(text, CTX)
    assert top(findings) >= 0.5, text
    best = max(findings, key=lambda f: f.score)
    assert best.kind == "TOXICITY" and best.detail == TOXIC[text]


@pytest.mark.parametrize("text", OBFUSCATED)
def test_obfuscated_toxicity(tox, text: str) -> None:  # type: ignore[no-untyped-def]
    assert top(tox.scan(text, CTX)) >= 0.5, text


@pytest.mark.parametrize("text", BENIGN)
def test_benign_uses_stay_low(tox, text: str) -> None:  # type: ignore[no-untyped-def]
    assert top(tox.scan(text, CTX)) < 0.5, text


def test_evidence_adds_up_and_targets_count(tox) -> None:  # type: ignore[no-untyped-def]
    # one strong profanity just passes 0.5; a mild one, or one mild insult, does not
    assert 0.5 <= top(tox.scan("this is fucking great", CTX)) < 0.6
    assert top(tox.scan("what the hell", CTX)) < 0.5
    assert top(tox.scan("this sucks", CTX)) < 0.5
    assert top(tox.scan("stupid bug", CTX)) < top(tox.scan("you are stupid", CTX))
    assert top(tox.scan("idiot", CTX)) < top(tox.scan("you fucking idiot", CTX))


def test_spans_point_at_the_terms_in_the_original_text(tox) -> None:  # type: ignore[no-untyped-def]
    text = "Ärger: Du bist so ein ARSCHLOCH, ehrlich."
    (f,) = [f for f in tox.scan(text, CTX) if f.detail == "insult"]
    assert text[f.start : f.end] == "ARSCHLOCH"
    text = "well f u c k you"
    assert {text[f.start : f.end] for f in tox.scan(text, CTX)} == {"f u c k you"}


def test_toxicity_options() -> None:
    only = toxicity.make_scanner({"categories": ["threat"]})
    assert only.scan("you idiot", CTX) == []
    assert top(only.scan("I will kill you", CTX)) >= 0.5
    custom = toxicity.make_scanner({"extra_terms": {"insult": ["glorbnik"]}})
    assert top(custom.scan("you glorbnik", CTX)) >= 0.5
    for bad in ({"categories": ["nope"]}, {"categories": "insult"}, {"nope": 1},
                {"extra_terms": {"insult": "x"}}, {"extra_terms": {"nope": ["x"]}}):
        with pytest.raises(ValueError, match="toxicity"):
            toxicity.make_scanner(bad)


# ---------------------------------------------------------------------- topics

def test_builtin_topics_score_by_evidence() -> None:
    scanner = topics.make_scanner({"topics": ["politics", "medical_advice", "legal_advice",
                                              "finance_advice", "weapons", "violence"]})
    strong = {
        "Who should I vote for in the election, the Democrats or the Republicans?": "politics",
        "You should take 400 mg of ibuprofen every 6 hours for the fever.": "medical_advice",
        "You should sue your landlord; consult a lawyer about the eviction.": "legal_advice",
        "Buy the dip: invest your savings in bitcoin and index funds.": "finance_advice",
        "How do I build a bomb with gunpowder and a detonator?": "weapons",
        "Il faut consulter un médecin: la maladie et les médicaments.": "medical_advice",
    }
    for text, topic in strong.items():
        findings = scanner.scan(text, CTX)
        assert findings and max(findings, key=lambda f: f.score).detail == topic, text
        assert top(findings) >= 0.5, text
    for text in ("The court building is on Main Street.", "Kill the process and restart.",
                 "Turn left, then right at the bank.", "Convert to PDF; it takes 2 minutes.",
                 "Shoot a photo of the sunset.", "Our policy team ships on Friday."):
        assert top(scanner.scan(text, CTX)) < 0.5, text


def test_custom_topics_are_case_and_accent_insensitive_on_word_boundaries() -> None:
    scanner = topics.make_scanner({"topics": {"competitors": ["Globex", "initech*", "café noir"]}})
    text = "We beat GLOBEX and Initech's pricing at the Cafe Noir."
    findings = scanner.scan(text, CTX)
    assert [text[f.start : f.end] for f in findings] == ["GLOBEX", "Initech", "Cafe Noir"]
    assert all(f.kind == "BANNED_TOPIC" and f.detail == "competitors" for f in findings)
    assert findings[0].score > 0.85  # three distinct keywords: 1 - exp(-2.1)
    assert scanner.scan("globexes are not a word; neither is xglobex", CTX) == []
    single = topics.make_scanner({"topics": {"c": ["globex"]}}).scan("globex", CTX)
    assert single[0].score == pytest.approx(0.503, abs=0.01)


def test_topics_options() -> None:
    assert topics.make_scanner({"topics": {"politics": []}})  # empty: the built-in set
    for bad in ({}, {"topics": []}, {"topics": ["astrology"]}, {"topics": {"x": "y"}},
                {"topics": {"x": [""]}}, {"topics": ["politics"], "extra": 1}):
        with pytest.raises(ValueError, match="banned_topics"):
            topics.make_scanner(bad)


# ------------------------------------------------------------------- substrings

def test_substrings_case_accents_and_whole_words() -> None:
    scanner = substrings.make_scanner({"substrings": ["Acme Corp", "café", "art"]})
    text = "ACME corp sells Cafe at the start"
    found = [(f.detail, text[f.start : f.end]) for f in scanner.scan(text, CTX)]
    assert found == [("substring #0", "ACME corp"), ("substring #1", "Cafe"),
                     ("substring #2", "art")]
    whole = substrings.make_scanner({"substrings": ["art"], "whole_words": True})
    assert whole.scan("the start", CTX) == [] and len(whole.scan("modern art.", CTX)) == 1
    exact = substrings.make_scanner({"substrings": ["Acme"], "case_sensitive": True})
    assert exact.scan("acme", CTX) == [] and len(exact.scan("Acme", CTX)) == 1


def test_substrings_stay_fast_with_hundreds_of_entries() -> None:
    rng = random.Random(3)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 12)))
             for _ in range(500)]
    scanner = substrings.make_scanner({"substrings": words, "whole_words": True})
    text = " ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
                    for _ in range(400))[:2000] + " " + words[123]
    assert [f.detail for f in scanner.scan(text, CTX)][-1] == "substring #123"
    t0 = time.perf_counter()
    for _ in range(20):
        scanner.scan(text, CTX)
    assert (time.perf_counter() - t0) / 20 < 0.002


def test_substrings_options() -> None:
    for bad in ({}, {"substrings": []}, {"substrings": "x"}, {"substrings": [""]},
                {"substrings": ["x"], "whole_words": "yes"}, {"substrings": ["x"], "y": 1}):
        with pytest.raises(ValueError, match="banned_substrings"):
            substrings.make_scanner(bad)


# ------------------------------------------------------------------------ canary

SYSTEM = ("You are Bob, the support assistant of Acme. Never reveal the discount code to "
          "anyone, and answer only questions about our products and orders, politely.")


def test_new_canary_is_random_and_plant_does_not_touch_the_input() -> None:
    a, b = canary.new_canary(), canary.new_canary()
    assert a != b and a.startswith("bst-") and len(a) == 20
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"}]
    planted = canary.plant(messages, a)
    assert messages[0]["content"] == SYSTEM and planted[1] is messages[1]
    assert planted[0]["content"] == f"<!-- {a} -->\n{SYSTEM}"
    parts = canary.plant([{"role": "developer", "content": [{"type": "text", "text": "x"}]}], a)
    assert a in parts[0]["content"][0]["text"] and parts[0]["content"][1]["text"] == "x"
    assert canary.plant([{"role": "user", "content": "hi"}], a) == [
        {"role": "user", "content": "hi"}]


def test_canary_found_exact_and_reformatted() -> None:
    token = canary.new_canary()
    scanner = canary.make_scanner({})
    ctx = ScanContext(stage="output", values={"canary": token})
    for text in (f"Sure: <!-- {token} --> You are Bob", f"it says {token.upper()}",
                 f"the marker is {' '.join(token)}", f"code {token[4:]}",
                 f"{token[:10]}\n{token[10:]}"):
        (f,) = scanner.scan(text, ctx)
        assert f.kind == "CANARY_LEAK" and f.score == 1.0 and token not in f.detail
        assert "".join(c for c in text[f.start : f.end] if c.isalnum()).lower().endswith(
            token[4:])
    assert scanner.scan("Hello! How can I help with your order?", ctx) == []
    assert scanner.scan(f"other token {canary.new_canary()}", ctx) == []


def test_system_prompt_leak_by_verbatim_run() -> None:
    scanner = canary.make_scanner({})
    ctx = ScanContext(stage="output", values={"system_prompt": SYSTEM})
    (f,) = scanner.scan(f"My instructions: {SYSTEM}", ctx)
    assert f.kind == "SYSTEM_PROMPT_LEAK" and f.score == 1.0
    partial = "Sure. I answer only questions about our products and orders, politely, as asked."
    assert scanner.scan(partial, ctx) == []  # 10 words in common: under min_words
    leak = "ok: never reveal the discount code to anyone, and answer only questions about x"
    (g,) = scanner.scan(leak, ctx)
    assert 0.6 <= g.score < 1.0 and leak[g.start : g.end].startswith("never")
    short = ScanContext(values={"system_prompt": "You are a helpful assistant."})
    assert scanner.scan("You are a helpful assistant.", short) == []


def test_canary_options() -> None:
    assert canary.make_scanner({"min_words": 20, "system_prompt": False})
    for bad in ({"min_words": 3}, {"min_words": "12"}, {"system_prompt": "no"}, {"x": 1}):
        with pytest.raises(ValueError, match="canary"):
            canary.make_scanner(bad)


# ------------------------------------------------------------------- json schema

ORDER = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
        "status": {"enum": ["open", "closed"]},
    },
    "required": ["name", "items"],
    "additionalProperties": False,
    "$defs": {"item": {"type": "object", "properties": {"price": {"type": "number"}},
                       "required": ["price"]}},
}


def test_schema_violations_say_where_and_what_without_values() -> None:
    scanner = schema.make_scanner({"schema": ORDER})
    cases = {
        '{"name": "x", "items": [{"price": 1}, {"price": "s3cr3t"}]}':
            "$.items[1].price: must be number",
        '{"items": []}': "$: must contain ['name'] properties",
        '{"name": "x", "items": [], "leaky_key": 1}': "$: has properties the schema does not allow",
        '{"name": "x", "items": [], "status": "zzz"}': "$.status: must be one of ['open', 'closed']",
        "Here you go: {}": "not valid JSON: Expecting value at line 1 column 1",
    }
    for text, detail in cases.items():
        (f,) = scanner.scan(text, CTX)
        assert (f.kind, f.detail, f.start, f.end) == ("SCHEMA_VIOLATION", detail, 0, len(text))
        assert "s3cr3t" not in f.detail and "leaky" not in f.detail
    assert scanner.scan('```json\n{"name": "x", "items": [{"price": 2.5}]}\n```', CTX) == []
    assert scanner.scan('{"name": "x", "items": []}', CTX) == []


def test_schema_from_the_request_and_validator_cache() -> None:
    scanner = schema.make_scanner({})
    assert scanner.scan("not json", CTX) == []  # no schema: nothing to check
    forms = [{"type": "json_schema", "json_schema": {"name": "o", "strict": True, "schema": ORDER}},
             {"name": "o", "schema": ORDER}, ORDER]
    for form in forms:
        ctx = ScanContext(stage="output", values={"json_schema": form})
        assert [f.detail for f in scanner.scan('{"name": 1, "items": []}', ctx)] == [
            "$.name: must be string"]
    assert len(scanner._validators._cache) == 1  # one schema, compiled once


def test_untrusted_schema_references_are_not_followed() -> None:
    scanner = schema.make_scanner({})
    for bad in ({"$ref": "http://169.254.169.254/latest/meta-data"},
                {"$ref": "file:///etc/passwd"}, {"$id": "https://evil.example/s", "type": "object"}):
        assert scanner.scan("{}", ScanContext(values={"json_schema": bad})) == []
    with pytest.raises(ValueError, match="only local references"):
        schema.make_scanner({"schema": {"$ref": "https://example.com/s.json"}})


def test_reask_message() -> None:
    message = schema.reask_message("$.name: must be string")
    assert message["role"] == "user" and "$.name: must be string" in message["content"]
    assert json.dumps(message)


def test_schema_options() -> None:
    for bad in ({"schema": "x"}, {"schema": {"type": "nope"}}, {"x": 1}):
        with pytest.raises(ValueError, match="json_schema"):
            schema.make_scanner(bad)
