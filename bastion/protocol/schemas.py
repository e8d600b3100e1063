"""JSON Schemas (2020-12, as OpenAPI 3.1 takes them) of the OpenAI wire objects, and the
descriptions of the ``/v1`` operations for ``/openapi.json`` (:mod:`bastion.api.openapi`).

The request schemas say what :mod:`bastion.protocol.requests` checks, with its bounds (a
change there belongs here too; ``tests/integration/test_schemathesis.py`` sends what these
allow and what they refuse); fields Bastion passes upstream unchecked are described as
OpenAI describes them. Every object takes further properties: they reach the upstream.
"""

from __future__ import annotations

from typing import Any

from bastion.api.openapi import ERROR, Reply, Schema, Spec, listing, nullable, obj
from bastion.protocol.requests import INT32_MAX, INT64_MAX, INT64_MIN

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}


def _int(low: int, high: int, description: str = "") -> Schema:
    out: Schema = {"type": ["integer", "null"], "minimum": low, "maximum": high}
    return {**out, "description": description} if description else out


def _number(low: float, high: float) -> Schema:
    return {"type": ["number", "null"], "minimum": low, "maximum": high}


# ---------------------------------------------------------------------- requests
_TEXT_PART = obj({"type": {"const": "text"}, "text": STRING}, ("type", "text"))
_IMAGE_PART = obj({"type": {"const": "image_url"}, "image_url": obj(
    {"url": STRING, "detail": {"enum": ["auto", "low", "high"]}}, ("url",))},
    ("type", "image_url"))
_OTHER_PART = obj({"type": {"type": "string", "not": {"enum": ["text", "image_url"]}}},
                  ("type",), "Another content part (input_audio, file...), passed upstream")
_PARTS: Schema = {"type": "array", "items": {"anyOf": [_TEXT_PART, _IMAGE_PART,
                                                       _OTHER_PART]}}
_CONTENT: Schema = {"anyOf": [STRING, _PARTS]}
_TOOL_CALL = obj({
    "id": STRING,
    "type": {"const": "function"},
    "function": obj({"name": STRING, "arguments": {
        "type": "string", "description": "The arguments as a JSON text"}},
        ("name", "arguments")),
}, ("id", "type", "function"))


def _message(roles: list[str], content: Schema, required: tuple[str, ...] = ("role",),
             **more: Schema) -> Schema:
    return obj({"role": {"enum": roles}, "content": content, "name": STRING, **more},
               required)


MESSAGE: Schema = {"oneOf": [
    _message(["system", "developer", "user"], _CONTENT, ("role", "content")),
    _message(["assistant"], nullable(_CONTENT), tool_calls={
        "type": "array", "items": _TOOL_CALL}, refusal=nullable(STRING)),
    _message(["tool"], _CONTENT, ("role", "content", "tool_call_id"),
             tool_call_id=STRING),
    _message(["function"], nullable(STRING)),
]}
_FUNCTION = obj({
    "name": {"type": "string", "maxLength": 64},
    "description": STRING,
    "parameters": {"type": "object", "description": "The arguments' JSON Schema"},
    "strict": nullable(BOOLEAN),
}, ("name",))
TOOL = obj({"type": {"const": "function"}, "function": _FUNCTION}, ("type", "function"))
TOOL_CHOICE: Schema = {"anyOf": [
    {"enum": ["none", "auto", "required"]},
    obj({"type": {"const": "function"}, "function": obj({"name": STRING}, ("name",))},
        ("type", "function")),
]}
RESPONSE_FORMAT: Schema = {"anyOf": [
    obj({"type": {"enum": ["text", "json_object"]}}, ("type",)),
    obj({"type": {"const": "json_schema"}, "json_schema": obj({
        "name": STRING, "description": STRING,
        "schema": {"type": "object", "description": "The answer's JSON Schema"},
        "strict": nullable(BOOLEAN)}, ("name",))}, ("type",)),
    {"type": "null"},
]}
_STOP: Schema = {"anyOf": [STRING, {"type": "array", "items": STRING, "maxItems": 4},
                           {"type": "null"}]}
