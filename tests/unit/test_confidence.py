"""Confidence from token log-probabilities: the numbers against hand-computed ones, the
shapes backends send them in (chat, streamed, legacy completions), and what a trace keeps
in each content mode."""

from __future__ import annotations

import math

import orjson
import pytest

from bastion.context import RequestContext
from bastion.observe.confidence import from_completion, score
from bastion.observe.record import build_record
from bastion.observe.reply import parse


def tok(token: str, logprob: float, *alts: float) -> dict[str, object]:
    tops = [{"token": token, "logprob": logprob}]
    tops += [{"token": f"{token}{i}", "logprob": a} for i, a in enumerate(alts)]
    return {"token": token, "logprob": logprob, "top_logprobs": tops}


def test_the_numbers_are_the_hand_computed_ones() -> None:
    tokens = [tok("a", math.log(0.5), math.log(0.5)), tok("b", math.log(0.25), math.log(0.25))]
    got = score(tokens)
    assert got is not None
    mean = (math.log(0.5) + math.log(0.25)) / 2
    assert got["tokens"] == 2
    assert got["mean_logprob"] == pytest.approx(mean, abs=1e-6)
    assert got["min_prob"] == pytest.approx(0.25, abs=1e-6)
    assert got["perplexity"] == pytest.approx(math.exp(-mean), abs=1e-6)  # 2.828...
    assert got["entropy"] == pytest.approx(math.log(2), abs=1e-6)  # two equal alternatives


def test_a_certain_answer_and_odd_values() -> None:
    sure = score([tok("x", 0.0), tok("y", 0.0)])
    assert sure is not None
    assert sure["perplexity"] == 1.0 and sure["min_prob"] == 1.0 and "entropy" not in sure
    assert score([]) is None and score(None) is None
    junk = [{"logprob": None}, {"logprob": "x"}, {"logprob": True}, {"logprob": float("nan")},
            {"logprob": float("-inf")}, {"logprob": 0.5}, "token", {"token": "z"}]
    assert score(junk) is None  # nothing usable: no number rather than a made-up one
    assert score([*junk, tok("ok", math.log(0.9))])["tokens"] == 1  # type: ignore[index]


def test_legacy_completion_logprobs_take_the_chat_shape() -> None:
    legacy = {"tokens": ["Hel", "lo"], "token_logprobs": [-0.1, -0.2],
              "top_logprobs": [{"Hel": -0.1, "Hi": -2.4}, None]}
    tokens = from_completion(legacy)
    assert [t["token"] for t in tokens] == ["Hel", "lo"]
    assert tokens[0]["top_logprobs"] == [{"token": "Hel", "logprob": -0.1},
                                         {"token": "Hi", "logprob": -2.4}]
    assert tokens[1]["top_logprobs"] == []
    assert from_completion(None) == [] and from_completion({"tokens": "x"}) == []


def chat_body(logprobs: object) -> bytes:
    return orjson.dumps({"object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi there"},
         "logprobs": logprobs, "finish_reason": "stop"}]})


def stream(*pieces: tuple[str, list[dict[str, object]] | None]) -> list[bytes]:
    out = []
    for text, lps in pieces:
        choice = {"index": 0, "delta": {"content": text},
                  "logprobs": None if lps is None else {"content": lps}}
        out.append(b"data: " + orjson.dumps({"model": "m", "choices": [choice]}) + b"\n\n")
    return [*out, b"data: [DONE]\n\n"]


def test_replies_carry_their_tokens_streamed_or_not() -> None:
    tokens = [tok("Hi", -0.1), tok(" there", -0.7)]
    assert parse(chat_body({"content": tokens}), None).choices[0].logprobs == tokens
    assert parse(chat_body(None), None).choices[0].logprobs is None
    streamed = parse(None, stream(("Hi", tokens[:1]), (" there", tokens[1:]), ("", None)))
    assert streamed.choices[0].content == "Hi there"
    assert streamed.choices[0].logprobs == tokens
    legacy = orjson.dumps({"object": "text_completion", "choices": [
        {"index": 0, "text": "Hi", "logprobs": {"tokens": ["Hi"], "token_logprobs": [-0.3]}}]})
    assert parse(legacy, None).choices[0].logprobs == [
        {"token": "Hi", "logprob": -0.3, "top_logprobs": []}]


def context(response: bytes) -> RequestContext:
    c = RequestContext("req-1", "/v1/chat/completions", 100.0)
    c.operation, c.model, c.backend = "chat", "chat", "gpu-a"
    c.body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "logprobs": True}
    c.response_body = response
    c.finished_at = 100.05
    return c


@pytest.mark.parametrize("mode", ["full", "redacted", "metadata"])
def test_a_trace_keeps_the_numbers_in_every_mode_and_the_tokens_in_full_only(mode: str) -> None:
    tokens = [tok("Hi", -0.1), tok(" there", -0.7)]
    record = build_record(context(chat_body({"content": tokens})), mode, 10_000)
    confidence = record["metadata"]["confidence"]
    assert confidence["tokens"] == 2 and confidence["min_prob"] == pytest.approx(math.exp(-0.7))
    if mode == "full":
        assert record["output"]["logprobs"] == [{"token": "Hi", "logprob": -0.1},
                                                {"token": " there", "logprob": -0.7}]
    else:
        assert "logprobs" not in (record["output"] or {})
        assert "there" not in orjson.dumps(record["metadata"]).decode()


def test_a_trace_without_logprobs_has_no_confidence() -> None:
    record = build_record(context(chat_body(None)), "full", 10_000)
    assert "confidence" not in record["metadata"] and "logprobs" not in record["output"]
