"""Tool calls pass through the gateway intact: the request's tools and tool history, the
reply's ``tool_calls`` (whole and as stream deltas) and the stored trace, for the upstream
(OpenAI-compatible) and Anthropic backends, with the official openai SDK as the client
against a real gateway on loopback in front of the fakes (which answer what the test sets).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from bastion.backends.anthropic import AnthropicBackend
from bastion.backends.generation import assemble_chat
from bastion.config import load_settings
from bastion.hookspecs import RegisterBackend, hookimpl
from bastion.plugins import plugin_manager
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, trace_of

ANTHROPIC_KEY = "sk-ant-tool-calls-test"
KEY_ENV = "BASTION_TEST_TOOL_CALLS_ANTHROPIC_KEY"

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
            "required": ["city"],
        },
        "strict": True,
    },
}
TIME: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}
CALLS: list[dict[str, Any]] = [
    {"id": "call_w1", "type": "function",
     "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "C"}'}},
    {"id": "call_t2", "type": "function",
     "function": {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}'}},
]
USES: list[dict[str, Any]] = [
    {"id": "toolu_w1", "name": "get_weather", "input": {"city": "Paris", "unit": "C"}},
    {"id": "toolu_t2", "name": "get_time", "input": {"tz": "Europe/Paris"}},
]
#: a conversation that already went through one tool call and its result
HISTORY: list[Any] = [
    {"role": "system", "content": "Use the tools."},
    {"role": "user", "content": "Weather and time in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": CALLS},
    {"role": "tool", "tool_call_id": "call_w1", "content": "18C and sunny"},
    {"role": "tool", "tool_call_id": "call_t2", "content": [{"type": "text", "text": "14:05"}]},
    {"role": "user", "content": "And tomorrow?"},
]


class AnthropicPlugin:
    @hookimpl
    def register_backends(self, register: RegisterBackend) -> None:
        register("anthropic", AnthropicBackend)


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream().start() as server:
        yield server


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=ANTHROPIC_KEY).start() as server:
        yield server


def start(up: FakeUpstream, claude: FakeAnthropic, home: Path, content: str) -> RunningGateway:
    os.environ[KEY_ENV] = ANTHROPIC_KEY
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "master_key": MASTER_KEY},
        "home": str(home),
        "routing": {"default": {"retries": 0}},
        "tracing": {"flush_interval": 0.05, "content": content},
        "models": [
            {"name": "up", "backend": "openai", "base_url": up.base_url,
             "upstream_model": "fake-upstream-model"},
            {"name": "claude", "backend": "anthropic", "base_url": claude.base_url,
             "api_key_env": KEY_ENV, "upstream_model": "claude-up"},
        ],
    }
    path = home / "bastion.yaml"
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    pm = plugin_manager()
    pm.register(AnthropicPlugin())
    return RunningGateway(load_settings(path, env={}), pm).start()


@pytest.fixture(scope="module")
def gateway(
    up: FakeUpstream, claude: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    gw = start(up, claude, tmp_path_factory.mktemp("tools") / "home", "full")
    yield gw
    gw.stop()


@pytest.fixture()
def client(gateway: RunningGateway, up: FakeUpstream, claude: FakeAnthropic) -> openai.OpenAI:
    up.reset()
    claude.reset()
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=MASTER_KEY, max_retries=0)


def traced_tool_call(client: openai.OpenAI, gateway: RunningGateway, model: str,
                     stream: bool) -> dict[str, Any]:
    """Asks ``model`` with the two tools, reads the answer (streamed or whole), and returns
    its stored trace."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=HISTORY[:2], tools=[WEATHER, TIME], stream=stream
    )
    if stream:
        list(raw.parse())
    else:
        raw.parse()
    return trace_of(gateway, raw.headers["x-request-id"])


def plain(calls: Any) -> list[dict[str, Any]]:
    """SDK tool calls as the wire's dicts."""
    return [c.model_dump(exclude_none=True) for c in calls or []]


