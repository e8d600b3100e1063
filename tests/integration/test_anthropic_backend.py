"""The anthropic backend through a real gateway, driven by the official openai SDK, in
front of a fake Anthropic Messages API on loopback."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from bastion.backends.anthropic import AnthropicBackend
from bastion.config import Settings, load_settings
from bastion.hookspecs import RegisterBackend, hookimpl
from bastion.plugins import plugin_manager
from tests.fakes.anthropic_upstream import DEFAULT_REPLY, INPUT_TOKENS, FakeAnthropic
from tests.gateway_harness import MASTER_KEY, RunningGateway

ANTHROPIC_KEY = "sk-ant-gateway-secret"
KEY_ENV = "BASTION_TEST_ANTHROPIC_KEY"
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class AnthropicPlugin:
    @hookimpl
    def register_backends(self, register: RegisterBackend) -> None:
        register("anthropic", AnthropicBackend)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=ANTHROPIC_KEY).start() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(fake: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    RunningGateway
]:
    os.environ[KEY_ENV] = ANTHROPIC_KEY
    model = {"backend": "anthropic", "base_url": fake.base_url, "api_key_env": KEY_ENV}
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "master_key": MASTER_KEY},
        "models": [
            {"name": "claude", "upstream_model": "claude-up", "read_timeout": 5.0, **model},
            {**model, "name": "claude-badkey", "api_key_env": KEY_ENV + "_WRONG"},
            {**model, "name": "claude-slow", "read_timeout": 0.3},
            {**model, "name": "claude-nowhere", "base_url": f"http://127.0.0.1:{closed_port()}"},
        ],
    }
    if "routing" in Settings.model_fields:
        # these tests provoke upstream failures on purpose: no retries, no circuit breaking
        config["routing"] = {"failure_threshold": 1000, "default": {"retries": 0}}
    os.environ[KEY_ENV + "_WRONG"] = "sk-ant-wrong"
    path: Path = tmp_path_factory.mktemp("anthropic") / "bastion.yaml"
    path.write_text(yaml.safe_dump(config))
    pm = plugin_manager()
    pm.register(AnthropicPlugin())
    gw = RunningGateway(load_settings(path, env={}), pm).start()
    yield gw
    gw.stop()


@pytest.fixture()
def client(gateway: RunningGateway, fake: FakeAnthropic) -> Iterator[openai.OpenAI]:
    fake.reset()
    with openai.OpenAI(
        base_url=gateway.base_url + "/v1", api_key=MASTER_KEY, max_retries=0
    ) as sdk:
        yield sdk


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_non_stream_reply_is_a_chat_completion_with_usage(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    reply = client.chat.completions.create(model="claude", messages=user("hello"))
    assert reply.object == "chat.completion"
    assert reply.model == "claude"
    assert reply.choices[0].message.content == DEFAULT_REPLY
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == INPUT_TOKENS
    assert reply.usage.completion_tokens == len(DEFAULT_REPLY.split())
    sent = fake.requests[-1]
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["body"]["model"] == "claude-up"
    assert sent["body"]["max_tokens"] == 1024


def test_system_prompt_goes_to_the_system_field(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    client.chat.completions.create(
        model="claude",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": "there"},
        ],
        temperature=1.5,
    )
    body = fake.requests[-1]["body"]
    assert body["system"] == "You are terse."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "text", "text": "there"}]}
    ]
    assert body["temperature"] == 1.0


def test_stop_sequences_are_sent_and_cut_the_reply(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    reply = client.chat.completions.create(
        model="claude", messages=user("hi"), stop=["fake"], max_tokens=40
    )
    assert fake.requests[-1]["body"]["stop_sequences"] == ["fake"]
    assert fake.requests[-1]["body"]["max_tokens"] == 40
    assert reply.choices[0].message.content == "Hello from the "
    assert reply.choices[0].finish_reason == "stop"


def test_max_tokens_cut_reports_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="claude", messages=user("hi"), max_tokens=2)
    assert reply.choices[0].message.content == "Hello from"
    assert reply.choices[0].finish_reason == "length"


def test_stream_yields_role_then_deltas_then_finish_without_usage(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    chunks = list(client.chat.completions.create(model="claude", messages=user("hi"),
                                                 stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY
    assert len(chunks) == 2 + len(DEFAULT_REPLY.split())  # role, one per delta, finish
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert fake.requests[-1]["body"]["stream"] is True


def test_stream_with_include_usage_ends_with_a_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="claude", messages=user("hi"), stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == INPUT_TOKENS
    assert last.usage.total_tokens == INPUT_TOKENS + len(DEFAULT_REPLY.split())


def test_tool_call_round_trip(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    messages: list[Any] = user("What's the weather in Paris?")
    reply = client.chat.completions.create(
        model="claude", messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    sent = fake.requests[-1]["body"]
    assert sent["tools"] == [{
        "name": "get_weather", "description": "Current weather for a city",
        "input_schema": WEATHER_TOOL["function"]["parameters"],
    }]
    assert sent["tool_choice"] == {"type": "auto"}
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    follow = client.chat.completions.create(
        model="claude", messages=messages, tools=[WEATHER_TOOL]
    )
    assert follow.choices[0].message.content == DEFAULT_REPLY
    assert fake.requests[-1]["body"]["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": call.id, "name": "get_weather",
             "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]},
    ]


def test_streamed_tool_call_arrives_as_tool_call_deltas(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="claude", messages=user("weather in Paris?"), tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "get_weather"
    arguments = "".join((d.function.arguments or "") if d.function else "" for d in deltas)
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_upstream_429_is_a_rate_limit_error_with_retry_after(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    fake.status, fake.retry_after = 429, "7"
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="claude", messages=user("hi"))
    assert info.value.response.headers["retry-after"] == "7"
    assert "rate_limit_error" in info.value.message


def test_upstream_529_overloaded_is_a_502(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.status = 529
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="claude", messages=user("hi"))
    assert info.value.status_code == 502
    assert "overloaded_error" in info.value.message


def test_upstream_400_passes_through_with_its_message(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    fake.status = 400
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", messages=user("hi"))
    assert "forced error" in info.value.message


def test_gateway_key_rejected_upstream_is_a_502_not_a_401(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="claude-badkey", messages=user("hi"))
    assert info.value.status_code == 502
    assert "rejected the gateway's API key" in info.value.message


def test_upstream_read_timeout_is_a_504(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.delay = 1.0
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="claude-slow", messages=user("hi"))
    assert info.value.status_code == 504


def test_unreachable_upstream_is_a_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="claude-nowhere", messages=user("hi"))
    assert info.value.status_code == 502
    assert "Could not connect" in info.value.message


def test_remote_image_url_is_a_400_before_reaching_upstream(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    part: Any = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": [part]}]
        )
    assert fake.requests == []


def test_connection_dropped_mid_stream_makes_the_sdk_raise(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    fake.drop_mid_stream = True
    stream = client.chat.completions.create(model="claude", messages=user("hi"), stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Hello "


def test_error_event_mid_stream_makes_the_sdk_raise(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    fake.error_mid_stream = True
    stream = client.chat.completions.create(model="claude", messages=user("hi"), stream=True)
    with pytest.raises(openai.APIError, match="Overloaded"):
        for _ in stream:
            pass


def test_gateway_still_serves_after_failed_streams(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="claude", messages=user("hi"))
    assert reply.choices[0].message.content == DEFAULT_REPLY
