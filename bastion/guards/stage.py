"""The guards on the request path: which texts of a request and of its answer are scanned,
and how the engine's verdicts change them.

Input (after parse + validate, before routing): each text of the request is scanned with
its source: chat messages by role (system/developer: ``system``, user: ``prompt``, tool:
``tool``, earlier assistant turns: ``completion``), a completion's ``prompt``, an
embedding's ``input`` (``document``). A block raises :class:`GuardBlocked` (400); redacted
and pseudonymized texts go upstream in a copy of the body (the client's body stays as it
was, for the trace's ``full`` mode).

Output: a complete answer is scanned per choice (content, and tool-call arguments get their
placeholders restored); a block replaces the content with the refusal and sets
``finish_reason: content_filter``. A stream is scanned in segments: text is held until a
sentence or line ends (or 400 characters), scanned with the output rules, then restored
and sent; a block ends the stream with a ``content_filter`` chunk.

A scanner that fails on a rule that fails closed (see :mod:`bastion.guards.engine`) gives
:class:`GuardFailed` (503 ``guard_error``) for a request or a complete answer, and an error
event for a stream; one that fails open lets the text through, flagged. With no output rules and
nothing pseudonymized, a stream is passed through untouched.

Scanning is CPU work (regexes, NER, a classifier); it runs in a small thread pool so the
event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from bastion.backends.base import sse_error
from bastion.context import RequestContext, Span
from bastion.errors import ClientError, ConfigError, ServerError
from bastion.guards.engine import SEVERITY, Decision, GuardEngine, Policy, Scanned, strongest
from bastion.guards.vault import StreamRestorer, restore
from bastion.protocol.sse import encode, event_json
from bastion.server.types import aclose

log = logging.getLogger("bastion.guards")
_SOURCES = {"system": "system", "developer": "system", "user": "prompt", "tool": "tool",
            "function": "tool", "assistant": "completion"}
_SEGMENT_END = re.compile(r"[.!?。\n][\"')\]]*\s")
_SEGMENT_MAX = 400


def vault_session(ctx: RequestContext) -> str:
    """The vault table a request's pseudonyms live in: its session's, within its
    authenticated principal (a session id is the client's word: without the key in it,
    anyone naming another's session could have its originals restored into their own
    answers), else the request's own."""
    if ctx.session:
        return f"key:{ctx.key_id or '-'}/session:{ctx.session}"
    return f"request:{ctx.trace_key}"


class GuardBlocked(ClientError):
    status = 400
    default_code = "content_blocked"


class GuardFailed(ServerError):
    """A scanner failed on a rule that fails closed: the text could not be checked."""

    status = 503
    default_code = "guard_error"


def _failed(policy: Policy, blocked: Decision, what: str) -> GuardFailed:
    return GuardFailed(
        f"Guard policy '{policy.name}' could not check {what}: its {blocked.scanner} "
        f"scanner failed and the rule fails closed (on_error: closed); this is a fault of "
        f"the gateway, reported in its log and metrics, not of the request")


