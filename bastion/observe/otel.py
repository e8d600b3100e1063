"""OpenTelemetry export over OTLP/HTTP, following the GenAI semantic conventions.

Enabled by ``otel.enabled``. Each finished ``/v1/*`` model request becomes:

- one span ``{gen_ai.operation.name} {gen_ai.request.model}`` (kind CLIENT) with the
  request's own trace and span ids (the ones sent upstream in ``traceparent``), under the
  client's span when the client sent a valid ``traceparent``; its attributes are the
  conventions' ``gen_ai.*`` (operation, provider, request and response model, request
  parameters, usage, finish reasons, response id), ``server.address``/``server.port``,
  ``error.type`` on failure, and a few ``bastion.*`` ones (request id, deployment);
- one child span per pipeline stage (``ctx.stages()``: auth, admission, parse, queue wait,
  each backend attempt);
- with ``otel.capture_content`` and ``tracing.content`` other than ``metadata``: the
  conversation, as the conventions' opt-in span attributes ``gen_ai.input.messages`` and
  ``gen_ai.output.messages`` (JSON strings in the conventions' message schema; redacted
  by :mod:`bastion.observe.redact` when ``tracing.content`` is ``redacted``; each text cut
  at ``tracing.max_body_chars``);
- measurements for the ``gen_ai.client.operation.duration`` (s) and
  ``gen_ai.client.token.usage`` ({token}) histograms, with the conventions' buckets.

Sampling is parent-based: a client's ``traceparent`` whose sampled flag is off means no
spans (the metrics still count the request); otherwise every request is exported.

Off the request path: the observer only appends the finished context to a bounded deque
(about 0.15 µs; when it is full the request is counted in ``dropped`` and one warning is
logged). A background thread turns contexts into finished SDK spans (``ReadableSpan``
with explicit start and end times and the request's own ids: the data is complete, so
the Tracer's per-span bookkeeping, twelve times the CPU, is skipped) and hands them to a
``BatchSpanProcessor`` that sends them to ``{endpoint}/v1/traces``; the histograms go
through the SDK's ``MeterProvider``, whose periodic reader sends them to
``{endpoint}/v1/metrics`` every ``otel.export_interval`` seconds. The thread yields the
GIL after each request. A collector that is down or slow costs requests nothing: export
failures are logged by the SDK (deduplicated) and the data dropped.
:meth:`OtelExporter.close` drains the queue and flushes both, within a bounded time.

Cost, measured on this 2-vCPU machine: about 100 µs of background CPU per request
(two-thirds of it the SDK's histogram recording) plus about 70 µs per span for the SDK's
OTLP encoding, in the batch processor's thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.span import TraceFlags, TraceState

from bastion import __version__
from bastion.config import Settings
from bastion.context import RequestContext
from bastion.observe.redact import redact_value
from bastion.observe.reply import Reply
from bastion.observe.reply import parse as parse_reply
from bastion.observe.traceparent import incoming_parent, incoming_tracestate

log = logging.getLogger("bastion.otel")

OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
}
# The conventions' ExplicitBucketBoundaries for the two client metrics.
DURATION_BUCKETS = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
]
TOKEN_BUCKETS = [4**i for i in range(14)]  # 1, 4, 16 ... 67108864
_FLOAT_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
}
_CONTENT_KEYS = frozenset({"content", "response", "arguments", "uri"})
_OUTPUT_TYPES = {"json_object": "json", "json_schema": "json", "text": "text"}
_UNSET = Status(StatusCode.UNSET)
_EXPORT_TIMEOUT = 5.0  # seconds per OTLP request (retries included)
_CLOSE_TIMEOUT = 8.0  # close() returns within this, flushed or not


class OtelExporter:
    """``observe`` is the gateway observer; everything else runs in its own thread.

    ``current`` returns the live settings (content mode and deployments follow a reload);
    the collector endpoint, headers and service name are fixed at start."""

    def __init__(
        self,
        settings: Settings,
        current: Callable[[], Settings] | None = None,
        *,
        queue_size: int = 10_000,
        poll_interval: float = 0.05,
    ) -> None:
        otel = settings.otel
        self._current = current or (lambda: settings)
        self._max = queue_size
        self._poll = poll_interval
        self._queue: deque[RequestContext] = deque()
        self.dropped = 0
        self._warned = False
        base = otel.endpoint.rstrip("/")
        resource = Resource.create(
            {"service.name": otel.service_name, "service.version": __version__}
        )
        self._resource = resource
        self._scope = InstrumentationScope("bastion", __version__)
        self._ids = RandomIdGenerator()
        self._spans = BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=base + "/v1/traces", headers=dict(otel.headers), timeout=_EXPORT_TIMEOUT
            ),
            schedule_delay_millis=min(5000.0, otel.export_interval * 1000),
        )
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(
                endpoint=base + "/v1/metrics", headers=dict(otel.headers), timeout=_EXPORT_TIMEOUT
            ),
            export_interval_millis=otel.export_interval * 1000,
            export_timeout_millis=_EXPORT_TIMEOUT * 1000,
        )
        self._meters = MeterProvider(resource=resource, metric_readers=[reader])
        meter = self._meters.get_meter("bastion", __version__)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._servers: tuple[object, dict[str, tuple[str, int]]] = (None, {})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bastion-otel", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ request path
    def observe(self, ctx: RequestContext) -> None:
        """The observer: enqueue and return (no parsing, no locks, no I/O)."""
        if ctx.operation is None and ctx.endpoint not in OPERATIONS:
            return  # health checks, model lists, admin calls: not GenAI operations
        if len(self._queue) >= self._max:
            self.dropped += 1
            if not self._warned:
                self._warned = True
                log.warning(
                    "OpenTelemetry queue full (%d requests): dropping telemetry until the "
                    "exporter catches up (counted in dropped)", self._max,
                )
            return
        self._queue.append(ctx)

    # ------------------------------------------------------------------ lifecycle
    def close(self, timeout: float = _CLOSE_TIMEOUT) -> None:
        """Drains the queue, then flushes spans and metrics (in parallel, so a collector
        that is down costs one export timeout, not two). Blocking: call it off the loop."""
        self._stop.set()
        self._thread.join(timeout)
        flushes = [
            threading.Thread(target=self._shutdown, args=(stop,), daemon=True)
            for stop in (self._spans.shutdown, self._meters.shutdown)
        ]
        for flush in flushes:
            flush.start()
        for flush in flushes:
            flush.join(timeout)
        if self.dropped:
            log.warning("OpenTelemetry: %d requests were not exported (queue full)", self.dropped)

    @staticmethod
    def _shutdown(stop: Callable[[], object]) -> None:
        try:
            stop()
        except Exception:  # telemetry must never break the gateway, not even its shutdown
            log.exception("OpenTelemetry: flushing on close failed")

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            ctx = queue.popleft()
            try:
                self.export(ctx)
            except Exception:  # telemetry must never break a request, nor stop the exporter
                log.exception("OpenTelemetry export of request %s failed", ctx.request_id)
            time.sleep(0)  # hand the GIL back: the event loop never waits on a long run

    # ------------------------------------------------------------------ export thread
    def export(self, ctx: RequestContext) -> None:
        """One request's span tree and measurements (the exporter thread calls this)."""
        settings = self._current()
        operation = ctx.operation or OPERATIONS.get(ctx.endpoint, "chat")
        body = ctx.body or {}
        reply = parse_response(ctx)
        server = self._server(settings, ctx.backend)
        attrs = request_attributes(ctx, operation, body, server)
        attrs.update(response_attributes(ctx, reply))
        self._measure(ctx, attrs)
        parent = incoming_parent(ctx)
        if parent is not None and not parent.flags & 1:
            return  # the caller did not sample this trace: metrics only
        if settings.otel.capture_content and settings.tracing.content != "metadata":
            attrs.update(content_attributes(
                operation, body, reply, settings.tracing.content, settings.tracing.max_body_chars
            ))
        self._span(ctx, attrs, parent)

    def _span(self, ctx: RequestContext, attrs: dict[str, Any], parent: Any) -> None:
        """The request's span and its stages', handed to the batch processor as finished
        SDK spans (the data is complete: no Tracer bookkeeping, a twelfth of its CPU)."""
        if ctx.trace_id is None or ctx.span_id is None:
            return  # not traced (a context that did not come through the gateway)
        trace_id = int(ctx.trace_id, 16)
        remote = None
        state = None
        if parent is not None:
            header = incoming_tracestate(ctx)
            state = TraceState.from_header([header]) if header else None
            remote = SpanContext(
                trace_id, int(parent.parent_id, 16), is_remote=True,
                trace_flags=TraceFlags(parent.flags & 0xFF), trace_state=state,
            )
        own = SpanContext(
            trace_id, int(ctx.span_id, 16), is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED), trace_state=state,
        )
        operation, model = attrs["gen_ai.operation.name"], attrs.get("gen_ai.request.model")
        base = int(ctx.wall_time * 1e9)

        def ns(t: float) -> int:
            return base + int((t - ctx.received_at) * 1e9)

        for stage in ctx.stages():
            error = stage.attrs.get("error")
            self._spans.on_end(ReadableSpan(
                stage.name,
                SpanContext(trace_id, self._ids.generate_span_id(), is_remote=False,
                            trace_flags=own.trace_flags, trace_state=state),
                own, self._resource, _stage_attributes(stage.attrs), kind=SpanKind.INTERNAL,
                status=Status(StatusCode.ERROR, str(error)[:500]) if error else _UNSET,
                start_time=ns(stage.start), end_time=ns(stage.end),
                instrumentation_scope=self._scope,
            ))
        failed = "error.type" in attrs
        self._spans.on_end(ReadableSpan(
            f"{operation} {model}" if model else operation, own, remote, self._resource,
            attrs, kind=SpanKind.CLIENT,
            status=Status(StatusCode.ERROR, (ctx.error or "")[:500] or None) if failed else _UNSET,
            start_time=ns(ctx.received_at), end_time=ns(ctx.finished_at or ctx.received_at),
            instrumentation_scope=self._scope,
        ))

    def _measure(self, ctx: RequestContext, attrs: dict[str, Any]) -> None:
        keys = (
            "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
            "gen_ai.response.model", "server.address", "server.port",
        )
        common = {k: attrs[k] for k in keys if k in attrs}
        duration = (ctx.finished_at or ctx.received_at) - ctx.received_at
        error = {"error.type": attrs["error.type"]} if "error.type" in attrs else {}
        self._duration.record(duration, {**common, **error})
        for kind, key in (("input", "gen_ai.usage.input_tokens"),
                          ("output", "gen_ai.usage.output_tokens")):
            if key in attrs:
                self._tokens.record(attrs[key], {**common, "gen_ai.token.type": kind})

    def _server(self, settings: Settings, deployment: str | None) -> tuple[str, int] | None:
        """(server.address, server.port) of a deployment with a base URL (cached per
        configuration: a reload replaces the settings object)."""
        if deployment is None:
            return None
        models, servers = self._servers
        if models is not settings.models:
            servers = {}
            for spec in settings.models:
                url = getattr(spec, "base_url", None) or (spec.model_extra or {}).get("base_url")
                if isinstance(url, str):
                    parts = urlsplit(url)
                    if parts.hostname:
                        port = parts.port or (443 if parts.scheme == "https" else 80)
                        servers[spec.name] = (parts.hostname, port)
            self._servers = (settings.models, servers)
        return servers.get(deployment)


