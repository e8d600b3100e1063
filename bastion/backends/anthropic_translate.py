"""Pure translation between OpenAI chat completions and Anthropic's Messages API.

No I/O here: the backend (:mod:`bastion.backends.anthropic`) sends what
:func:`to_anthropic_request` builds, turns a reply with :func:`to_openai_completion`, and
feeds each streamed Anthropic event to a :class:`StreamTranslator`, which returns the
OpenAI ``chat.completion.chunk`` payloads to send for it (never holding one back).

Wire formats: https://docs.anthropic.com/en/api/messages and
https://docs.anthropic.com/en/api/messages-streaming.
"""

from __future__ import annotations

from typing import Any

import orjson

from bastion.errors import InvalidRequest

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_TOOL_CHOICES = {"auto": "auto", "none": "none", "required": "any"}
_IGNORED_FORMATS = (None, "text")


class AnthropicStreamError(Exception):
    """The upstream sent an ``error`` event (or something unreadable) mid-stream."""


# ---------------------------------------------------------------------------- request
def to_anthropic_request(
    body: dict[str, Any], upstream_model: str, max_tokens_default: int
) -> dict[str, Any]:
    """An OpenAI chat request (already checked by bastion.protocol) as a Messages request.

    Raises InvalidRequest for what Anthropic cannot express."""
    system, messages = _translate_messages(body["messages"])
    out: dict[str, Any] = {"model": upstream_model}
    if system:
        out["system"] = system
    out["messages"] = messages
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    out["max_tokens"] = max_tokens if max_tokens is not None else max_tokens_default
    temperature = body.get("temperature")
    if temperature is not None:
        out["temperature"] = min(float(temperature), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if isinstance(body.get("top_k"), int):  # an Anthropic parameter some clients send
        out["top_k"] = body["top_k"]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [s for s in stop if isinstance(s, str)]
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("This model supports only n=1", param="n")
    if body.get("logprobs"):
        raise InvalidRequest("This model does not return logprobs", param="logprobs")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in _IGNORED_FORMATS:
        raise InvalidRequest(
            f"response_format {fmt.get('type')!r} is not supported by this model",
            param="response_format",
        )
    tools = body.get("tools")
    if tools:
        out["tools"] = [_translate_tool(tool, i) for i, tool in enumerate(tools)]
    choice = _translate_tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None and tools:
        out["tool_choice"] = choice
    if body.get("stream"):
        out["stream"] = True
    return out


def _translate_messages(
    messages: list[dict[str, Any]],
) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message["role"]
        if role in ("system", "developer"):
            system.append(_plain_text(message.get("content"), i))
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), i)
        elif role == "assistant":
            blocks = _assistant_blocks(message, i)
        elif role == "tool":
            role = "user"
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": message["tool_call_id"],
                    "content": _plain_text(message.get("content"), i),
                }
            ]
        else:
            raise InvalidRequest(
                f"'messages[{i}].role' {role!r} is not supported by this model; use 'tool'",
                param=f"messages[{i}].role",
            )
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    if not out:
        raise InvalidRequest(
            "'messages' must contain at least one non-empty user or assistant message",
            param="messages",
        )
    return "\n\n".join(s for s in system if s), out


def _plain_text(content: Any, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text":
            raise InvalidRequest(
                f"'messages[{i}].content' may only contain text parts for this role",
                param=f"messages[{i}].content",
            )
        texts.append(str(part.get("text", "")))
    return "".join(texts)


def _content_blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if isinstance(text, str) and text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part, i))
        else:
            raise InvalidRequest(
                f"content part type {kind!r} in 'messages[{i}]' is not supported by this model",
                param=f"messages[{i}].content",
            )
    return blocks


def _image_block(part: dict[str, Any], i: int) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        if media_type.startswith("image/") and data:
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data},
            }
    raise InvalidRequest(
        f"'messages[{i}]': only base64 data: URLs are supported for images by this model",
        param=f"messages[{i}].content",
    )


def _assistant_blocks(message: dict[str, Any], i: int) -> list[dict[str, Any]]:
    text = _plain_text(message.get("content"), i)
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest(
            f"'messages[{i}].tool_calls' must be an array", param=f"messages[{i}].tool_calls"
        )
    for j, call in enumerate(calls):
        param = f"messages[{i}].tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(f"'{param}.function.name' is required", param=param)
        if not isinstance(call.get("id"), str):
            raise InvalidRequest(f"'{param}.id' is required", param=param)
        raw = fn.get("arguments") or "{}"
        try:
            arguments = orjson.loads(raw) if isinstance(raw, str) else raw
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            raise InvalidRequest(
                f"'{param}.function.arguments' must be a JSON object", param=param
            )
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": fn["name"], "input": arguments}
        )
    return blocks