class GuardStage:
    def __init__(self, engine: GuardEngine, refusal: str, threads: int = 2,
                 on_decision: Callable[[str, str, str | None], None] | None = None) -> None:
        self.engine = engine
        self.refusal = refusal
        # (scanner, action, error class or None), on the event loop: metrics
        self.on_decision = on_decision
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bastion-guard")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def policy_for(self, ctx: RequestContext, model: str | None = None) -> Policy | None:
        """The request's policy (``model``: the alias asked for, before routing sets it)."""
        return self.engine.resolve(key=ctx.key_id, team=ctx.team, tenant=ctx.claim.tenant or None,
                                   model=ctx.model or model, route=ctx.endpoint,
                                   own=ctx.principal.guard_policy)

    async def prepare(self, name: str) -> None:
        """Builds policy ``name`` off the event loop (its scanners may load models), for a
        key that names one nothing attaches; GuardFailed when it is not configured (any
        more): the key's requests are refused, never let through unguarded."""
        if name in self.engine.policies or name == "none":
            return
        try:
            await asyncio.to_thread(self.engine.policy, name)
        except ConfigError as exc:
            raise GuardFailed(f"This key's guard policy cannot be applied: {exc}") from None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ------------------------------------------------------------------ input
    async def check_input(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        """Scans the request; returns the body to send upstream (``body`` itself when
        nothing changed). Raises :class:`GuardBlocked`."""
        asked = body.get("model")
        policy = self.policy_for(ctx, asked if isinstance(asked, str) else None)
        if policy is None:
            return body
        ctx.guard_policy = policy.name
        started = time.perf_counter()
        new_body, decisions, blocked = await self._run(self._input, policy, ctx, body)
        self._record(ctx, "input_guards", started, policy, decisions)
        if blocked is not None and blocked.error is not None:
            raise _failed(policy, blocked, "the request")
        if blocked is not None:
            kinds = ", ".join(blocked.kinds)
            raise GuardBlocked(
                f"Request blocked by guard policy '{policy.name}': {blocked.scanner} "
                f"({kinds}) in {blocked.where or 'the request'}",
                param=blocked.where or None,
            )
        if new_body is not body:
            ctx.guarded_body = new_body
        sent: dict[str, Any] = new_body
        return sent

    def _input(self, policy: Policy, ctx: RequestContext, body: dict[str, Any]
               ) -> tuple[dict[str, Any], list[Decision], Decision | None]:
        session = vault_session(ctx)
        values = ctx.guard_values = ctx.guard_values or {}
        decisions: list[Decision] = []
        new_body = body
        schema = _json_schema(body)
        if schema is not None:
            values["json_schema"] = schema
        for where, source, text, put in _input_texts(body):
            if source == "system":
                values.setdefault("system_prompt", text)
            if not policy.input:
                continue
            scanned = self.engine.scan(policy, "input", text, source=source, where=where,
                                       session=session, values=values,
                                       request_id=ctx.request_id)
            decisions.extend(scanned.decisions)
            if scanned.blocked is not None:
                return body, decisions, scanned.blocked
            if scanned.text != text:
                if new_body is body:
                    new_body = _copy_body(body)
                put(new_body, scanned.text)
        if policy.uses("canary") is not None and ctx.operation == "chat":
            # planted after the input scan (a secrets rule must not redact the token)
            from bastion.guards.output.canary import new_canary, plant

            values["canary"] = new_canary()
            new_body = {**new_body, "messages": plant(new_body["messages"], values["canary"])}
        if any(d.action == "pseudonymize" for d in decisions):
            ctx.guard_session = session
        return new_body, decisions, None

    # ------------------------------------------------------------------ output
    def wants_output(self, ctx: RequestContext) -> bool:
        policy = self.engine.policies.get(ctx.guard_policy or "")
        return bool(ctx.guard_session) or bool(policy and policy.output)

    def _originals(self, ctx: RequestContext) -> dict[str, str]:
        return self.engine.vault.originals(ctx.guard_session) if ctx.guard_session else {}

    async def check_completion(self, ctx: RequestContext, body: bytes) -> tuple[bytes, str | None]:
        """The answer as the client gets it, and a violation detail for a one-shot re-ask
        (json_schema with ``reask``), if any."""
        started = time.perf_counter()
        policy = self.engine.policies.get(ctx.guard_policy or "")
        new, decisions, reask = await self._run(self._completion, policy, ctx, body)
        self._record(ctx, "output_guards", started, policy, decisions)
        failed = next((d for d in decisions if d.error is not None and d.action == "block"), None)
        if failed is not None and policy is not None:
            raise _failed(policy, failed, "the answer")
        return new, reask

    def _completion(self, policy: Policy | None, ctx: RequestContext, body: bytes
                    ) -> tuple[bytes, list[Decision], str | None]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body, [], None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            return body, [], None
        originals = self._originals(ctx)
        decisions: list[Decision] = []
        reask: str | None = None
        for i, choice in enumerate(data["choices"]):
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            holder, key = (message, "content") if isinstance(message, dict) else (choice, "text")
            text = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(text, str):
                if policy is not None and policy.output:
                    scanned = self.engine.scan(policy, "output", text, source="completion",
                                               where=f"choices[{i}]", values=ctx.guard_values,
                                               request_id=ctx.request_id)
                    decisions.extend(scanned.decisions)
                    if scanned.blocked is not None:
                        holder[key] = self.refusal
                        choice["finish_reason"] = "content_filter"
                        continue
                    text = scanned.text
                    rule = policy.uses("json_schema")
                    if rule is not None and rule.spec.reask and "json_schema" in scanned.violations:
                        reask = scanned.violations["json_schema"]
                holder[key] = restore(text, originals)
            if isinstance(message, dict) and originals:
                for call in message.get("tool_calls") or []:
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                        fn["arguments"] = restore(fn["arguments"], originals)
        if not decisions and not originals:
            return body, decisions, reask
        return orjson.dumps(data), decisions, reask

    def watch_stream(self, ctx: RequestContext, events: AsyncIterator[bytes]
                     ) -> AsyncIterator[bytes]:
        policy = self.engine.policies.get(ctx.guard_policy or "")
        return _GuardedStream(self, ctx, policy, events).run()

    # ------------------------------------------------------------------ records
    def _record(self, ctx: RequestContext, name: str, started: float, policy: Policy | None,
                decisions: list[Decision]) -> None:
        ended = time.perf_counter()
        ctx.spans.append(Span(name, started, ended, {
            "policy": policy.name if policy else None, "decisions": len(decisions)}))
        if not decisions:
            return
        if ctx.guards is None:
            ctx.guards = []
        ctx.guards.extend(d.as_dict() for d in decisions)
        if self.on_decision is not None:
            for d in decisions:
                self.on_decision(d.scanner, d.action, d.error)
        actions = [a for a in (ctx.guard_action, strongest(decisions)) if a]
        ctx.guard_action = max(actions, key=lambda a: SEVERITY.get(a, 0))


class _GuardedStream:
    """Per choice: text waits in ``held`` until a segment ends, is scanned (output rules),
    restored (pseudonyms) and sent as one content delta."""

    def __init__(self, stage: GuardStage, ctx: RequestContext, policy: Policy | None,
                 events: AsyncIterator[bytes]) -> None:
        self.stage = stage
        self.ctx = ctx
        self.policy = policy if policy is not None and policy.output else None
        self.events = events
        originals = stage._originals(ctx)
        self.originals = originals
        self.restorers: dict[int, StreamRestorer] = {}
        self.held: dict[int, str] = {}
        self.blocked = False
        self.decisions: list[Decision] = []
        self.started = time.perf_counter()

    async def run(self) -> AsyncIterator[bytes]:
        try:
            async for out in self._run():
                yield out
        except Exception as exc:  # end the stream the way a backend error does
            if isinstance(exc, GuardFailed):  # a scanner failed closed (the engine logged it)
                message = exc.message
            else:
                log.exception("output guards failed on a stream")
                message = "The answer could not be checked by the output guards"
            self.ctx.error = message
            yield sse_error(GuardFailed(message))
        finally:
            # ended early (a block, an error): the upstream stream is released here, as the
            # server closes only a body that did not complete
            with contextlib.suppress(Exception):
                await aclose(self.events)
            self.stage._record(self.ctx, "output_guards", self.started, self.policy,
                               self.decisions)

    async def _run(self) -> AsyncIterator[bytes]:
        buffer = b""
        async for chunk in self.events:
            buffer += chunk
            while b"\n\n" in buffer:
                raw, buffer = buffer.split(b"\n\n", 1)
                for out in await self._event(raw):
                    yield out
                if self.blocked:
                    yield b"data: [DONE]\n\n"
                    return
        if buffer.strip():
            for out in await self._event(buffer):
                yield out

    async def _event(self, raw: bytes) -> list[bytes]:
        event = event_json(raw)
        choices = event.get("choices") if event is not None else None
        if event is None or not isinstance(choices, list) or not choices:
            return [raw + b"\n\n"]  # comments, [DONE], usage, errors
        out: list[bytes] = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0) if isinstance(choice.get("index", 0), int) else 0
            delta = choice.get("delta")
            piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            finish = choice.get("finish_reason")
            if isinstance(piece, str) and piece:
                self.held[index] = self.held.get(index, "") + piece
            send = await self._release(index, final=bool(finish))
            if self.blocked:
                out.append(_chunk(event, index, "", "content_filter", delta is not None))
                return out
            if isinstance(delta, dict):
                delta = dict(delta)
                if send or "content" in delta:
                    delta["content"] = send
                if delta.get("content") == "" and len(delta) == 1 and not finish:
                    continue  # held back: nothing to send for this choice now
                if isinstance(delta.get("tool_calls"), list) and self.originals:
                    delta["tool_calls"] = _restore_calls(delta["tool_calls"], self.originals)
                choice = {**choice, "delta": delta}
            else:
                if not send and not finish:
                    continue
                choice = {**choice, "text": send}
            out.append(encode({**event, "choices": [choice]}))
        return out

    async def _release(self, index: int, final: bool) -> str:
        text = self.held.get(index, "")
        if not text:
            return self._restorer(index).flush() if final else ""
        if not final:
            cut = _segment_cut(text)
            if cut == 0:
                return ""
        else:
            cut = len(text)
        segment, self.held[index] = text[:cut], text[cut:]
        if self.policy is not None:
            scanned: Scanned = await self.stage._run(functools.partial(
                self.stage.engine.scan, self.policy, "output", segment, source="completion",
                where=f"choices[{index}]", values=self.ctx.guard_values,
                request_id=self.ctx.request_id))
            self.decisions.extend(scanned.decisions)
            if scanned.blocked is not None and scanned.blocked.error is not None:
                raise _failed(self.policy, scanned.blocked, "the answer")
            if scanned.blocked is not None:
                self.blocked = True
                return ""
            segment = scanned.text
        restorer = self._restorer(index)
        sent = restorer.feed(segment)
        return sent + restorer.flush() if final else sent

    def _restorer(self, index: int) -> StreamRestorer:
        found = self.restorers.get(index)
        if found is None:
            found = self.restorers[index] = StreamRestorer(self.originals)
        return found