# ---------------------------------------------------------------------- attributes
def request_attributes(
    ctx: RequestContext, operation: str, body: dict[str, Any], server: tuple[str, int] | None
) -> dict[str, Any]:
    """The span's attributes known from the request (the conventions' sampling-relevant
    ones first: operation, provider, model, server)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": ctx.provider or "bastion",
    }
    model = body.get("model")
    model = model if isinstance(model, str) else ctx.model  # the alias the client asked for
    if model:
        attrs["gen_ai.request.model"] = model
    if server is not None:
        attrs["server.address"], attrs["server.port"] = server
    for key, name in _FLOAT_PARAMS.items():
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[name] = float(value)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if _is_int(limit):
        attrs["gen_ai.request.max_tokens"] = limit
    if _is_int(body.get("seed")):
        attrs["gen_ai.request.seed"] = body["seed"]
    if _is_int(body.get("n")) and body["n"] != 1:
        attrs["gen_ai.request.choice.count"] = body["n"]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop
    if isinstance(stops, list) and stops and all(isinstance(s, str) for s in stops):
        attrs["gen_ai.request.stop_sequences"] = stops
    if ctx.stream:
        attrs["gen_ai.request.stream"] = True
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in _OUTPUT_TYPES:
        attrs["gen_ai.output.type"] = _OUTPUT_TYPES[response_format["type"]]
    if isinstance(body.get("encoding_format"), str):
        attrs["gen_ai.request.encoding_formats"] = [body["encoding_format"]]
    if ctx.session:
        attrs["gen_ai.conversation.id"] = ctx.session
    attrs["bastion.request_id"] = ctx.request_id
    if ctx.backend is not None:
        attrs["bastion.deployment"] = ctx.backend
    if ctx.attempts > 1:
        attrs["bastion.attempts"] = ctx.attempts
    return attrs


def response_attributes(ctx: RequestContext, reply: Reply) -> dict[str, Any]:
    attrs: dict[str, Any] = {"bastion.status_code": ctx.status}  # what the client got
    if reply.model:
        attrs["gen_ai.response.model"] = reply.model
    if reply.id:
        attrs["gen_ai.response.id"] = reply.id
    if reply.finish_reasons:
        attrs["gen_ai.response.finish_reasons"] = reply.finish_reasons
    usage = ctx.usage or reply.usage or {}
    pairs = (
        ("gen_ai.usage.input_tokens", usage.get("prompt_tokens", usage.get("input_tokens"))),
        ("gen_ai.usage.output_tokens",
         usage.get("completion_tokens", usage.get("output_tokens"))),
        ("gen_ai.usage.cache_read.input_tokens",
         _detail(usage, "prompt_tokens_details", "cached_tokens")),
        ("gen_ai.usage.reasoning.output_tokens",
         _detail(usage, "completion_tokens_details", "reasoning_tokens")),
    )
    for name, value in pairs:
        if _is_int(value):
            attrs[name] = value
    if ctx.stream and ctx.first_token_at is not None:
        attrs["gen_ai.response.time_to_first_chunk"] = ctx.first_token_at - ctx.received_at
    if ctx.guard_policy:  # the guards' verdict (no finding's content)
        attrs["bastion.guard.policy"] = ctx.guard_policy
        if ctx.guard_action:
            attrs["bastion.guard.action"] = ctx.guard_action
            attrs["bastion.guard.scanners"] = sorted({g["scanner"] for g in ctx.guards or []})
    if ctx.status >= 400:
        attrs["error.type"] = str(ctx.status)
    elif ctx.error:
        attrs["error.type"] = "_OTHER"  # a stream that failed after it started
    return attrs


def content_attributes(
    operation: str, body: dict[str, Any], reply: Reply, mode: str, max_chars: int
) -> dict[str, str]:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages`` as JSON strings (the SDK has
    no structured span attributes; the conventions say to serialize then)."""
    out: dict[str, str] = {}
    inputs = input_messages(operation, body)
    for name, value in (("gen_ai.input.messages", inputs),
                        ("gen_ai.output.messages", output_messages(reply))):
        if not value:
            continue
        value = [_clip_message(m, max_chars) for m in value]
        if mode == "redacted":
            value = redact_value(value)
        out[name] = orjson.dumps(value).decode()
    return out


