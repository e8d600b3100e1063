"""One parser of responses for the trace record and the OTel export."""

from __future__ import annotations

import orjson

from bastion.observe.reply import parse


def sse(*events: dict) -> list[bytes]:
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def test_stream_with_two_choices_and_split_tool_call_arguments() -> None:
    chunks = sse(
        {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hel"}},
                                               {"index": 1, "delta": {"content": "Bon"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}},
                     {"index": 1, "delta": {"tool_calls": [
                         {"index": 0, "id": "t1", "function": {"name": "f", "arguments": "{\"a\""}}]}}]},
        {"choices": [{"index": 1, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ": 1}"}}]}, "finish_reason": "tool_calls"},
                     {"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    )
    reply = parse(None, chunks)
    assert reply.id == "c1" and reply.model == "m" and reply.chat
    assert reply.usage == {"prompt_tokens": 3, "completion_tokens": 4}
    first, second = reply.choices
    assert (first.content, first.finish_reason) == ("Hello", "stop")
    assert second.content == "Bon" and second.finish_reason == "tool_calls"
    assert second.tool_calls == [{"type": "function", "id": "t1",
                                  "function": {"name": "f", "arguments": "{\"a\": 1}"}}]
    assert reply.finish_reasons == ["stop", "tool_calls"]


def test_tool_only_choice_has_no_text() -> None:
    reply = parse(None, sse({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "x", "function": {"name": "g", "arguments": "{}"}}]}}]}))
    assert reply.choices[0].content is None
    assert reply.choices[0].tool_calls[0]["function"]["name"] == "g"


def test_legacy_completion_stream_is_text() -> None:
    reply = parse(None, sse({"choices": [{"index": 0, "text": "a"}]},
                            {"choices": [{"index": 0, "text": "b", "finish_reason": "length"}]}))
    assert not reply.chat
    assert reply.choices[0].content == "ab" and reply.finish_reasons == ["length"]


def test_bodies_chat_embeddings_error_and_garbage() -> None:
    chat = parse(orjson.dumps({"id": "r", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None},
         "finish_reason": "stop"}]}), None)
    assert chat.chat and chat.choices[0].content == "hi" and chat.choices[0].refusal is None
    emb = parse(orjson.dumps({"object": "list", "data": [{"embedding": [0.1] * 5}] * 2}), None)
    assert emb.embeddings == (2, 5) and not emb.choices
    assert parse(orjson.dumps({"error": {"message": "x"}}), None).error
    assert parse(b"not json", None).choices == []
    assert parse(None, [b"data: {broken\n\n", b": comment\n\n"]).choices == []