def _segment_cut(text: str) -> int:
    """Where the held text can be cut: after the last sentence or line end, or at the last
    space once it is longer than _SEGMENT_MAX; 0 to keep holding."""
    last = 0
    for m in _SEGMENT_END.finditer(text):
        last = m.end()
    if last:
        return last
    if len(text) >= _SEGMENT_MAX:
        space = text.rfind(" ", 0, len(text))
        return space + 1 if space > 0 else len(text)
    return 0


def _chunk(event: dict[str, Any], index: int, text: str, finish: str, chat: bool) -> bytes:
    choice: dict[str, Any] = {"index": index, "finish_reason": finish}
    if chat:
        choice["delta"] = {"content": text}
    else:
        choice["text"] = text
    return encode({**event, "choices": [choice]})


def _restore_calls(calls: list[Any], originals: dict[str, str]) -> list[Any]:
    out = []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            call = {**call, "function": {**fn, "arguments": restore(fn["arguments"], originals)}}
        out.append(call)
    return out


# ---------------------------------------------------------------------- request texts
def _input_texts(body: dict[str, Any]) -> list[tuple[str, Any, str, Any]]:
    """(where, source, text, put(body, new_text)) for every text of a request."""
    out: list[tuple[str, Any, str, Any]] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            source = _SOURCES.get(str(message.get("role")), "prompt")
            content = message.get("content")
            if isinstance(content, str):
                out.append((f"messages[{i}].content", source, content, _put_message(i)))
            elif isinstance(content, list):
                for j, part in enumerate(content):
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        out.append((f"messages[{i}].content[{j}].text", source, part["text"],
                                    _put_part(i, j)))
    for key, source in (("prompt", "prompt"), ("input", "document")):
        value = body.get(key)
        if isinstance(value, str):
            out.append((key, source, value, _put_field(key, None)))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    out.append((f"{key}[{i}]", source, item, _put_field(key, i)))
    return out


def _copy_body(body: dict[str, Any]) -> dict[str, Any]:
    new = dict(body)
    if isinstance(body.get("messages"), list):
        new["messages"] = [dict(m) if isinstance(m, dict) else m for m in body["messages"]]
    for key in ("prompt", "input"):
        if isinstance(body.get(key), list):
            new[key] = list(body[key])
    return new


def _put_message(i: int) -> Any:
    def put(body: dict[str, Any], text: str) -> None:
        body["messages"][i]["content"] = text
    return put


def _put_part(i: int, j: int) -> Any:
    def put(body: dict[str, Any], text: str) -> None:
        message = body["messages"][i]
        parts = list(message["content"])
        parts[j] = {**parts[j], "text": text}
        message["content"] = parts
    return put


def _put_field(key: str, i: int | None) -> Any:
    def put(body: dict[str, Any], text: str) -> None:
        if i is None:
            body[key] = text
        else:
            body[key][i] = text
    return put


def _json_schema(body: dict[str, Any]) -> Any:
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
            return spec["schema"]
    return None
