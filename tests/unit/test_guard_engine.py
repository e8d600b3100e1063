"""The policy engine: thresholds, kinds, sources, the five actions, policy resolution,
configuration errors; and the vault's pseudonyms and their restoration (streams too)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.config import GuardSettings, load_settings
from bastion.errors import ConfigError
from bastion.guards.base import Finding, ScanContext
from bastion.guards.engine import GuardEngine, strongest
from bastion.guards.vault import StreamRestorer, Vault, restore


class Words:
    """Finds given words; scores from options; records what it was asked."""

    kinds = ("NAME", "CODE")

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.name = "words"
        self.words = dict(options.get("words", {"alice": 0.9, "bob": 0.4, "x42": 0.8}))
        self.seen: list[tuple[str, str]] = []

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        self.seen.append((ctx.source, text))
        out = []
        for word, score in self.words.items():
            for m in re.finditer(re.escape(word), text, re.I):
                out.append(Finding("CODE" if word[0] == "x" else "NAME", m.start(), m.end(), score))
        return out


FACTORIES = {"words": Words}


def engine(policy: dict[str, Any], **guards: Any) -> GuardEngine:
    g = GuardSettings.model_validate({"policies": {"p": policy}, "default": "p", **guards})
    return GuardEngine(g, FACTORIES)


def test_redact_respects_threshold_and_kinds() -> None:
    e = engine({"input": [{"scanner": "words", "action": "redact", "threshold": 0.5}]})
    out = e.scan(e.policy("p"), "input", "alice, bob and X42")
    assert out.text == "[NAME], bob and [CODE]"  # bob scores 0.4 < 0.5
    (d,) = out.decisions
    assert (d.scanner, d.action, d.kinds, d.count, d.score) == ("words", "redact",
                                                                ["CODE", "NAME"], 2, 0.9)
    e = engine({"input": [{"scanner": "words", "action": "redact", "kinds": ["CODE"]}]})
    assert e.scan(e.policy("p"), "input", "alice x42").text == "alice [CODE]"


def test_block_stops_later_rules_flag_and_log_change_nothing() -> None:
    e = engine({"input": [
        {"scanner": "words", "action": "flag", "options": {"words": {"bob": 0.9}}},
        {"scanner": "words", "action": "log", "options": {"words": {"x42": 0.9}}},
        {"scanner": "words", "action": "block", "options": {"words": {"alice": 0.9}}},
        {"scanner": "words", "action": "redact"},
    ]})
    out = e.scan(e.policy("p"), "input", "bob x42 alice", where="messages[0].content")
    assert out.text == "bob x42 alice"
    assert [d.action for d in out.decisions] == ["flag", "log", "block"]
    assert out.blocked is not None and out.blocked.where == "messages[0].content"
    assert strongest(out.decisions) == "block"
    assert e.scan(e.policy("p"), "input", "nothing here").decisions == []


def test_pseudonyms_are_stable_per_session_and_restored() -> None:
    e = engine({"input": [{"scanner": "words", "action": "pseudonymize"}]})
    p = e.policy("p")
    first = e.scan(p, "input", "alice met x42, then Alice left", session="s1")
    assert first.text == "<NAME_1> met <CODE_1>, then <NAME_2> left"  # case differs: new value
    again = e.scan(p, "input", "ask alice", session="s1")
    assert again.text == "ask <NAME_1>"
    other = e.scan(p, "input", "x42 first", session="s2")
    assert other.text == "<CODE_1> first"
    originals = e.vault.originals("s1")
    assert restore("Dear [name_1] and < NAME_2 >, re {CODE_1} (CODE_1)", originals) == (
        "Dear alice and Alice, re x42 (x42)")  # parentheses are the text's own


def test_sources_filter_rules() -> None:
    e = engine({"input": [{"scanner": "words", "action": "redact", "sources": ["tool"]}]})
    p = e.policy("p")
    assert e.scan(p, "input", "alice", source="prompt").text == "alice"
    assert e.scan(p, "input", "alice", source="tool").text == "[NAME]"


def test_resolution_most_specific_attachment_wins() -> None:
    g = GuardSettings.model_validate({
        "policies": {"a": {}, "b": {}, "c": {}},
        "default": "a",
        "attach": {"teams": {"red": "b"}, "models": {"m": "c"}, "routes": {"/v1/embeddings": "none"}},
    })
    e = GuardEngine(g, FACTORIES)
    assert e.resolve(model="x").name == "a"
    assert e.resolve(model="m").name == "c"
    assert e.resolve(team="red", model="m").name == "b"
    assert e.resolve(route="/v1/embeddings") is None


def test_configuration_errors_name_the_rule() -> None:
    with pytest.raises(ConfigError, match=r"guards.policies.p.input\[0\]: no scanner 'nope'"):
        engine({"input": [{"scanner": "nope"}]})

    def bad(options: Mapping[str, Any]) -> Any:
        raise ValueError("option 'x' is not known")

    g = GuardSettings.model_validate({"policies": {"p": {"output": [{"scanner": "bad"}]}}})
    with pytest.raises(ConfigError, match=r"output\[0\].options: option 'x'"):
        GuardEngine(g, {"bad": bad})
    with pytest.raises(ConfigError, match="unknown policy 'q'"):
        load_settings(env={}, overrides={"guards": {"default": "q"}})
    with pytest.raises(ConfigError, match="pseudonymize is for input"):
        load_settings(env={}, overrides={"guards": {"policies": {"p": {
            "output": [{"scanner": "pii", "action": "pseudonymize"}]}}}})


def test_vault_encrypts_expires_and_evicts() -> None:
    v = Vault(ttl=60, max_sessions=2)
    assert v.pseudonym("s", "EMAIL", "a@b.io") == "<EMAIL_1>"
    raw = repr(v._sessions)
    assert "a@b.io" not in raw  # ciphertext and keyed hashes only
    v.pseudonym("t", "EMAIL", "x@y.io")
    v.pseudonym("u", "EMAIL", "z@y.io")  # evicts the oldest session
    assert len(v) == 2 and v.originals("s") == {}
    short = Vault(ttl=0.000001)
    short.pseudonym("s", "X", "1")
    assert short.originals("s") == {}
    with pytest.raises(ValueError, match="32 bytes"):
        Vault(b"short")


ORIGINALS = {"<PERSON_1>": "Ana Lima", "<PERSON_2>": "Bo", "<EMAIL_ADDRESS_1>": "ana@x.io",
             "<PERSON_12>": "Twelve"}
FORMS = st.sampled_from(["<{}>", "[{}]", "({})", "{{{}}}", "< {} >", "{}", "<{}", "{}>"])
NAMES = st.sampled_from(["PERSON_1", "person_2", "Email_Address_1", "PERSON_12"])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.one_of(st.text(alphabet="abc ,.<>[]_1", max_size=6),
                                st.tuples(FORMS, NAMES).map(lambda t: t[0].format(t[1]))),
                      max_size=8),
       cuts=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=40))
def test_stream_restore_equals_whole_text_restore_at_any_chunk_boundary(
        parts: list[str], cuts: list[int]) -> None:
    text = " ".join(parts)
    r = StreamRestorer(ORIGINALS)
    out, i, k = "", 0, 0
    while i < len(text):
        j = i + cuts[k % len(cuts)]
        out += r.feed(text[i:j])
        i, k = j, k + 1
    out += r.flush()
    assert out == restore(text, ORIGINALS)


def test_round_trip_restore_of_pseudonymize_is_identity() -> None:
    e = engine({"input": [{"scanner": "words", "action": "pseudonymize"}]})
    for text in ["alice and bob and x42", "ALICE x42x42 alice", "no findings at all", ""]:
        out = e.scan(e.policy("p"), "input", text, session="rt")
        assert restore(out.text, e.vault.originals("rt")) == text


def test_otel_attributes_carry_the_guard_verdict_not_the_findings() -> None:
    from bastion.context import RequestContext
    from bastion.observe.otel import response_attributes
    from bastion.observe.reply import Reply

    ctx = RequestContext("r", "/v1/chat/completions", 1.0)
    assert not any(k.startswith("bastion.guard") for k in response_attributes(ctx, Reply()))
    ctx.guard_policy, ctx.guard_action = "standard", "pseudonymize"
    ctx.guards = [{"scanner": "pii", "action": "pseudonymize"}, {"scanner": "secrets",
                                                                 "action": "redact"}]
    attrs = response_attributes(ctx, Reply())
    assert attrs["bastion.guard.policy"] == "standard"
    assert attrs["bastion.guard.action"] == "pseudonymize"
    assert attrs["bastion.guard.scanners"] == ["pii", "secrets"]


def test_vault_sessions_are_scoped_by_the_authenticated_key() -> None:
    from bastion.context import RequestContext
    from bastion.guards.stage import vault_session

    a = RequestContext("r1", "/v1/chat/completions", 1.0, session="s", key_id="k1")
    b = RequestContext("r2", "/v1/chat/completions", 1.0, session="s", key_id="k2")
    lone = RequestContext("r3", "/v1/chat/completions", 1.0)
    assert vault_session(a) != vault_session(b)  # same session id, another key
    assert vault_session(a) == vault_session(RequestContext("r4", "/x", 2.0, session="s",
                                                            key_id="k1"))
    assert vault_session(lone) == "request:r3"


def test_a_plugin_scanner_registers_like_the_built_ins_and_can_replace_one() -> None:
    from bastion.hookspecs import hookimpl
    from bastion.plugins import plugin_manager, scanner_factories

    class Plugin:
        @hookimpl
        def register_scanners(self, register: Any) -> None:
            register("words", Words)
            register("secrets", Words)  # replaces the built-in of that name

    pm = plugin_manager(load_entry_points=False)
    builtin = scanner_factories(pm)["secrets"]
    pm.register(Plugin())
    factories = scanner_factories(pm)
    assert factories["words"] is Words and factories["secrets"] is Words
    assert builtin is not Words and "pii" in factories