def from_stream(chunks: list[Any]) -> tuple[list[dict[str, Any]], list[Any], str | None]:
    """(calls merged by index as the SDK's docs say, every tool-call delta, last finish)."""
    merged: dict[int, dict[str, Any]] = {}
    deltas: list[Any] = []
    finish = None
    for chunk in chunks:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                deltas.append(delta)
                call = merged.setdefault(
                    delta.index,
                    {"id": None, "type": "function", "function": {"name": None, "arguments": ""}},
                )
                if delta.id:
                    call["id"] = delta.id
                if delta.function and delta.function.name:
                    call["function"]["name"] = delta.function.name
                if delta.function and delta.function.arguments:
                    call["function"]["arguments"] += delta.function.arguments
    return [merged[i] for i in sorted(merged)], deltas, finish


# ---------------------------------------------------------------------------- assembling
def test_assemble_chat_merges_tool_call_deltas_by_index() -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-1", "created": 1,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "get_time", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({}, "tool_calls"),
    ]
    reply = assemble_chat(chunks, "m", {"completion_tokens": 3})
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_b", "type": "function",
             "function": {"name": "get_time", "arguments": "{}"}},
        ],
    }
    text = assemble_chat([chunk({"content": "hi"}), chunk({}, "stop")], "m", {})
    assert text["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    assert text["choices"][0]["finish_reason"] == "stop"


# ---------------------------------------------------------------------------- upstream
def test_upstream_request_tools_and_tool_history_pass_through_unchanged(
    client: openai.OpenAI, up: FakeUpstream
) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    client.chat.completions.create(
        model="up", messages=HISTORY, tools=[WEATHER, TIME], tool_choice=named,
        parallel_tool_calls=False,
    )
    sent = up.requests[-1]["json"]
    assert sent["model"] == "fake-upstream-model"
    assert sent["messages"] == HISTORY
    assert sent["tools"] == [WEATHER, TIME]
    assert sent["tool_choice"] == named
    assert sent["parallel_tool_calls"] is False
    client.chat.completions.create(model="up", messages=HISTORY[:2], tools=[WEATHER],
                                   tool_choice="required", stream=True).close()
    assert up.requests[-1]["json"]["tool_choice"] == "required"


def test_upstream_tool_calls_reply_passes_through(
    client: openai.OpenAI, up: FakeUpstream
) -> None:
    up.tool_calls = CALLS
    reply = client.chat.completions.create(model="up", messages=HISTORY[:2], tools=[WEATHER, TIME])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert plain(choice.message.tool_calls) == CALLS
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {  # type: ignore[index,union-attr]
        "city": "Paris", "unit": "C"}


def test_upstream_streamed_tool_calls_pass_through_as_deltas(
    client: openai.OpenAI, up: FakeUpstream
) -> None:
    up.tool_calls = CALLS
    up.behaviour.chunks = 3
    stream = client.chat.completions.create(
        model="up", messages=HISTORY[:2], tools=[WEATHER, TIME], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    calls, deltas, finish = from_stream(chunks)
    assert calls == CALLS
    assert finish == "tool_calls"
    assert [d.index for d in deltas] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert deltas[0].id == "call_w1" and deltas[1].id is None
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_upstream_trace_records_the_tool_calls(
    client: openai.OpenAI, up: FakeUpstream, gateway: RunningGateway, stream: bool
) -> None:
    up.tool_calls = CALLS
    trace = traced_tool_call(client, gateway, "up", stream)
    assert trace["output"]["tool_calls"] == CALLS, trace["output"]
    assert trace["output"].get("content") in (None, "")
    assert trace["finish_reason"] == "tool_calls"
    assert trace["params"]["tools"] == 2


# ---------------------------------------------------------------------------- anthropic
def test_anthropic_request_translates_tools_choice_and_history(
    client: openai.OpenAI, claude: FakeAnthropic
) -> None:
    choices: list[tuple[Any, dict[str, Any]]] = [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "get_time"}},
         {"type": "tool", "name": "get_time"}),
    ]
    for choice, expected in choices:
        client.chat.completions.create(
            model="claude", messages=HISTORY, tools=[WEATHER, TIME], tool_choice=choice
        )
        sent = claude.requests[-1]["body"]
        assert sent["tool_choice"] == expected, choice
    assert sent["tools"] == [
        {"name": "get_weather", "description": "Current weather for a city",
         "input_schema": WEATHER["function"]["parameters"]},
        {"name": "get_time", "input_schema": TIME["function"]["parameters"]},
    ]
    assert sent["system"] == "Use the tools."
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather and time in Paris?"}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_w1", "name": "get_weather",
             "input": {"city": "Paris", "unit": "C"}},
            {"type": "tool_use", "id": "call_t2", "name": "get_time",
             "input": {"tz": "Europe/Paris"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_w1", "content": "18C and sunny"},
            {"type": "tool_result", "tool_use_id": "call_t2", "content": "14:05"},
            {"type": "text", "text": "And tomorrow?"},
        ]},
    ]
    client.chat.completions.create(
        model="claude", messages=HISTORY[:2], tools=[WEATHER], parallel_tool_calls=False
    )
    assert claude.requests[-1]["body"]["tool_choice"] == {
        "type": "auto", "disable_parallel_tool_use": True}


