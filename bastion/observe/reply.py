"""What a response said, from the body sent or a stream's events: one parser for the trace
record and the OpenTelemetry export (each renders it in its own schema).

A stream is reassembled per choice index: content and legacy-completion text deltas are
joined, tool-call deltas merged by their own index (id and name from the first delta that
has them, argument fragments concatenated), the last finish reason kept. The model, the
response id and usage come from whichever event carries them (usage: the last one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from bastion.observe.confidence import from_completion
from bastion.protocol.sse import event_json, split_events


@dataclass(slots=True)
class Choice:
    index: int
    role: str = "assistant"
    content: str | None = None  # message content, or a legacy completion's text
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # OpenAI's shape
    refusal: str | None = None
    finish_reason: str | None = None
    logprobs: list[dict[str, Any]] | None = None  # per token, chat's shape (when returned)


@dataclass(slots=True)
class Reply:
    id: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    chat: bool = False  # messages (chat) rather than text (legacy completions)
    choices: list[Choice] = field(default_factory=list)
    embeddings: tuple[int, int] | None = None  # (vectors, dimensions) of an embeddings reply
    error: bool = False  # the body was an error envelope

    @property
    def finish_reasons(self) -> list[str]:
        return [c.finish_reason for c in self.choices if c.finish_reason]


def parse(response_body: bytes | None, chunks: list[bytes] | None) -> Reply:
    """The reply in ``response_body`` (a JSON body) or else in ``chunks`` (SSE bytes)."""
    reply = Reply()
    if response_body is not None:
        try:
            data = orjson.loads(response_body)
        except orjson.JSONDecodeError:
            return reply
        if isinstance(data, dict):
            if "error" in data:
                reply.error = True
            else:
                _from_body(reply, data)
    elif chunks:
        _from_stream(reply, chunks)
    return reply


def _from_body(reply: Reply, data: dict[str, Any]) -> None:
    _identify(reply, data)
    if data.get("object") == "list":  # embeddings: what came back, not the vectors
        items = data.get("data") or []
        first = items[0] if items and isinstance(items[0], dict) else {}
        vector = first.get("embedding")
        reply.embeddings = (len(items), len(vector) if isinstance(vector, list | str) else 0)
        return
    for position, choice in enumerate(data.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        index = choice["index"] if _is_int(choice.get("index")) else position
        out = Choice(index, finish_reason=_str(choice.get("finish_reason")))
        message = choice.get("message")
        if isinstance(message, dict):
            reply.chat = True
            out.role = _str(message.get("role")) or "assistant"
            out.content = _str(message.get("content"))
            out.refusal = _str(message.get("refusal"))
            calls = message.get("tool_calls")
            out.tool_calls = [c for c in calls if isinstance(c, dict)] if isinstance(
                calls, list) else []
        else:
            out.content = _str(choice.get("text"))
        out.logprobs = _tokens(choice.get("logprobs")) or None
        reply.choices.append(out)


def _from_stream(reply: Reply, chunks: list[bytes]) -> None:
    texts: dict[int, list[str]] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
    finishes: dict[int, str] = {}
    logprobs: dict[int, list[dict[str, Any]]] = {}
    seen: set[int] = set()
    for event in events(chunks):
        _identify(reply, event)
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice["index"] if _is_int(choice.get("index")) else 0
            seen.add(index)
            if isinstance(choice.get("finish_reason"), str):
                finishes[index] = choice["finish_reason"]
            delta = choice.get("delta")
            if isinstance(delta, dict):
                reply.chat = True
                piece = delta.get("content")
                for call in delta.get("tool_calls") or []:
                    _merge_call(calls.setdefault(index, {}), call)
            else:
                piece = choice.get("text")
            if isinstance(piece, str):
                texts.setdefault(index, []).append(piece)
            tokens = _tokens(choice.get("logprobs"))
            if tokens:
                logprobs.setdefault(index, []).extend(tokens)
    for index in sorted(seen):
        merged = calls.get(index, {})
        text = texts.get(index)
        reply.choices.append(Choice(
            index, content="".join(text) if text is not None else None,
            tool_calls=[merged[i] for i in sorted(merged)],
            finish_reason=finishes.get(index), logprobs=logprobs.get(index),
        ))


def events(chunks: Iterable[bytes]) -> Iterable[dict[str, Any]]:
    """The JSON objects of an SSE byte stream's events (not ``[DONE]``), however the
    stream was cut into chunks."""
    for event in split_events(chunks):
        parsed = event_json(event)
        if parsed is not None:
            yield parsed


def _identify(reply: Reply, data: dict[str, Any]) -> None:
    if isinstance(data.get("id"), str):
        reply.id = reply.id or data["id"]
    if isinstance(data.get("model"), str):
        reply.model = reply.model or data["model"]
    if isinstance(data.get("usage"), dict):
        reply.usage = data["usage"]


def _merge_call(calls: dict[int, dict[str, Any]], delta: Any) -> None:
    if not isinstance(delta, dict):
        return
    index = delta["index"] if _is_int(delta.get("index")) else 0
    current = calls.setdefault(index, {"type": "function", "function": {"arguments": ""}})
    if delta.get("id"):
        current["id"] = delta["id"]
    function = delta.get("function")
    if isinstance(function, dict):
        if function.get("name"):
            current["function"]["name"] = function["name"]
        if isinstance(function.get("arguments"), str):
            current["function"]["arguments"] += function["arguments"]


def _tokens(logprobs: Any) -> list[dict[str, Any]]:
    """A choice's ``logprobs`` as a list of tokens: chat's ``{"content": [...]}``, or a
    legacy completion's parallel lists."""
    if not isinstance(logprobs, dict):
        return []
    content = logprobs.get("content")
    if isinstance(content, list):
        return [t for t in content if isinstance(t, dict)]
    return from_completion(logprobs)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
