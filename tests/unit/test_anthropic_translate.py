"""OpenAI chat ⇄ Anthropic Messages translation, without any network."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bastion.backends.anthropic import AnthropicBackend, error_message
from bastion.backends.anthropic_translate import (
    AnthropicStreamError,
    StreamTranslator,
    to_anthropic_request,
    to_openai_completion,
)
from bastion.config import PluginModel
from bastion.errors import ConfigError, InvalidRequest

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return to_anthropic_request(body, "claude-up", 1024)


# ---------------------------------------------------------------------------- request
def test_system_and_developer_messages_are_joined_into_system() -> None:
    out = translate(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
        ]
    )
    assert out["system"] == "Be brief.\n\nBe kind."
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert out["model"] == "claude-up"


def test_consecutive_same_role_messages_are_merged() -> None:
    out = translate(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": "d"},
        ]
    )
    assert [m["role"] for m in out["messages"]] == ["user", "assistant"]
    assert [b["text"] for b in out["messages"][0]["content"]] == ["a", "b"]
    assert [b["text"] for b in out["messages"][1]["content"]] == ["c", "d"]


def test_tool_calls_and_tool_results_become_tool_use_and_tool_result_blocks() -> None:
    out = translate(
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        ]
    )
    _, assistant, results = out["messages"]
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    }
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
        ],
    }


def test_tool_call_arguments_that_are_not_a_json_object_are_a_400() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1"}}
    with pytest.raises(InvalidRequest, match="arguments"):
        translate(messages=[{"role": "assistant", "content": None, "tool_calls": [call]}])


def test_data_url_images_become_base64_image_blocks() -> None:
    out = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
                ],
            }
        ]
    )
    assert out["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="},
    }


def test_remote_image_urls_are_a_400() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(InvalidRequest, match="data: URLs") as info:
        translate(messages=[{"role": "user", "content": [part]}])
    assert info.value.status == 400


def test_sampling_parameters_are_mapped() -> None:
    out = translate(
        max_tokens=50, temperature=1.7, top_p=0.9, stop="END", user="u-42", stream=True
    )
    assert out["max_tokens"] == 50
    assert out["temperature"] == 1.0  # OpenAI's 0-2 range clamped to Anthropic's 0-1
    assert out["top_p"] == 0.9
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "u-42"}
    assert out["stream"] is True


def test_max_completion_tokens_wins_and_default_applies() -> None:
    assert translate(max_tokens=5, max_completion_tokens=7)["max_tokens"] == 7
    assert translate()["max_tokens"] == 1024
    assert translate(temperature=0.3)["temperature"] == 0.3
    assert translate(stop=["a", "b"])["stop_sequences"] == ["a", "b"]


def test_function_tools_and_tool_choice_are_mapped() -> None:
    out = translate(tools=[WEATHER_TOOL], tool_choice="required")
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert out["tool_choice"] == {"type": "any"}
    assert translate(tools=[WEATHER_TOOL], tool_choice="auto")["tool_choice"] == {"type": "auto"}
    assert translate(tools=[WEATHER_TOOL], tool_choice="none")["tool_choice"] == {"type": "none"}
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert translate(tools=[WEATHER_TOOL], tool_choice=named)["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
    }
    serial = translate(tools=[WEATHER_TOOL], parallel_tool_calls=False)
    assert serial["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0]"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
    ],
)
def test_what_anthropic_cannot_express_is_a_400_naming_the_param(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        translate(**body)
    assert info.value.param == param


# ---------------------------------------------------------------------------- response
def test_text_message_becomes_a_chat_completion() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 5},
    }
    out = to_openai_completion(message, "claude", 123)
    assert out["id"] == "chatcmpl-msg_1"
    assert out["object"] == "chat.completion"
    assert out["model"] == "claude"
    assert out["created"] == 123
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hello there"}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"]["prompt_tokens"] == 15
    assert out["usage"]["completion_tokens"] == 3
    assert out["usage"]["total_tokens"] == 18
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}


def test_tool_use_message_becomes_tool_calls_with_json_string_arguments() -> None:
    message = {
        "id": "msg_2",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    choice = to_openai_completion(message, "claude", 0)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "toolu_1"
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Oslo"}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
     ("tool_use", "tool_calls")],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    message = {"content": [], "stop_reason": stop_reason, "usage": {}}
    assert to_openai_completion(message, "m", 0)["choices"][0]["finish_reason"] == finish


def test_error_envelope_message_is_extracted() -> None:
    raw = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    assert error_message(raw) == "rate_limit_error: slow down"
    assert error_message(b"plain text") == "plain text"


# ---------------------------------------------------------------------------- stream
TEXT_STREAM: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"id": "msg_s", "usage": {"input_tokens": 7,
                                                                     "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
    {"type": "message_stop"},
]


def run(events: list[dict[str, Any]], include_usage: bool) -> tuple[StreamTranslator, list[Any]]:
    translator = StreamTranslator("claude", 1, include_usage)
    return translator, [translator.feed(event) for event in events]


def test_text_stream_becomes_role_content_and_finish_chunks_one_per_delta() -> None:
    translator, per_event = run(TEXT_STREAM, include_usage=False)
    assert [len(chunks) for chunks in per_event] == [1, 0, 0, 1, 1, 0, 1, 0]
    chunks = [c for chunks in per_event for c in chunks]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["id"] == "chatcmpl-msg_s" and c["model"] == "claude" for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hel"},
                      {"content": "lo"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert translator.finished
    assert translator.openai_usage()["prompt_tokens"] == 7
    assert translator.openai_usage()["completion_tokens"] == 2


def test_stream_usage_chunk_is_sent_only_when_asked_for() -> None:
    _, per_event = run(TEXT_STREAM, include_usage=True)
    last = per_event[-1]
    assert len(last) == 1 and last[0]["choices"] == []
    assert last[0]["usage"]["total_tokens"] == 9


def test_tool_use_stream_becomes_tool_call_deltas() -> None:
    events = [
        {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "toolu_9", "name": "get_weather",
                           "input": {}}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": '{"city":'}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": ' "Oslo"}'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
         "usage": {"output_tokens": 8}},
        {"type": "message_stop"},
    ]
    _, per_event = run(events, include_usage=False)
    chunks = [c for chunks in per_event for c in chunks]
    calls = [c["choices"][0]["delta"].get("tool_calls") for c in chunks[1:-1]]
    assert calls[0] == [{"index": 0, "id": "toolu_9", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]
    assert "".join(c[0]["function"]["arguments"] for c in calls[1:]) == '{"city": "Oslo"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_error_event_mid_stream_raises() -> None:
    translator = StreamTranslator("claude", 1, False)
    translator.feed(TEXT_STREAM[0])
    with pytest.raises(AnthropicStreamError, match="overloaded_error: Overloaded"):
        translator.feed(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )


# ---------------------------------------------------------------------------- config
def spec(**extra: Any) -> PluginModel:
    return PluginModel.model_validate({"name": "claude", "backend": "anthropic", **extra})


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"base_url": "ftp://x"}, "base_url"),
        ({"max_tokens_default": 0}, "max_tokens_default"),
        ({"read_timeout": "soon"}, "read_timeout"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"anthropic_version": 2023}, "anthropic_version"),
        ({"api_key_env": "BASTION_TEST_SURELY_UNSET_VARIABLE"}, "api_key_env"),
        ({"max_token_default": 5}, "max_token_default"),
    ],
)
def test_bad_options_are_a_config_error_naming_the_key(extra: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        AnthropicBackend(spec(**extra))


async def test_default_options() -> None:
    backend = AnthropicBackend(spec())
    try:
        assert backend.options.base_url == "https://api.anthropic.com"
        assert backend.options.anthropic_version == "2023-06-01"
        assert backend.options.max_tokens_default == 1024
        assert backend.describe()["meta"] == {"backend": "anthropic",
                                              "upstream": "api.anthropic.com"}
    finally:
        await backend.close()
