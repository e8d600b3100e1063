"""Wire-level checks of OpenAI requests, on plain dicts decoded by orjson.

Hand-written rather than pydantic because this runs on every request (pydantic costs
200-500 µs here; these checks cost a few µs). Each ``check_*`` function validates the
fields Bastion understands, raises :class:`~bastion.errors.InvalidRequest` naming the
parameter, and leaves unknown fields in place so they reach the upstream untouched.
"""

from __future__ import annotations

from typing import Any

import orjson

from bastion.errors import InvalidRequest, UnsupportedMediaType

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})


def decode_json_object(body: bytes, content_type: bytes | None) -> dict[str, Any]:
    """Decodes a JSON object body.

    The Content-Type is not enforced beyond rejecting multipart uploads: ``curl -d`` sends
    ``application/x-www-form-urlencoded`` with a JSON body, and OpenAI accepts that too.
    """
    if content_type is not None and content_type[:10].lower() == b"multipart/":
        raise UnsupportedMediaType("Content-Type must be application/json, not multipart")
    if not body:
        raise InvalidRequest("Request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequest(
            f"Request body must be a JSON object, got {type(data).__name__}"
        )
    return data


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require_str(data: dict[str, Any], key: str) -> str:
    if key not in data:
        raise InvalidRequest(f"Missing required parameter: '{key}'", param=key)
    value = data[key]
    if not isinstance(value, str) or not value:
        raise InvalidRequest(
            f"'{key}' must be a non-empty string, got {_type_name(value)}", param=key
        )
    return value


def _opt_bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{key}' must be a boolean, got {_type_name(value)}", param=key)
    return value


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1


def _opt_int(
    data: dict[str, Any], key: str, low: int = INT64_MIN, high: int = INT64_MAX
) -> None:
    """An optional integer from ``low`` to ``high``. JSON has one number type: orjson
    gives a float for ``1e30`` or an integer beyond 64 bits, so the error names the range
    (an integer too large is still an integer to the client)."""
    value = data.get(key)
    if value is None:
        return
    if _is_int(value) and low <= value <= high:
        return
    got = f"{_type_name(value)} {value!r}" if _is_number(value) else _type_name(value)
    raise InvalidRequest(f"'{key}' must be an integer from {low} to {high}, got {got}",
                         param=key)


def _opt_number(data: dict[str, Any], key: str, low: float, high: float) -> None:
    value = data.get(key)
    if value is None:
        return
    if not _is_number(value):
        raise InvalidRequest(f"'{key}' must be a number, got {_type_name(value)}", param=key)
    if not low <= value <= high:
        raise InvalidRequest(f"'{key}' must be between {low} and {high}, got {value}", param=key)


def _check_stop(data: dict[str, Any]) -> None:
    stop = data.get("stop")
    if stop is None or isinstance(stop, str):
        return
    if isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop):
        return
    raise InvalidRequest("'stop' must be a string or a list of at most 4 strings", param="stop")


def _check_common(data: dict[str, Any]) -> bool:
    stream = _opt_bool(data, "stream")
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise InvalidRequest("'stream_options' must be an object", param="stream_options")
        _opt_bool(options, "include_usage")
    _opt_int(data, "max_tokens", 1, INT32_MAX)
    _opt_int(data, "n", 1, 128)
    _opt_int(data, "seed")
    _opt_number(data, "temperature", 0.0, 2.0)
    _opt_number(data, "top_p", 0.0, 1.0)
    _opt_number(data, "presence_penalty", -2.0, 2.0)
    _opt_number(data, "frequency_penalty", -2.0, 2.0)
    _check_stop(data)
    bias = data.get("logit_bias")
    if bias is not None and not (
        isinstance(bias, dict)
        # ASCII digits: str.isdigit() is true of '²', which int() refuses (a backend's 500)
        and all(k.isascii() and k.isdigit() and _is_number(v) and -100 <= v <= 100
                for k, v in bias.items())
    ):
        raise InvalidRequest(
            "'logit_bias' must map token ids (as strings) to numbers from -100 to 100",
            param="logit_bias",
        )
    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest(f"'user' must be a string, got {_type_name(user)}", param="user")
    metadata = data.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(v, str) for v in metadata.values())
    ):
        raise InvalidRequest("'metadata' must be an object of string values", param="metadata")
    return stream