_COMMON: dict[str, Schema] = {
    "model": {"type": "string", "minLength": 1, "description": "A configured model"},
    "stream": nullable(BOOLEAN),
    "stream_options": nullable(obj({"include_usage": nullable(BOOLEAN)})),
    "max_tokens": _int(1, INT32_MAX),
    "n": _int(1, 128),
    "seed": _int(INT64_MIN, INT64_MAX),
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "stop": _STOP,
    "logit_bias": nullable({
        "type": "object", "propertyNames": {"pattern": "^[0-9]+$"},
        "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
        "description": "Token ids (as strings) to biases"}),
    "user": nullable(STRING),
    "metadata": nullable({"type": "object", "additionalProperties": STRING,
                          "description": "metadata.session_id names the trace's session"}),
}
CHAT_REQUEST = obj({
    **_COMMON,
    "messages": {"type": "array", "minItems": 1, "items": MESSAGE},
    "max_completion_tokens": _int(1, INT32_MAX),
    "logprobs": nullable(BOOLEAN),
    "top_logprobs": _int(0, 20, "Needs logprobs: true"),
    "response_format": RESPONSE_FORMAT,
    "tools": nullable({"type": "array", "items": TOOL}),
    "tool_choice": TOOL_CHOICE,
    "parallel_tool_calls": BOOLEAN,
    "functions": nullable({"type": "array", "items": _FUNCTION}),
}, ("model", "messages"), "A chat completion request",
    # top_logprobs needs logprobs
    **{"if": {"properties": {"top_logprobs": INTEGER}, "required": ["top_logprobs"]},
       "then": {"properties": {"logprobs": {"const": True}}, "required": ["logprobs"]}})