def _stage_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        name = key if "." in key else f"bastion.{key}"
        if isinstance(value, str | bool | int | float):
            out[name] = value
        elif value is not None:
            out[name] = str(value)
    return out


def _detail(usage: dict[str, Any], group: str, key: str) -> Any:
    details = usage.get(group)
    return details.get(key) if isinstance(details, dict) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _clip_message(message: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """Cuts what a message says (texts, tool arguments and results, inline data), not
    its structure (roles, part types, ids)."""
    parts = [
        {k: _clip(v, max_chars) if k in _CONTENT_KEYS else v for k, v in part.items()}
        for part in message.get("parts", [])
    ]
    return {**message, "parts": parts}


def _clip(value: Any, max_chars: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= max_chars else value[:max_chars] + "…[truncated]"
    if isinstance(value, list):
        return [_clip(v, max_chars) for v in value]
    if isinstance(value, dict):
        return {k: _clip(v, max_chars) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------- messages
def input_messages(operation: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's input in the conventions' schema: ``[{role, parts: [...]}, ...]``."""
    if operation == "chat":
        messages = body.get("messages")
        return [_chat_message(m) for m in messages or [] if isinstance(m, dict)]
    if operation == "text_completion":
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if isinstance(prompts, list):
            return [{"role": "user", "parts": [_text(p)]} for p in prompts if isinstance(p, str)]
    return []  # embeddings: the conventions define no content attribute


def _chat_message(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    content = message.get("content")
    parts: list[dict[str, Any]] = []
    if role == "tool":
        parts.append({
            "type": "tool_call_response", "id": message.get("tool_call_id"),
            "response": content,
        })
    elif isinstance(content, str):
        parts.append(_text(content))
    elif isinstance(content, list):
        parts.extend(_content_part(item) for item in content if isinstance(item, dict))
    parts.extend(_tool_calls(message.get("tool_calls")))
    out: dict[str, Any] = {"role": role, "parts": parts}
    if isinstance(message.get("name"), str):
        out["name"] = message["name"]
    return out


def _content_part(item: dict[str, Any]) -> dict[str, Any]:
    kind = item.get("type")
    if kind == "text":
        return _text(str(item.get("text", "")))
    if kind == "image_url":
        image = item.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if isinstance(url, str) and url.startswith("data:"):
            mime, _, data = url[5:].partition(";base64,")
            return {"type": "blob", "modality": "image", "mime_type": mime, "content": data}
        return {"type": "uri", "modality": "image", "uri": url}
    return {"type": str(kind)}  # audio, files...: the kind only


def _tool_calls(calls: Any) -> Iterable[dict[str, Any]]:
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            with contextlib.suppress(orjson.JSONDecodeError):  # else kept as the string
                arguments = orjson.loads(arguments)
        yield {
            "type": "tool_call", "id": call.get("id"), "name": function.get("name"),
            "arguments": arguments,
        }


def _text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


# ---------------------------------------------------------------------- responses
def parse_response(ctx: RequestContext) -> Reply:
    return parse_reply(ctx.response_body, ctx.chunks)


def output_messages(reply: Reply) -> list[dict[str, Any]]:
    """The reply's choices as the conventions' output messages."""
    out: list[dict[str, Any]] = []
    for choice in reply.choices:
        parts = [_text(choice.content)] if choice.content is not None else []
        parts.extend(_tool_calls(choice.tool_calls))
        out.append({"role": choice.role, "parts": parts,
                    "finish_reason": choice.finish_reason or "error"})
    return out