def _translate_tool(tool: Any, i: int) -> dict[str, Any]:
    fn = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(fn, dict) or tool.get("type", "function") != "function":
        raise InvalidRequest(f"'tools[{i}]' must be a function tool", param=f"tools[{i}]")
    if not isinstance(fn.get("name"), str) or not fn["name"]:
        raise InvalidRequest(f"'tools[{i}].function.name' is required", param=f"tools[{i}]")
    out: dict[str, Any] = {"name": fn["name"]}
    if isinstance(fn.get("description"), str):
        out["description"] = fn["description"]
    schema = fn.get("parameters")
    out["input_schema"] = schema if isinstance(schema, dict) else {
        "type": "object",
        "properties": {},
    }
    return out


def _translate_tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        return {"type": _TOOL_CHOICES[choice]}
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return {"type": "tool", "name": fn["name"]}
    raise InvalidRequest(
        "'tool_choice' must be 'auto', 'none', 'required' or a function", param="tool_choice"
    )


# ---------------------------------------------------------------------------- response
def to_openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage as OpenAI usage: cached input tokens count as prompt tokens."""
    cached = _int(usage.get("cache_read_input_tokens"))
    prompt = _int(usage.get("input_tokens")) + _int(usage.get("cache_creation_input_tokens"))
    prompt += cached
    completion = _int(usage.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _index(event: dict[str, Any], default: int) -> int:
    value = event.get("index")
    return value if isinstance(value, int) else default


def finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(str(stop_reason), "stop")


def to_openai_completion(message: dict[str, Any], model: str, created: int) -> dict[str, Any]:
    """An Anthropic ``message`` object as an OpenAI ``chat.completion``."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
    }
    if calls:
        reply["tool_calls"] = calls
    usage = message.get("usage")
    return {
        "id": _completion_id(message.get("id")),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason(message.get("stop_reason")) or "stop",
            }
        ],
        "usage": to_openai_usage(usage if isinstance(usage, dict) else {}),
    }


def _completion_id(message_id: Any) -> str:
    return f"chatcmpl-{message_id}" if isinstance(message_id, str) else "chatcmpl-anthropic"


# ---------------------------------------------------------------------------- stream
class StreamTranslator:
    """Turns Anthropic stream events, one at a time, into OpenAI chunk payloads."""

    def __init__(self, model: str, created: int, include_usage: bool) -> None:
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.id = "chatcmpl-anthropic"
        self.usage: dict[str, Any] = {}
        self.finished = False  # message_stop seen
        self.has_content = False  # any text or tool call delta sent
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index

    def openai_usage(self) -> dict[str, Any]:
        return to_openai_usage(self.usage)

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The OpenAI chunks for one Anthropic event. Raises AnthropicStreamError."""
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "message_start":
            message = event.get("message") or {}
            if isinstance(message.get("id"), str):
                self.id = _completion_id(message["id"])
            self._add_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "message_delta":
            self._add_usage(event.get("usage"))
            delta = event.get("delta") or {}
            reason = finish_reason(delta.get("stop_reason"))
            return [self._chunk({}, reason)] if reason is not None else []
        if kind == "message_stop":
            self.finished = True
            if self.include_usage:
                return [self._envelope([], usage=self.openai_usage())]
            return []
        if kind == "error":
            error = event.get("error") or {}
            raise AnthropicStreamError(
                f"{error.get('type', 'error')}: {error.get('message', 'unknown error')}"
            )
        return []  # ping, content_block_stop, and event types added later

    def _block_start(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        block = event.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            self.has_content = True
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        index = len(self._tools)
        self._tools[_index(event, index)] = index
        self.has_content = True
        call = {
            "index": index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            self.has_content = True
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "input_json_delta":
            fragment = delta.get("partial_json") or ""
            index = self._tools.get(_index(event, -1))
            if not fragment or index is None:
                return []
            call = {"index": index, "function": {"arguments": fragment}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking_delta, signature_delta, citations_delta: not in OpenAI's format

    def _add_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            # message_delta's counts are cumulative: later values replace earlier ones
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return self._envelope([choice])

    def _envelope(self, choices: list[Any], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
