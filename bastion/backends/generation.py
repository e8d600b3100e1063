"""Shared pieces of in-process generation: the hand-off from a worker thread to the event
loop, chat-template handling, and assembling a non-streamed response from stream chunks.

A generator (the serial llama-cpp-python path, or the batched engine) fills a
:class:`GenerationRun`: it puts chunk dicts shaped like llama-cpp-python's stream chunks
(``chat.completion.chunk`` / ``text_completion``) on ``queue`` with
``loop.call_soon_threadsafe``, a :class:`~bastion.errors.BastionError` if it fails, sets
``usage`` and finally puts :data:`END`. It stops early when ``cancel`` is set.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import orjson

from bastion.errors import InvalidRequest

END = object()


class GenerationRun:
    """One generation: its chunk queue, cancel flag and final usage."""

    __slots__ = ("cancel", "loop", "queue", "usage")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancel = threading.Event()
        self.usage: dict[str, int] = {}


def chat_formatter(llm: Any) -> Any:
    """The formatter llama-cpp-python uses for this model's chat prompts (for token counts)."""
    from llama_cpp import llama_chat_format

    fmt = llm.chat_format or ""
    if fmt.startswith("chat_template."):
        key = "tokenizer.chat_template"
        if fmt != "chat_template.default":
            key += "." + fmt[len("chat_template.") :]
        template = llm.metadata.get(key)
        if template is None:
            return None
        eos_id, bos_id = llm.token_eos(), llm.token_bos()
        return llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=llm._model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=llm._model.token_get_text(bos_id) if bos_id != -1 else "",
            stop_token_ids=[eos_id],
        )
    return getattr(llama_chat_format, "format_" + fmt.replace("-", "_"), None)


def assemble_chat(
    chunks: list[dict[str, Any]], model: str, usage: dict[str, int]
) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` for a run's chunks, as OpenAI's SDK assembles
    a stream: content joined, ``delta.tool_calls`` merged by index (see
    :func:`merge_tool_call`). A reply of tool calls only has ``content: null``."""
    content: list[str] = []
    logprobs: list[Any] = []
    calls: dict[int, dict[str, Any]] = {}
    finish_reason = None
    for chunk in chunks:
        for choice in chunk.get("choices", ()):
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                merge_tool_call(calls, call)
            lp = choice.get("logprobs")
            if lp and lp.get("content"):
                logprobs.extend(lp["content"])
            finish_reason = choice.get("finish_reason") or finish_reason
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(content) if content or not calls else None,
    }
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
        if finish_reason in (None, "stop"):
            finish_reason = "tool_calls"
    first = chunks[0] if chunks else {}
    return {
        "id": first.get("id", f"chatcmpl-{uuid.uuid4().hex}"),
        "object": "chat.completion",
        "created": first.get("created", int(time.time())),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": {"content": logprobs, "refusal": None} if logprobs else None,
                "finish_reason": finish_reason or "stop",
            }
        ],
        "usage": usage,
    }


def merge_tool_call(calls: dict[int, dict[str, Any]], delta: Any) -> None:
    """Folds one ``delta.tool_calls`` entry into ``calls`` (keyed by the entry's index):
    the first id, type and name seen are kept, argument fragments are concatenated."""
    if not isinstance(delta, dict):
        return
    index = delta.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        index = 0  # OpenAI always sends one; a lone call without it is call 0
    current = calls.setdefault(
        index, {"id": None, "type": "function", "function": {"name": None, "arguments": ""}}
    )
    if delta.get("id") and not current["id"]:
        current["id"] = delta["id"]
    if isinstance(delta.get("type"), str):
        current["type"] = delta["type"]
    function = delta.get("function")
    if isinstance(function, dict):
        if function.get("name") and not current["function"]["name"]:
            current["function"]["name"] = function["name"]
        if isinstance(function.get("arguments"), str):
            current["function"]["arguments"] += function["arguments"]


def assemble_completion(
    chunks: list[dict[str, Any]], model: str, usage: dict[str, int]
) -> dict[str, Any]:
    text: list[str] = []
    merged: dict[str, list[Any]] = {}
    finish_reason = None
    for chunk in chunks:
        for choice in chunk.get("choices", ()):
            text.append(choice.get("text") or "")
            lp = choice.get("logprobs")
            if lp:
                for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
                    merged.setdefault(key, []).extend(lp.get(key) or [])
            finish_reason = choice.get("finish_reason") or finish_reason
    first = chunks[0] if chunks else {}
    return {
        "id": first.get("id", f"cmpl-{uuid.uuid4().hex}"),
        "object": "text_completion",
        "created": first.get("created", int(time.time())),
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": "".join(text),
                "logprobs": merged or None,
                "finish_reason": finish_reason or "stop",
            }
        ],
        "usage": usage,
    }


def text_of(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if part.get("type") != "text":
            raise InvalidRequest(
                f"The embedded model takes text only; content part type {part.get('type')!r} "
                "is not supported",
                param=f"messages[{index}].content",
            )
        parts.append(part["text"])
    return "".join(parts)


def normalise_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain-text messages with the roles chat templates know (system/user/assistant/tool)."""
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message["role"]
        text = text_of(message.get("content"), i)
        if role == "assistant" and message.get("tool_calls"):
            calls = orjson.dumps(message["tool_calls"]).decode()
            text = f"{text}\n{calls}" if text else calls
        role = {"developer": "system", "function": "tool"}.get(role, role)
        out.append({"role": role, "content": text})
    return out


def has_content(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices", ()):
        delta = choice.get("delta")
        if delta is not None:
            if delta.get("content") or delta.get("tool_calls"):
                return True
        elif choice.get("text"):
            return True
    return False
