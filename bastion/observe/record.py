"""Turns a finished request's context into a trace record (runs in the writer's thread).

The request path only keeps references (the validated body, the response bytes or the
stream's events, timestamps); all parsing, redaction, truncation and pricing happen here,
off the event loop. The record is a flat dict whose keys are the store's columns (see
``bastion.store``): ids and principal, model and deployment, timings in milliseconds,
tokens, cost, status, and the input and output as the content mode allows:

- ``full``: as sent (truncated to ``tracing.max_body_chars`` per text);
- ``redacted``: the request as the input guards passed it on (their redactions and
  pseudonyms), then the guards' own secrets and PII detectors over it all and over the
  answer (:mod:`bastion.observe.redact`: whatever ``bastion guard scan`` finds);
- ``metadata``: no bodies at all.
"""

from __future__ import annotations

import math
from typing import Any

from bastion.context import RequestContext
from bastion.observe.confidence import score
from bastion.observe.pricing import PriceBook
from bastion.observe.redact import redact_value
from bastion.observe.reply import Choice, events
from bastion.observe.reply import parse as parse_reply

MAX_TOKENS_KEPT = 4096  # per-token log-probabilities kept on a full-mode trace
_PARAMS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "n",
    "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "dimensions",
    "encoding_format", "tool_choice", "parallel_tool_calls", "reasoning_effort",
)


def build_record(
    ctx: RequestContext, mode: str, max_chars: int, prices: PriceBook | None = None
) -> dict[str, Any]:
    body = ctx.body or {}
    output, finish, response_model, usage, logprobs = _output(ctx)
    input_tokens, output_tokens, cached, counted = _tokens(ctx, ctx.usage or usage or {})
    finished = ctx.finished_at or ctx.received_at
    latency = (finished - ctx.received_at) * 1000
    ttft = tpot = None
    if ctx.stream and ctx.first_token_at is not None:
        ttft = (ctx.first_token_at - ctx.received_at) * 1000
        last = ctx.last_token_at
        if last is not None and output_tokens and output_tokens > 1:
            tpot = (last - ctx.first_token_at) * 1000 / (output_tokens - 1)
    record: dict[str, Any] = {
        "id": ctx.trace_key,
        "ts": ctx.wall_time,
        "endpoint": ctx.endpoint,
        "operation": ctx.operation,
        "model": ctx.model,
        "deployment": ctx.backend,
        "provider": ctx.provider,
        "model_version": response_model,
        "key_id": ctx.key_id,
        "team": ctx.team,
        "user": ctx.user,
        "session": ctx.session,
        "tenant": ctx.claim.tenant or None,
        "priority": ctx.claim.priority,
        "stream": ctx.stream,
        "status": ctx.status,
        "error": ctx.error,
        "finish_reason": finish,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_tokens": cached,
        "cost": None,
        "latency_ms": round(latency, 3),
        "ttft_ms": _ms(ttft),
        "tpot_ms": _ms(tpot),
        "overhead_ms": round(ctx.overhead(finished) * 1000, 3),
        "queue_ms": round(ctx.queued_s * 1000, 3),
        "attempts": ctx.attempts,
        "fallback": ctx.fallback,
        "content_mode": mode,
        "params": {k: body[k] for k in _PARAMS if k in body},
        "input": None,
        "output": None,
        "guards": ctx.guards or [],
        "guard_action": ctx.guard_action,
        "spans": [_span(ctx, s) for s in ctx.stages()],
        "metadata": _metadata(ctx, body),
        "trace_id": ctx.trace_id,
        "span_id": ctx.span_id,
        "confidence": None,
    }
    if counted and output_tokens is not None:
        record["metadata"]["output_tokens_from"] = "events_sent"
    confidence = score(logprobs)
    if confidence is not None:  # numbers only: kept in every content mode
        record["metadata"]["confidence"] = confidence
        record["confidence"] = round(math.exp(confidence["mean_logprob"]), 6)
    if "tools" in body and isinstance(body["tools"], list):
        record["params"]["tools"] = len(body["tools"])
    if mode != "metadata":
        # redacted: what the guards let through (placeholders, [KIND]), then the detectors
        sent = ctx.guarded_body if mode == "redacted" and ctx.guarded_body else body
        record["input"] = _input(ctx, sent, mode, max_chars)
        record["output"] = _clip(output, max_chars) if mode == "full" else (
            redact_value(_clip(output, max_chars))
        )
        if mode == "full" and logprobs and isinstance(record["output"], dict):
            # the tokens are the answer's text: only where it is kept as it was
            record["output"]["logprobs"] = [
                {"token": _clip(t.get("token"), 64), "logprob": t.get("logprob")}
                for t in logprobs[:MAX_TOKENS_KEPT]]
    if prices is not None and ctx.backend is not None:
        record["cost"] = prices.cost(
            ctx.backend, input_tokens or 0, output_tokens or 0, cached or 0, latency / 1000
        )
        record["metadata"]["price_version"] = prices.version
    return record