def test_anthropic_tool_use_reply_becomes_tool_calls(
    client: openai.OpenAI, claude: FakeAnthropic
) -> None:
    claude.tool_uses = USES
    reply = client.chat.completions.create(
        model="claude", messages=HISTORY[:2], tools=[WEATHER, TIME]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = plain(choice.message.tool_calls)
    assert [(c["id"], c["type"], c["function"]["name"]) for c in calls] == [
        ("toolu_w1", "function", "get_weather"), ("toolu_t2", "function", "get_time")]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [u["input"] for u in USES]

    claude.tool_text = "Let me look that up."
    reply = client.chat.completions.create(
        model="claude", messages=HISTORY[:2], tools=[WEATHER, TIME]
    )
    assert reply.choices[0].message.content == "Let me look that up."
    assert len(reply.choices[0].message.tool_calls or []) == 2


def test_anthropic_streamed_tool_use_becomes_indexed_tool_call_deltas(
    client: openai.OpenAI, claude: FakeAnthropic
) -> None:
    claude.tool_uses = USES
    claude.tool_text = "Checking."
    chunks = list(client.chat.completions.create(
        model="claude", messages=HISTORY[:2], tools=[WEATHER, TIME], stream=True
    ))
    calls, deltas, finish = from_stream(chunks)
    assert finish == "tool_calls"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Checking."
    assert [(c["id"], c["function"]["name"]) for c in calls] == [
        ("toolu_w1", "get_weather"), ("toolu_t2", "get_time")]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [u["input"] for u in USES]
    firsts = [d for d in deltas if d.id]
    assert [d.index for d in firsts] == [0, 1]  # text block 0 does not shift the indices
    assert all(d.type == "function" for d in firsts)
    assert sorted({d.index for d in deltas}) == [0, 1]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_anthropic_trace_records_the_tool_calls(
    client: openai.OpenAI, claude: FakeAnthropic, gateway: RunningGateway, stream: bool
) -> None:
    claude.tool_uses = USES
    trace = traced_tool_call(client, gateway, "claude", stream)
    calls = trace["output"]["tool_calls"]
    assert [(c["id"], c["function"]["name"]) for c in calls] == [
        ("toolu_w1", "get_weather"), ("toolu_t2", "get_time")], trace["output"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [u["input"] for u in USES]
    assert trace["finish_reason"] == "tool_calls"


def test_default_content_mode_trace_keeps_tool_calls(
    up: FakeUpstream, claude: FakeAnthropic, tmp_path: Path
) -> None:
    """The default (redacted) mode redacts the arguments' values, not the calls away."""
    up.reset()
    up.tool_calls = CALLS
    gw = start(up, claude, tmp_path / "home", "redacted")
    try:
        client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=MASTER_KEY, max_retries=0)
        for stream in (False, True):
            raw = client.chat.completions.with_raw_response.create(
                model="up", messages=HISTORY[:2], tools=[WEATHER, TIME], stream=stream
            )
            if stream:
                list(raw.parse())
            trace = trace_of(gw, raw.headers["x-request-id"])
            calls = trace["output"]["tool_calls"]
            assert [(c["id"], c["function"]["name"]) for c in calls] == [
                ("call_w1", "get_weather"), ("call_t2", "get_time")], (stream, trace["output"])
            assert trace["finish_reason"] == "tool_calls"
    finally:
        gw.stop()
        up.reset()
