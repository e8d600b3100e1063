"""The official openai SDK against a real gateway: the embedded model and an upstream."""

from __future__ import annotations

import json

import openai
import pytest

from bastion.config import EmbeddedModel, ServerSettings, Settings
from tests.fakes.upstream import DEFAULT_CONTENT, FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, running


@pytest.fixture()
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=MASTER_KEY, max_retries=0)


@pytest.fixture()
def aclient(gateway: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=gateway.base_url + "/v1", api_key=MASTER_KEY, max_retries=0
    )


HELLO = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say hello in one short sentence."},
]


def test_embedded_chat_completion_returns_text_and_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="smollm2", messages=HELLO, max_tokens=24)
    assert reply.model == "smollm2"
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= 24


def test_embedded_max_completion_tokens_bounds_output(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smollm2", messages=HELLO, max_completion_tokens=3
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 3
    assert reply.choices[0].finish_reason == "length"


def test_embedded_stream_yields_chunks_and_usage_when_asked(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smollm2",
        messages=HELLO,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].usage.prompt_tokens > 5


def test_embedded_stream_has_no_usage_chunk_unless_asked(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="smollm2", messages=HELLO, max_tokens=8, stream=True)
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_embedded_same_seed_same_output(client: openai.OpenAI) -> None:
    args = {"model": "smollm2", "messages": HELLO, "max_tokens": 16, "temperature": 0.9, "seed": 7}
    first = client.chat.completions.create(**args)  # type: ignore[call-overload]
    second = client.chat.completions.create(**args)  # type: ignore[call-overload]
    assert first.choices[0].message.content == second.choices[0].message.content


def test_embedded_chat_logprobs_need_no_config_legacy_ones_do(client: openai.OpenAI) -> None:
    """Chat logprobs are computed by Bastion from the sampled token's logits (no
    ``logits_all``); legacy completions' still come from llama-cpp-python and need it."""
    reply = client.chat.completions.create(model="smollm2", messages=HELLO, max_tokens=4,
                                           logprobs=True, top_logprobs=2)
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    assert len(logprobs.content) == reply.usage.completion_tokens  # type: ignore[union-attr]
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in logprobs.content)
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="smollm2", prompt="Hello", max_tokens=4, logprobs=1)
    assert "logprobs: true" in info.value.message


def test_embedded_logprobs_when_enabled() -> None:
    settings = Settings(
        server=ServerSettings(port=0),
        models=[
            EmbeddedModel(name="smollm2", backend="llama_cpp", n_ctx=512, logprobs=True)
        ],
    )
    with running(settings) as gw:
        client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="smollm2", messages=HELLO, max_tokens=4, logprobs=True, top_logprobs=2
        )
        logprobs = reply.choices[0].logprobs
        assert logprobs is not None and logprobs.content
        assert len(logprobs.content) == reply.usage.completion_tokens  # type: ignore[union-attr]
        assert logprobs.content[0].logprob <= 0
        assert len(logprobs.content[0].top_logprobs) == 2
        legacy = client.completions.create(
            model="smollm2", prompt="The sky is", max_tokens=3, logprobs=2
        )
        assert legacy.choices[0].logprobs is not None
        assert len(legacy.choices[0].logprobs.tokens or []) == 3


def test_embedded_json_object_response_format_is_valid_json(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Give a JSON object with a key 'name'."}],
        response_format={"type": "json_object"},
        max_tokens=48,
        temperature=0,
    )
    content = reply.choices[0].message.content or ""
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict)
    else:  # cut off by max_tokens: still a JSON prefix
        assert content.lstrip().startswith("{")


def test_embedded_tool_message_roles_accepted(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "What is the weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    reply = client.chat.completions.create(
        model="smollm2", messages=messages, max_tokens=8  # type: ignore[arg-type]
    )
    assert reply.choices[0].message.content is not None


def test_embedded_legacy_completion(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="smollm2", prompt="The capital of France is", max_tokens=5)
    assert reply.object == "text_completion"
    assert reply.choices[0].text
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_embeddings_from_local_model(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="minilm", input=["a cat sat", "a dog ran"])
    assert len(result.data) == 2
    assert [d.index for d in result.data] == [0, 1]
    dims = len(result.data[0].embedding)
    assert dims >= 64
    assert result.usage.prompt_tokens > 0


def test_embeddings_base64_decodes_to_same_vector(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model="minilm", input="hello world").data[0].embedding
    # the SDK decodes base64 itself when it asked for it
    b64 = client.embeddings.create(
        model="minilm", input="hello world", encoding_format="base64"
    ).data[0].embedding
    assert len(b64) == len(floats) or isinstance(b64, str)


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"smollm2", "minilm", "fake-model"} <= ids
    assert client.models.retrieve("smollm2").id == "smollm2"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=HELLO)
    assert info.value.code == "model_not_found"


def test_wrong_key_is_authentication_error(gateway: RunningGateway) -> None:
    bad = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_upstream_chat_through_sdk(client: openai.OpenAI, fresh_upstream: FakeUpstream) -> None:
    reply = client.chat.completions.create(
        model="fake-model",
        messages=HELLO,
        extra_body={"custom_field": {"kept": True}},
        user="user-42",
        metadata={"team": "support"},
    )
    assert reply.choices[0].message.content == DEFAULT_CONTENT
    sent = fresh_upstream.requests[-1]
    assert sent["json"]["custom_field"] == {"kept": True}
    assert sent["json"]["user"] == "user-42"
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-secret"


def test_upstream_model_name_is_rewritten(
    client: openai.OpenAI, fresh_upstream: FakeUpstream
) -> None:
    client.chat.completions.create(model="renamed", messages=HELLO)
    assert fresh_upstream.requests[-1]["json"]["model"] == "upstream-name"


def test_upstream_stream_injects_usage_and_strips_it(
    client: openai.OpenAI, fresh_upstream: FakeUpstream
) -> None:
    chunks = list(client.chat.completions.create(model="fake-model", messages=HELLO, stream=True))
    sent = fresh_upstream.requests[-1]["json"]
    assert sent["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks), "usage chunk must be stripped"
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == DEFAULT_CONTENT


def test_upstream_stream_keeps_usage_when_client_asks(
    client: openai.OpenAI, fresh_upstream: FakeUpstream
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="fake-model", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_upstream_legacy_completion_and_embeddings(
    client: openai.OpenAI, fresh_upstream: FakeUpstream
) -> None:
    assert client.completions.create(model="fake-model", prompt="hi").choices[0].text
    assert len(client.embeddings.create(model="fake-model", input="hi").data[0].embedding) == 8


async def test_async_client_stream_and_non_stream(aclient: openai.AsyncOpenAI) -> None:
    reply = await aclient.chat.completions.create(model="smollm2", messages=HELLO, max_tokens=8)
    assert reply.choices[0].message.content
    stream = await aclient.chat.completions.create(
        model="fake-model", messages=HELLO, stream=True
    )
    parts = [c.choices[0].delta.content or "" async for c in stream]
    assert "".join(parts) == DEFAULT_CONTENT
    embedded = await aclient.chat.completions.create(
        model="smollm2", messages=HELLO, max_tokens=8, stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in embedded])
    await aclient.close()