def _tokens(ctx: RequestContext, usage: dict[str, Any]
            ) -> tuple[int | None, int | None, int | None, bool]:
    """Input, output and cached tokens as the trace counts them, and whether the output
    was counted from the events sent (a stream that ended without usage)."""
    input_tokens = _int(usage.get("prompt_tokens"))
    output_tokens = _int(usage.get("completion_tokens"))
    counted = output_tokens is None and ctx.stream
    if counted:  # no usage came (the client left mid-stream): what was sent
        output_tokens = _sent_tokens(ctx)
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else None
    return input_tokens, output_tokens, cached, counted


def request_cost(ctx: RequestContext, prices: PriceBook) -> float:
    """A finished request's cost, as its trace will have it (the same tokens, latency and
    prices as :func:`build_record`), for settling budgets on the request path: the reply
    is parsed only when the backend left no usage on the context."""
    if ctx.backend is None or ctx.backend not in prices.prices:
        return 0.0  # no price: what cost() gives, without reading the tokens
    usage = ctx.usage or parse_reply(ctx.response_body, ctx.chunks).usage or {}
    input_tokens, output_tokens, cached, _ = _tokens(ctx, usage)
    latency = ((ctx.finished_at or ctx.received_at) - ctx.received_at) * 1000
    cost = prices.cost(ctx.backend, input_tokens or 0, output_tokens or 0, cached or 0,
                       latency / 1000)
    return cost or 0.0


def _input(ctx: RequestContext, body: dict[str, Any], mode: str, max_chars: int) -> Any:
    if ctx.operation == "chat":
        value: Any = body.get("messages")
    elif ctx.operation == "text_completion":
        value = body.get("prompt")
    elif ctx.operation == "embeddings":
        value = body.get("input")
    else:
        return None
    value = _clip(value, max_chars)
    return redact_value(value) if mode == "redacted" else value


def _output(ctx: RequestContext) -> tuple[Any, str | None, str | None, dict[str, Any] | None,
                                         list[dict[str, Any]] | None]:
    """(output, finish reason, the model that answered, usage, the first choice's token
    log-probabilities) from the response sent."""
    reply = parse_reply(ctx.response_body, ctx.chunks)
    if reply.embeddings is not None:
        count, dims = reply.embeddings
        return {"embeddings": count, "dimensions": dims}, None, reply.model, reply.usage, None
    finishes = reply.finish_reasons
    out = [_message(c) if reply.chat else c.content for c in reply.choices]
    if not out:
        return None, None, reply.model, reply.usage, None
    return (out[0] if len(out) == 1 else out), (finishes[-1] if finishes else None), (
        reply.model), reply.usage, reply.choices[0].logprobs


def _sent_tokens(ctx: RequestContext) -> int | None:
    """Output tokens of a stream without usage: its content events that were forwarded (a
    server sends one token per event), or, where the events were not kept (content mode
    ``metadata``), the chunks forwarded."""
    if ctx.chunks is None:
        return ctx.stream_events or None
    sent = 0
    for event in events(ctx.chunks):
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            part = delta if isinstance(delta, dict) else choice
            if part.get("content") or part.get("text") or part.get("tool_calls"):
                sent += 1
    return sent or None


def _message(choice: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": choice.role}
    if choice.content is not None:
        message["content"] = choice.content
    if choice.tool_calls:
        message["tool_calls"] = choice.tool_calls
    if choice.refusal is not None:
        message["refusal"] = choice.refusal
    return message


def _clip(value: Any, max_chars: int) -> Any:
    """Truncates every string in ``value`` to ``max_chars`` (marking the cut)."""
    if isinstance(value, str):
        return value if len(value) <= max_chars else value[:max_chars] + "…[truncated]"
    if isinstance(value, list):
        return [_clip(v, max_chars) for v in value[:1000]]
    if isinstance(value, dict):
        return {k: _clip(v, max_chars) for k, v in value.items()}
    return value


def _span(ctx: RequestContext, span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "start_ms": round((span.start - ctx.received_at) * 1000, 3),
        "duration_ms": round((span.end - span.start) * 1000, 3),
        **({"attrs": span.attrs} if span.attrs else {}),
    }


def _metadata(ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    given = body.get("metadata")
    if isinstance(given, dict):
        out.update({str(k)[:64]: v for k, v in list(given.items())[:16]})
    if ctx.record_id:
        out["client_request_id"] = ctx.request_id
    if ctx.guard_policy:
        out["guard_policy"] = ctx.guard_policy
    return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
