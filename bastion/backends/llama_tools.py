"""Turns the embedded model's grammar-forced call text into OpenAI ``tool_calls``.

The grammar from :func:`bastion.backends.llama_grammar.tool_plan` makes the model write
``{"name": "<tool>", "arguments": <object>}`` with a literal wrapper. :class:`ToolCallStream`
reads that text as it is generated: once the wrapper's head names a tool it emits the first
``delta.tool_calls`` entry (id, type, name, empty arguments), then the arguments as they
grow, holding back only a tail that may be the wrapper's closing brace.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from bastion.backends.llama_grammar import TOOL_INFIX, TOOL_PREFIX

_TAIL = re.compile(r"\s*\}?\s*$")


class ToolCallStream:
    def __init__(self, names: list[str]) -> None:
        self._heads = {TOOL_PREFIX + name + TOOL_INFIX: name for name in names}
        self.id = "call_" + uuid.uuid4().hex[:24]
        self.name: str | None = None
        self._buf = ""  # text not yet turned into deltas
        self.arguments = ""  # arguments released so far

    def push(self, text: str) -> list[dict[str, Any]]:
        """The ``tool_calls`` delta entries this piece of generated text releases."""
        self._buf += text
        out: list[dict[str, Any]] = []
        if self.name is None:
            for head, name in self._heads.items():
                if self._buf.startswith(head):
                    self.name = name
                    self._buf = self._buf[len(head) :]
                    out.append(
                        {
                            "index": 0,
                            "id": self.id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    )
                    break
            else:
                return out
        match = _TAIL.search(self._buf)
        cut = match.start() if match else len(self._buf)
        if cut:
            entry = self._args(self._buf[:cut])
            self._buf = self._buf[cut:]
            if out:  # one entry per delta: the head carries the first arguments too
                out[0]["function"]["arguments"] = entry["function"]["arguments"]
            else:
                out.append(entry)
        return out

    def finish(self, complete: bool) -> list[dict[str, Any]]:
        """Entries for what is still held: a complete call drops the wrapper's ``}``."""
        if self.name is None:
            return []
        rest, self._buf = self._buf, ""
        if complete:
            rest = rest.rstrip()
            rest = rest[:-1] if rest.endswith("}") else rest
            rest = rest.rstrip()
        return [self._args(rest)] if rest else []

    def _args(self, text: str) -> dict[str, Any]:
        self.arguments += text
        return {"index": 0, "function": {"arguments": text}}

    def message_calls(self) -> list[dict[str, Any]]:
        """The whole call, as a non-streamed message's ``tool_calls``."""
        if self.name is None:
            return []
        return [
            {
                "id": self.id,
                "type": "function",
                "function": {"name": self.name, "arguments": self.arguments},
            }
        ]

    def convert(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """One model chunk as a tool-call chunk (None when it releases nothing)."""
        choices = chunk.get("choices") or []
        if not choices:
            return chunk
        choice = choices[0]
        delta = choice.get("delta") or {}
        reason = choice.get("finish_reason")
        calls = self.push(delta.get("content") or "")
        if reason is not None:
            calls += self.finish(reason == "stop")
            if len(calls) > 1:  # one entry per delta
                tail = "".join(c["function"]["arguments"] for c in calls[1:])
                calls[0]["function"]["arguments"] += tail
                del calls[1:]
            if reason == "stop" and self.name is not None:
                reason = "tool_calls"
        new_delta: dict[str, Any] = {}
        if "role" in delta:
            new_delta["role"] = delta["role"]
            new_delta["content"] = None
        if calls:
            new_delta["tool_calls"] = calls
        if not new_delta and reason is None:
            return None
        out = dict(chunk)
        out["choices"] = [
            {"index": 0, "delta": new_delta, "logprobs": None, "finish_reason": reason}
        ]
        return out