def _check_content(content: Any, index: int, role: str) -> None:
    param = f"messages[{index}].content"
    if isinstance(content, str):
        return
    if content is None:
        if role in ("assistant", "function"):
            return
        raise InvalidRequest(f"'{param}' is required for role '{role}'", param=param)
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise InvalidRequest(
                    f"'{param}[{j}]' must be an object with a string 'type'", param=param
                )
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise InvalidRequest(f"'{param}[{j}].text' must be a string", param=param)
        return
    raise InvalidRequest(
        f"'{param}' must be a string or a list of content parts, got {_type_name(content)}",
        param=param,
    )


def check_chat_request(data: dict[str, Any]) -> bool:
    """Validates a chat completion request in place. Returns whether it asks for a stream."""
    _require_str(data, "model")
    messages = data.get("messages")
    if messages is None:
        raise InvalidRequest("Missing required parameter: 'messages'", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"'messages[{i}]' must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise InvalidRequest(
                f"'messages[{i}].role' must be one of {', '.join(sorted(_ROLES))}, got {role!r}",
                param=f"messages[{i}].role",
            )
        _check_content(message.get("content"), i, role)
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise InvalidRequest(
                f"'messages[{i}].tool_call_id' is required for role 'tool'",
                param=f"messages[{i}].tool_call_id",
            )
    stream = _check_common(data)
    _opt_int(data, "max_completion_tokens", 1, INT32_MAX)
    logprobs = _opt_bool(data, "logprobs")
    _opt_int(data, "top_logprobs", 0, 20)
    if data.get("top_logprobs") is not None and not logprobs:
        raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true", param="top_logprobs")
    fmt = data.get("response_format")
    if fmt is not None and (
        not isinstance(fmt, dict)
        or not isinstance(fmt.get("type"), str)
        or fmt["type"] not in _RESPONSE_FORMATS
    ):
        raise InvalidRequest(
            "'response_format.type' must be one of json_object, json_schema, text",
            param="response_format",
        )
    for key in ("tools", "functions"):
        value = data.get(key)
        if value is not None and not isinstance(value, list):
            raise InvalidRequest(f"'{key}' must be an array", param=key)
    return stream


def check_completion_request(data: dict[str, Any]) -> bool:
    """Validates a legacy completion request in place. Returns whether it asks for a stream."""
    _require_str(data, "model")
    if "prompt" not in data:
        raise InvalidRequest("Missing required parameter: 'prompt'", param="prompt")
    prompt = data["prompt"]
    ok = isinstance(prompt, str) or (
        isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt)
    )
    if not ok:
        raise InvalidRequest("'prompt' must be a string or an array of strings", param="prompt")
    _opt_int(data, "logprobs", 0, 5)
    _opt_bool(data, "echo")
    suffix = data.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise InvalidRequest("'suffix' must be a string", param="suffix")
    return _check_common(data)


def check_embedding_request(data: dict[str, Any]) -> list[str] | list[list[int]]:
    """Validates an embeddings request. Returns the inputs as a list."""
    _require_str(data, "model")
    if "input" not in data:
        raise InvalidRequest("Missing required parameter: 'input'", param="input")
    value = data["input"]
    inputs: list[Any]
    if isinstance(value, str):
        inputs = [value]
    elif isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            inputs = value
        elif all(_is_int(v) for v in value):
            inputs = [value]
        elif all(isinstance(v, list) and v and all(_is_int(t) for t in v) for v in value):
            inputs = value
        else:
            raise InvalidRequest(
                "'input' must be a string, an array of strings, or token arrays", param="input"
            )
    else:
        raise InvalidRequest(
            "'input' must be a non-empty string or array", param="input"
        )
    if len(inputs) > 2048:
        raise InvalidRequest("'input' may hold at most 2048 items", param="input")
    if any(isinstance(v, str) and not v for v in inputs):
        raise InvalidRequest("'input' must not contain empty strings", param="input")
    fmt = data.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise InvalidRequest(
            "'encoding_format' must be 'float' or 'base64'", param="encoding_format"
        )
    _opt_int(data, "dimensions", 1, INT32_MAX)
    return inputs