_PROMPT: Schema = {"anyOf": [STRING, {"type": "array", "items": STRING, "minItems": 1}]}
COMPLETION_REQUEST = obj({
    **_COMMON,
    "prompt": _PROMPT,
    "logprobs": _int(0, 5),
    "echo": nullable(BOOLEAN),
    "suffix": nullable(STRING),
}, ("model", "prompt"), "A (legacy) text completion request")
_TEXT: Schema = {"type": "string", "minLength": 1}
_TOKENS: Schema = {"type": "array", "items": INTEGER, "minItems": 1}
EMBEDDING_REQUEST = obj({
    "model": _COMMON["model"],
    "input": {"anyOf": [
        _TEXT,
        {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": 2048},
        _TOKENS,
        {"type": "array", "items": _TOKENS, "minItems": 1, "maxItems": 2048},
    ]},
    "encoding_format": {"enum": ["float", "base64", None]},
    "dimensions": _int(1, INT32_MAX),
    "user": STRING,
}, ("model", "input"), "An embeddings request")

# ---------------------------------------------------------------------- responses
_USAGE = obj({"prompt_tokens": INTEGER, "completion_tokens": INTEGER,
              "total_tokens": INTEGER}, ("prompt_tokens", "completion_tokens",
                                         "total_tokens"))
_FINISH = nullable({"type": "string", "description": "stop, length, tool_calls, "
                                                     "content_filter, function_call"})
_ANSWER = obj({
    "role": {"const": "assistant"},
    "content": nullable(STRING),
    "refusal": nullable(STRING),
    "tool_calls": nullable({"type": "array", "items": _TOOL_CALL}),
}, ("role",))
CHAT_COMPLETION = obj({
    "id": STRING,
    "object": {"const": "chat.completion"},
    "created": INTEGER,
    "model": STRING,
    "choices": {"type": "array", "items": obj({
        "index": INTEGER, "message": _ANSWER, "finish_reason": _FINISH,
        "logprobs": nullable({"type": "object"})}, ("index", "message", "finish_reason"))},
    "usage": nullable(_USAGE),
    "system_fingerprint": nullable(STRING),
}, ("id", "object", "created", "model", "choices"), "A chat completion")
_DELTA = obj({
    "role": {"const": "assistant"},
    "content": nullable(STRING),
    "refusal": nullable(STRING),
    "tool_calls": {"type": "array", "items": obj({
        "index": INTEGER, "id": STRING, "type": {"const": "function"},
        "function": obj({"name": STRING, "arguments": STRING})}, ("index",))},
})
CHAT_CHUNK = obj({
    "id": STRING,
    "object": {"const": "chat.completion.chunk"},
    "created": INTEGER,
    "model": STRING,
    "choices": {"type": "array", "items": obj({
        "index": INTEGER, "delta": _DELTA, "finish_reason": _FINISH,
        "logprobs": nullable({"type": "object"})}, ("index", "delta"))},
    "usage": nullable(_USAGE),
}, ("id", "object", "created", "model", "choices"),
    "One event of a streamed chat completion (data: <chunk>); the last one carries usage "
    "when stream_options.include_usage is true, and no choices")
TEXT_COMPLETION = obj({
    "id": STRING,
    "object": {"const": "text_completion"},
    "created": INTEGER,
    "model": STRING,
    "choices": {"type": "array", "items": obj({
        "text": STRING, "index": INTEGER, "finish_reason": _FINISH,
        "logprobs": nullable({"type": "object"})}, ("text", "index", "finish_reason"))},
    "usage": nullable(_USAGE),
}, ("id", "object", "created", "model", "choices"),
    "A text completion (a streamed one sends these as events)")
EMBEDDING_LIST = listing(obj({
    "object": {"const": "embedding"},
    "index": INTEGER,
    "embedding": {"anyOf": [{"type": "array", "items": NUMBER},
                            {"type": "string", "description": "base64 of float32s"}]},
}, ("object", "index", "embedding")), "Embeddings, one per input", model=STRING,
    usage=obj({"prompt_tokens": INTEGER, "total_tokens": INTEGER},
              ("prompt_tokens", "total_tokens")))
MODEL = obj({
    "id": STRING,
    "object": {"const": "model"},
    "created": INTEGER,
    "owned_by": STRING,
    "meta": {"type": "object", "description": "The backend's kind, its upstream"},
}, ("id", "object", "created", "owned_by"), "A configured model (an alias)")
MODEL_LIST = listing(MODEL, "The models this key may use")


def event_stream(chunk: Schema, name: str) -> Schema:
    """One server-sent event of a stream (OpenAPI before 3.2 has the media type's schema
    describe each event: its ``data``, ``event``, ``id`` fields)."""
    return obj({"event": STRING, "id": STRING, "data": {"anyOf": [
        {"const": "[DONE]", "description": "The end of the stream"},
        {"type": "string", "contentMediaType": "application/json",
         "contentSchema": {"anyOf": [chunk, ERROR]}},
    ]}}, ("data",), f"Server-sent events: `data: <{name}>` each, then `data: [DONE]`. A "
                    "failure after the stream started ends it with `data: {\"error\": "
                    "{...}}` (the error envelope)")


# ---------------------------------------------------------------------- operations
_INFERENCE_ERRORS: dict[int | str, str] = {
    400: "Invalid JSON or field (param names it); input blocked by a guard "
         "(content_blocked)",
    402: "A budget is spent (budget_exceeded): the key's, its team's or its user's",
    403: "The key may not use this model (model_not_allowed), or its role may not infer",
    404: "No such model (model_not_found)",
    429: "The key's rate limit, a tenant's queue bound, or the upstream's (Retry-After)",
    502: "The upstream failed (upstream_error, with its message)",
    503: "No deployment can take it now (overloaded, Retry-After), a guard failed "
         "(guard_error), or virtual keys are not loaded",
    504: "The upstream did not answer in time (upstream_timeout), or x-bastion-timeout "
         "ran out",
    "4XX": "The upstream refused the request: its status passes through "
           "(upstream_rejected)",
}


def _inference(summary: str, request: Schema, reply: Reply, description: str) -> Spec:
    return Spec(summary, "openai", {200: reply}, _INFERENCE_ERRORS, request,
                description=description)


CHAT_SPEC = _inference(
    "Create a chat completion", CHAT_REQUEST,
    Reply("The completion (JSON), or with stream: true its chunks as server-sent events",
          CHAT_COMPLETION,
          {"text/event-stream": event_stream(CHAT_CHUNK, "chat.completion.chunk")}),
    "OpenAI's chat completions. Unknown fields are kept and passed upstream. "
    "x-bastion-session (or metadata.session_id) names the trace's session.")
COMPLETION_SPEC = _inference(
    "Create a text completion", COMPLETION_REQUEST,
    Reply("The completion (JSON), or with stream: true its pieces as server-sent events",
          TEXT_COMPLETION,
          {"text/event-stream": event_stream(TEXT_COMPLETION, "text_completion")}),
    "OpenAI's legacy completions.")
EMBEDDING_SPEC = _inference(
    "Create embeddings", EMBEDDING_REQUEST, Reply("One embedding per input", EMBEDDING_LIST),
    "OpenAI's embeddings: float arrays, or base64 with encoding_format: base64.")
SCHEMAS: dict[str, Any] = {
    "ChatCompletion": CHAT_COMPLETION, "ChatCompletionChunk": CHAT_CHUNK,
    "TextCompletion": TEXT_COMPLETION, "EmbeddingList": EMBEDDING_LIST, "Model": MODEL,
}
