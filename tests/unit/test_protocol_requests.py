"""Hand-written OpenAI request checks: what passes, what fails and which param is named."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bastion.errors import InvalidRequest, UnsupportedMediaType
from bastion.protocol.requests import (
    check_chat_request,
    check_completion_request,
    check_embedding_request,
    decode_json_object,
)


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_valid_chat_keeps_unknown_fields_and_reports_stream() -> None:
    body = chat(stream=True, custom={"a": 1}, max_completion_tokens=5, n=1, stop=["x"])
    assert check_chat_request(body) is True
    assert body["custom"] == {"a": 1}
    assert check_chat_request(chat()) is False


def test_content_parts_and_assistant_without_content() -> None:
    body = chat()
    body["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    assert check_chat_request(body) is False


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(temperature=True), "temperature"),
        (chat(max_tokens=1.5), "max_tokens"),
        (chat(n=0), "n"),
        (chat(metadata={"a": 1}), "metadata"),
        (chat(user=5), "user"),
        (chat(stream_options=[]), "stream_options"),
        (chat(tools={}), "tools"),
    ],
)
def test_bad_chat_fields_name_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_chat_request(body)
    assert info.value.param == param


def test_completion_prompt_shapes() -> None:
    assert check_completion_request({"model": "m", "prompt": "x"}) is False
    assert check_completion_request({"model": "m", "prompt": ["a", "b"], "stream": True}) is True
    for prompt in (None, 3, [], [1]):
        with pytest.raises(InvalidRequest):
            check_completion_request({"model": "m", "prompt": prompt})


def test_embedding_input_shapes() -> None:
    assert check_embedding_request({"model": "m", "input": "x"}) == ["x"]
    assert check_embedding_request({"model": "m", "input": ["a", "b"]}) == ["a", "b"]
    assert check_embedding_request({"model": "m", "input": [1, 2]}) == [[1, 2]]
    assert check_embedding_request({"model": "m", "input": [[1], [2]]}) == [[1], [2]]
    for value in ("", [], [""], [1, "a"], {"a": 1}, ["x"] * 2049):
        with pytest.raises(InvalidRequest):
            check_embedding_request({"model": "m", "input": value})


def test_decode_rejects_non_objects_and_multipart() -> None:
    assert decode_json_object(b'{"a": 1}', b"application/x-www-form-urlencoded") == {"a": 1}
    for raw in (b"", b"[]", b"null", b"{", b"\xff\xfe"):
        with pytest.raises(InvalidRequest):
            decode_json_object(raw, None)
    with pytest.raises(UnsupportedMediaType):
        decode_json_object(b"{}", b"multipart/form-data; boundary=x")


@pytest.mark.parametrize(("raw", "param", "limit"), [
    (b'{"max_tokens": 1e30}', "max_tokens", "from 1 to 2147483647"),
    (b'{"max_tokens": 99999999999999999999}', "max_tokens", "from 1 to 2147483647"),
    (b'{"seed": 1180591620717411303424}', "seed", "to 9223372036854775807"),  # 2**70
    (b'{"seed": -9223372036854775809}', "seed", "from -9223372036854775808"),
    (b'{"n": 0}', "n", "from 1 to 128"),
    (b'{"max_completion_tokens": 2.5}', "max_completion_tokens", "from 1 to 2147483647"),
])
def test_integers_out_of_range_say_the_range(raw: bytes, param: str, limit: str) -> None:
    """JSON has one number type: a number too large for an integer field (orjson gives a
    float past 64 bits) is reported with the field's range, not as 'got float'."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
            **orjson.loads(raw)}
    with pytest.raises(InvalidRequest) as info:
        check_chat_request(body)
    assert info.value.param == param and limit in info.value.message, info.value.message


def test_integers_at_their_limits_are_taken() -> None:
    check_chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 2**31 - 1, "seed": -(2**63), "n": 128})
