"""Trace records from finished requests: output reassembly, content modes, cost, timings."""

from __future__ import annotations

import orjson
import pytest

from bastion.config import load_settings
from bastion.context import RequestContext, Span
from bastion.observe.pricing import PriceBook
from bastion.observe.record import build_record
from bastion.observe.redact import redact_text
from bastion.routing.fairqueue import Claim

EMAIL = "jane.doe@example.com"


def ctx(**extra: object) -> RequestContext:
    c = RequestContext("req-1", "/v1/chat/completions", 100.0)
    c.operation = "chat"
    c.model, c.backend, c.provider = "chat", "gpu-a", "openai"
    c.body = {"model": "chat", "messages": [{"role": "user", "content": f"mail {EMAIL}"}],
              "temperature": 0.2, "max_tokens": 32, "tools": [{"type": "function"}],
              "metadata": {"team_note": "x"}}
    c.backend_started_at, c.backend_done_at, c.finished_at = 100.001, 100.051, 100.052
    c.claim = Claim(priority=2, tenant="support")
    for key, value in extra.items():
        setattr(c, key, value)
    return c


def completion(content: str = f"write to {EMAIL}") -> bytes:
    return orjson.dumps({
        "id": "x", "object": "chat.completion", "model": "llama-3.1-8b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 200,
                  "prompt_tokens_details": {"cached_tokens": 400}},
    })


def test_non_streamed_chat_record_full_mode() -> None:
    c = ctx(response_body=completion())
    c.spans.append(Span("backend", 100.001, 100.051, {"deployment": "gpu-a", "status": 200}))
    r = build_record(c, "full", 10_000)
    assert r["id"] == "req-1" and r["operation"] == "chat" and r["provider"] == "openai"
    assert (r["input_tokens"], r["output_tokens"], r["cached_tokens"]) == (1000, 200, 400)
    assert r["finish_reason"] == "stop" and r["model_version"] == "llama-3.1-8b"
    assert r["latency_ms"] == pytest.approx(52.0, abs=0.01)
    assert r["overhead_ms"] == pytest.approx(2.0, abs=0.01)
    assert r["ttft_ms"] is None, "time to first token is for streams"
    assert r["params"] == {"temperature": 0.2, "max_tokens": 32, "tools": 1}
    assert r["input"][0]["content"] == f"mail {EMAIL}"
    assert r["output"] == {"role": "assistant", "content": f"write to {EMAIL}"}
    assert (r["tenant"], r["priority"]) == ("support", 2)
    assert r["spans"] == [{"name": "backend", "start_ms": 1.0, "duration_ms": 50.0,
                           "attrs": {"deployment": "gpu-a", "status": 200}}]
    assert r["metadata"] == {"team_note": "x"}


def test_redacted_and_metadata_modes() -> None:
    redacted = build_record(ctx(response_body=completion()), "redacted", 10_000)
    assert EMAIL not in orjson.dumps(redacted).decode()
    assert redacted["input"][0]["content"] == "mail <EMAIL>"
    assert redacted["output"]["content"] == "write to <EMAIL>"
    bare = build_record(ctx(response_body=completion()), "metadata", 10_000)
    assert bare["input"] is None and bare["output"] is None
    assert bare["output_tokens"] == 200 and bare["content_mode"] == "metadata"


def test_long_text_is_truncated() -> None:
    r = build_record(ctx(response_body=completion("y" * 100)), "full", 10)
    assert r["output"]["content"] == "y" * 10 + "…[truncated]"


def test_stream_is_reassembled_with_tool_calls_and_timings() -> None:
    events = [
        {"model": "m1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "function": {"name": "get", "arguments": "{\"a\""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ": 1}"}}]}, "finish_reason": "tool_calls"}]},
    ]
    chunks = [b"data: " + orjson.dumps(e) + b"\n\n" for e in events]
    chunks[1] += b"data: {broken\n\n"  # a malformed frame is skipped, not fatal
    chunks.append(b"data: [DONE]\n\n")
    c = ctx(stream=True, chunks=chunks, response_body=None, first_token_at=100.010,
            last_token_at=100.050, usage={"prompt_tokens": 5, "completion_tokens": 5})
    r = build_record(c, "full", 10_000)
    assert r["output"]["content"] == "Hello"
    assert r["output"]["tool_calls"] == [
        {"type": "function", "id": "call_1", "function": {"name": "get", "arguments": "{\"a\": 1}"}}
    ]
    assert r["finish_reason"] == "tool_calls" and r["model_version"] == "m1"
    assert r["ttft_ms"] == pytest.approx(10.0, abs=0.01)
    assert r["tpot_ms"] == pytest.approx(10.0, abs=0.01), "40 ms over 4 tokens after the first"


