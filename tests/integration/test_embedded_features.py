"""The embedded model's request features against the real gateway on loopback: forced tool
calls, JSON-schema output, logprobs, seeds, logit_bias and huge prompts (issue 12)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import fastjsonschema
import pytest

from tests.gateway_harness import RunningGateway, running
from tests.integration.test_embedded_model import embedded

CHAT = "/v1/chat/completions"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 12},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"enum": ["UTC", "CET"]}},
            "required": ["zone"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 10},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module", params=["serial", "batched"])
def gw(request: pytest.FixtureRequest) -> Iterator[RunningGateway]:
    spec: dict[str, Any] = {"n_ctx": 1024}  # chat logprobs need no logits_all (llama_logprobs)
    if request.param == "batched":
        spec = {"n_ctx": 1024, "parallel": 2}
    with running(embedded(**spec)) as gateway:
        yield gateway


def chat(gw: RunningGateway, **body: Any) -> tuple[int, Any]:
    return gw.request("POST", CHAT, {"model": "smollm2", "messages": ASK, **body})


def stream(gw: RunningGateway, **body: Any) -> list[dict[str, Any]]:
    status, raw = gw.request("POST", CHAT, {"model": "smollm2", "messages": ASK, "stream": True,
                                            **body})
    assert status == 200, raw
    events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def check_call(call: dict[str, Any], tools: list[dict[str, Any]]) -> None:
    assert call["type"] == "function" and call["id"].startswith("call_")
    fn = {t["function"]["name"]: t["function"] for t in tools}[call["function"]["name"]]
    fastjsonschema.compile(fn["parameters"])(json.loads(call["function"]["arguments"]))


@pytest.mark.parametrize(
    ("tools", "choice"),
    [
        ([WEATHER, TIME], {"type": "function", "function": {"name": "get_weather"}}),
        ([WEATHER, TIME], "required"),
    ],
)
def test_forced_tool_choice_returns_a_valid_tool_call(
    gw: RunningGateway, tools: list[dict[str, Any]], choice: Any
) -> None:
    status, body = chat(gw, tools=tools, tool_choice=choice, max_tokens=60)
    assert status == 200, body
    choice0 = body["choices"][0]
    assert choice0["finish_reason"] == "tool_calls", body
    assert choice0["message"]["content"] is None
    [call] = choice0["message"]["tool_calls"]
    check_call(call, tools)
    if isinstance(choice, dict):
        assert call["function"]["name"] == "get_weather"


def test_forced_tool_call_streams_as_delta_tool_calls(gw: RunningGateway) -> None:
    chunks = stream(gw, tools=[WEATHER, TIME], tool_choice="required", max_tokens=60)
    parts = [c["choices"][0] for c in chunks if c.get("choices")]
    assert all(p["delta"].get("content") is None for p in parts)
    entries = [e for p in parts for e in p["delta"].get("tool_calls") or []]
    assert entries and entries[0]["id"].startswith("call_") and entries[0]["type"] == "function"
    assert all(e["index"] == 0 for e in entries)
    call = {
        "id": entries[0]["id"],
        "type": "function",
        "function": {
            "name": entries[0]["function"]["name"],
            "arguments": "".join(e["function"].get("arguments", "") for e in entries),
        },
    }
    check_call(call, [WEATHER, TIME])
    assert parts[-1]["finish_reason"] == "tool_calls"


def test_auto_tool_choice_answers_in_text(gw: RunningGateway) -> None:
    status, body = chat(gw, tools=[WEATHER], tool_choice="auto", max_tokens=4)
    assert status == 200, body
    assert body["choices"][0]["message"].get("tool_calls") in (None, [])
    assert body["choices"][0]["finish_reason"] in ("stop", "length")


def test_tool_choice_naming_a_missing_tool_is_400(gw: RunningGateway) -> None:
    status, body = chat(
        gw, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}
    )
    assert status == 400 and body["error"]["param"] == "tool_choice", body


@pytest.mark.parametrize("streamed", [False, True])
def test_json_schema_response_validates(gw: RunningGateway, streamed: bool) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON, "strict": True}}
    args: dict[str, Any] = {"response_format": fmt, "max_tokens": 80, "temperature": 0}
    if streamed:
        chunks = stream(gw, **args)
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
        )
    else:
        status, body = chat(gw, **args)
        assert status == 200, body
        text = body["choices"][0]["message"]["content"]
    fastjsonschema.compile(PERSON)(json.loads(text))


def test_json_object_response_parses(gw: RunningGateway) -> None:
    status, body = chat(gw, response_format={"type": "json_object"}, max_tokens=40)
    assert status == 200, body
    if body["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)


@pytest.mark.parametrize(
    ("schema", "feature"),
    [
        ({"type": "string", "format": "email"}, "format 'email'"),
        ({"type": "object", "patternProperties": {"^x": {"type": "string"}}}, "patternProperties"),
        ({"$ref": "https://example.com/s.json"}, "$ref"),
        ({"not": {"type": "string"}}, "'not'"),
        ({"if": {"type": "string"}, "then": {"maxLength": 3}}, "'if'"),
        ({"type": "integer", "minimum": 3}, "'minimum'"),
        ({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}},
         "'uniqueItems' at #/properties/a"),
    ],
)
def test_schema_features_the_grammar_cannot_enforce_are_400(
    gw: RunningGateway, schema: dict[str, Any], feature: str
) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    status, body = chat(gw, response_format=fmt, max_tokens=4)
    assert status == 400, body
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "response_format"
    assert feature in body["error"]["message"]


def test_tool_parameters_the_grammar_cannot_enforce_are_400(gw: RunningGateway) -> None:
    bad = {"type": "function", "function": {"name": "f", "parameters": {"not": {}}}}
    status, body = chat(gw, tools=[bad], tool_choice="required", max_tokens=4)
    assert status == 400 and body["error"]["param"] == "tools", body
    assert "'not'" in body["error"]["message"]


def _check_logprob_entries(entries: list[dict[str, Any]]) -> None:
    assert entries
    for entry in entries:
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
        assert entry["top_logprobs"] == []
        assert isinstance(entry["logprob"], float) and entry["logprob"] <= 0
        assert bytes(entry["bytes"]).decode(errors="ignore") == entry["token"]


def test_logprobs_without_top_logprobs_lists_the_chosen_tokens(gw: RunningGateway) -> None:
    status, body = chat(gw, logprobs=True, max_tokens=4)
    assert status == 200, body
    entries = body["choices"][0]["logprobs"]["content"]
    _check_logprob_entries(entries)
    assert "".join(e["token"] for e in entries) == body["choices"][0]["message"]["content"]
    chunks = stream(gw, logprobs=True, max_tokens=4)
    streamed = [
        e for c in chunks if c.get("choices") for e in
        ((c["choices"][0].get("logprobs") or {}).get("content") or [])
    ]
    _check_logprob_entries(streamed)


def test_top_logprobs_are_the_likeliest_tokens_and_match_the_text(gw: RunningGateway) -> None:
    status, body = chat(gw, logprobs=True, top_logprobs=3, max_tokens=12, temperature=0)
    assert status == 200, body
    entries = body["choices"][0]["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == body["choices"][0]["message"]["content"]
    for entry in entries:
        values = [t["logprob"] for t in entry["top_logprobs"]]
        assert len(values) == 3 and values == sorted(values, reverse=True)
        assert entry["top_logprobs"][0]["token"] == entry["token"]  # greedy: the likeliest
        assert entry["logprob"] == pytest.approx(values[0], abs=1e-5)
    chunks = stream(gw, logprobs=True, top_logprobs=3, max_tokens=12, temperature=0)
    streamed = [e for c in chunks if c.get("choices")
                for e in ((c["choices"][0].get("logprobs") or {}).get("content") or [])]
    assert [e["token"] for e in streamed] == [e["token"] for e in entries]
    assert [e["logprob"] for e in streamed] == pytest.approx([e["logprob"] for e in entries],
                                                             abs=1e-4)


def test_same_seed_same_text_whatever_came_before(gw: RunningGateway) -> None:
    story = [{"role": "user", "content": "Tell me a story"}]
    a = {"messages": story, "seed": 7, "temperature": 1.0, "max_tokens": 16}

    def text(body: dict[str, Any]) -> str:
        status, reply = gw.request("POST", CHAT, {"model": "smollm2", **body})
        assert status == 200, reply
        return str(reply["choices"][0]["message"]["content"])

    first = text(a)
    text({"messages": story, "temperature": 1.0, "max_tokens": 16})  # same prompt, no seed
    assert text(a) == first
    text({"messages": ASK, "seed": 3, "temperature": 1.0, "max_tokens": 8})
    assert text(a) == first


@pytest.mark.parametrize("token", ["49152", "99999999"])
def test_out_of_vocabulary_logit_bias_is_400(
    gw: RunningGateway, token: str, capfd: pytest.CaptureFixture[str]
) -> None:
    status, body = chat(gw, logit_bias={token: 5}, max_tokens=2)
    assert status == 400, body
    assert body["error"]["param"] == "logit_bias" and token in body["error"]["message"]
    status, body = chat(gw, logit_bias={"42": 5}, max_tokens=2)  # in range: still served
    assert status == 200, body
    err = capfd.readouterr().err
    assert "Traceback" not in err
    for line in err.splitlines():
        if line.strip():
            json.loads(line)  # every log line is JSON


def test_huge_prompt_is_refused_without_holding_the_model() -> None:
    # queue_size=0: any small request arriving while the model is held is refused with 503,
    # so every small request succeeding shows the huge prompt never took the model.
    with running(embedded(n_ctx=512, queue_size=0)) as gw:
        huge = [{"role": "user", "content": "lighthouse " * 710_000}]  # ~7.8 MB
        result: dict[str, Any] = {}

        def send() -> None:
            result["reply"] = gw.request(
                "POST", CHAT, {"model": "smollm2", "messages": huge, "max_tokens": 4}
            )

        thread = threading.Thread(target=send)
        thread.start()
        small: list[int] = []
        while thread.is_alive() or not small:
            status, body = chat(gw, max_tokens=1)
            small.append(status)
            assert status == 200, body
        thread.join()
        status, body = result["reply"]
        assert status == 400, body
        assert body["error"]["code"] == "context_length_exceeded"
        assert body["error"]["param"] == "messages"