def test_legacy_completion_stream_and_embeddings() -> None:
    c = ctx(operation="text_completion", stream=True, response_body=None, chunks=[
        b'data: {"choices":[{"text":"ab","index":0}]}\n\ndata: {"choices":[{"text":"c","index":0,"finish_reason":"length"}]}\n\n'])
    c.body = {"model": "m", "prompt": "say abc"}
    r = build_record(c, "full", 100)
    assert (r["input"], r["output"], r["finish_reason"]) == ("say abc", "abc", "length")
    e = ctx(operation="embeddings", response_body=orjson.dumps(
        {"object": "list", "data": [{"embedding": [0.1, 0.2, 0.3]}] * 2,
         "usage": {"prompt_tokens": 4, "total_tokens": 4}}))
    e.body = {"model": "minilm", "input": ["a", "b"]}
    r = build_record(e, "full", 100)
    assert r["output"] == {"embeddings": 2, "dimensions": 3} and r["input"] == ["a", "b"]
    assert r["input_tokens"] == 4


def test_cost_from_the_price_table_and_its_version() -> None:
    settings = load_settings(env={}, overrides={"models": [
        {"name": "gpu-a", "backend": "openai", "base_url": "http://127.0.0.1:1/v1",
         "pricing": {"input": 2.5, "output": 10.0, "cached": 1.25}},
        {"name": "local", "backend": "openai", "base_url": "http://127.0.0.1:1/v1",
         "pricing": {"per_hour": 3.6}},
        {"name": "flat", "backend": "openai", "base_url": "http://127.0.0.1:1/v1", "price": 1.0},
    ]})
    book = PriceBook.from_settings(settings)
    r = build_record(ctx(response_body=completion()), "metadata", 100, book)
    # 600 fresh input x 2.5 + 400 cached x 1.25 + 200 output x 10, per 1M tokens
    assert r["cost"] == pytest.approx((600 * 2.5 + 400 * 1.25 + 200 * 10.0) / 1e6)
    assert r["metadata"]["price_version"] == book.version
    assert book.cost("local", 0, 0, 0, 10.0) == pytest.approx(0.01), "3.6 $/h for 10 s"
    assert book.cost("flat", 1_000_000, 1_000_000, 0, 0) == pytest.approx(2.0)
    assert book.cost("unpriced", 10, 10, 0, 1) is None
    changed = PriceBook.from_settings(load_settings(env={}, overrides={"models": [
        {"name": "gpu-a", "backend": "openai", "base_url": "http://127.0.0.1:1/v1",
         "pricing": {"input": 3.0, "output": 10.0}}]}))
    assert changed.version != book.version


def test_client_request_id_is_kept_beside_our_trace_id() -> None:
    c = ctx(response_body=completion(), record_id="ours-1")
    r = build_record(c, "metadata", 100)
    assert r["id"] == "ours-1" and r["metadata"]["client_request_id"] == "req-1"


@pytest.mark.parametrize(("text", "expected"), [
    ("card 4111 1111 1111 1111 ok", "card <CREDIT_CARD> ok"),
    ("not a card 4111 1111 1111 1112", "not a card 4111 1111 1111 1112"),
    ("iban GB82 WEST 1234 5698 7654 32", "iban <IBAN>"),
    # the guards' detectors (bastion.observe.redact): example values such as 123-45-6789
    # or sk-proj-abcdefghijklmnop1234 are not reported, and a Bearer keeps its scheme
    ("ssn 536-22-1987", "ssn <US_SSN>"),
    ("key sk-proj-Q7x2Lm9PzR4tK8vW1nB6yH3jD5fG0sAe", "key <SECRET>"),
    ("the header is Authorization: Bearer Xk9mQ2vL7pR4tZ8wN1bC6yH3",
     "the header is Authorization: Bearer <SECRET>"),
    ("call +1 415 555 0123 now", "call <PHONE> now"),
    ("from 10.1.2.3", "from <IP_ADDRESS>"),
    ("the year 2026 and 3.14", "the year 2026 and 3.14"),
])
def test_builtin_redaction(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize("text", ["(415) 555-0123", "415-555-0123", "+44 20 7946 0958", "+33 1 23 45 67 89"])
def test_phone_numbers_are_redacted(text: str) -> None:
    assert redact_text(f"ring {text} please") == "ring <PHONE> please"


def test_stage_marks_become_spans_in_time_order() -> None:
    c = RequestContext("r", "/v1/chat/completions", 100.0)
    c.authenticated_at, c.admitted_at, c.parsed_at = 100.0001, 100.0002, 100.0005
    c.spans.append(Span("backend", 100.001, 100.051, {"deployment": "d", "status": 200}))
    c.spans.append(Span("queue", 100.0006, 100.001, {}))
    r = build_record(c, "metadata", 100)
    assert [s["name"] for s in r["spans"]] == ["auth", "admission", "parse", "queue", "backend"]
    assert r["spans"][2] == {"name": "parse", "start_ms": 0.2, "duration_ms": 0.3}


def test_the_record_has_exactly_the_schemas_fields_in_order() -> None:
    """One table of trace fields (bastion.store.schema.RECORD_FIELDS): the record built
    from a request has those keys, in that order, and nothing else."""
    from bastion.store.schema import RECORD_KEYS

    record = build_record(ctx(response_body=completion()), "full", 10_000)
    assert tuple(record) == RECORD_KEYS
