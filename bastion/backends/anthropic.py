"""The Anthropic backend: serves OpenAI chat completions from Anthropic's Messages API.

Requests are translated (:mod:`bastion.backends.anthropic_translate`) and sent to
``{base_url}/v1/messages`` with the gateway's ``x-api-key``; replies and streams are
translated back, a streamed chunk per Anthropic delta, as each network read arrives.
Usage is always recorded on the request context. Configured as a plugin-kind model::

    - name: claude
      backend: anthropic
      upstream_model: claude-sonnet-4-5
      api_key_env: ANTHROPIC_API_KEY
      # base_url: https://api.anthropic.com   anthropic_version: "2023-06-01"
      # max_tokens_default: 1024   connect_timeout: 5   read_timeout: 600
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.backends.anthropic_translate import (
    AnthropicStreamError,
    StreamTranslator,
    to_anthropic_request,
    to_openai_completion,
    to_openai_usage,
)
from bastion.backends.base import (
    SSE_DONE,
    Backend,
    ClosingStream,
    Completion,
    EventStream,
    Result,
    sse_error,
    sse_event,
)
from bastion.backends.http_errors import error_body, read_json, retry_after, translate
from bastion.config import read_secret_env
from bastion.context import RequestContext
from bastion.errors import (
    BastionError,
    ConfigError,
    RateLimited,
    UpstreamError,
)
from bastion.httpclient import (
    ClientResponse,
    HTTPClient,
    HTTPClientError,
)
from bastion.observe.traceparent import upstream_headers
from bastion.protocol.sse import event_data

#: 4xx statuses about the request itself: passed on to the client with Anthropic's message
_PASS_THROUGH = frozenset({400, 404, 413, 422})


class AnthropicOptions(BaseModel):
    """The keys an ``anthropic`` model accepts besides ``name`` and ``backend``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    base_url: str = Field("https://api.anthropic.com", pattern=r"^https?://[^/]+")
    upstream_model: str | None = Field(None, min_length=1)
    api_key_env: str | None = Field(None, min_length=1)
    anthropic_version: str = Field("2023-06-01", min_length=1)
    max_tokens_default: int = Field(1024, ge=1)
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(600.0, gt=0)
    max_connections: int = Field(256, ge=1)


def parse_options(name: str, extra: dict[str, Any]) -> AnthropicOptions:
    """Validates a model's extra keys; ConfigError names the offending key."""
    try:
        return AnthropicOptions.model_validate(extra)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "<options>"
            problems.append(f"{key}: {err['msg']}")
        raise ConfigError(
            f"model {name!r} (backend anthropic): " + "; ".join(problems)
        ) from None


class AnthropicBackend(Backend):
    kind = "anthropic"
    owned_by = "anthropic"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec.name)
        extra = getattr(spec, "model_extra", None) or {}
        options = parse_options(spec.name, dict(extra))
        self.options = options
        base = options.base_url.rstrip("/")
        self._host = urlsplit(base).netloc
        self._url = base + "/v1/messages"
        self._upstream_model = options.upstream_model or spec.name
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"anthropic-version", options.anthropic_version.encode()),
        ]
        if options.api_key_env:
            key = read_secret_env(options.api_key_env)
            if not key:
                raise ConfigError(
                    f"model {spec.name!r}: environment variable {options.api_key_env} "
                    "(api_key_env) is not set or empty"
                )
            headers.append((b"x-api-key", key.encode()))
        self._headers = headers
        self._client = HTTPClient(
            max_connections_per_host=options.max_connections,
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
        )

    async def close(self) -> None:
        self.ready = False
        await self._client.aclose()

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["meta"] = {"backend": self.kind, "upstream": self._host}
        return out

    # ------------------------------------------------------------------ chat
    async def chat(self, body: dict[str, Any], stream: bool, ctx: RequestContext) -> Result:
        request = to_anthropic_request(
            body, self._upstream_model, self.options.max_tokens_default
        )
        if stream:
            request["stream"] = True
        payload = orjson.dumps(request)
        created = int(time.time())
        ctx.backend_started_at = time.perf_counter()
        response = await self._send(payload, ctx)
        ctx.backend_headers_at = time.perf_counter()
        if response.status >= 400:
            raise await self._error(response)
        if stream:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            translator = StreamTranslator(self.name, created, include_usage)
            return EventStream(
                ClosingStream(self._relay(response, ctx, translator), response.aclose)
            )
        _, message = await read_json(response, f"Anthropic upstream {self._host}")
        ctx.first_token_at = ctx.backend_done_at = time.perf_counter()
        if not isinstance(message, dict) or message.get("type") != "message":
            raise UpstreamError(f"Anthropic upstream {self._host} returned an unexpected body")
        completion = to_openai_completion(message, self.name, created)
        ctx.usage = completion["usage"]
        return Completion(orjson.dumps(completion))

    async def _send(self, payload: bytes, ctx: RequestContext) -> ClientResponse:
        headers = self._headers + upstream_headers(ctx)  # traceparent: this request's span
        try:
            return await self._client.request("POST", self._url, headers=headers, body=payload)
        except HTTPClientError as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: HTTPClientError) -> BastionError:
        return translate(exc, f"Anthropic upstream {self._host}")

    async def _error(self, response: ClientResponse) -> BastionError:
        raw = await error_body(response)
        status = response.status
        message = error_message(raw) or f"HTTP {status}"
        retry = retry_after(response)
        text = f"Anthropic upstream {self._host} returned {status}: {message}"
        if status in (401, 403):
            return UpstreamError(
                f"Anthropic upstream {self._host} rejected the gateway's API key "
                f"({status}: {message}); the gateway's api_key_env needs fixing, "
                "not the client's key",
                code="upstream_auth_failed",
            )
        if status == 429:
            return RateLimited(text, retry_after=retry)
        if status in _PASS_THROUGH:
            return UpstreamError(text, status=status, code="upstream_rejected")
        return UpstreamError(text, retry_after=retry)  # 529 overloaded, 5xx, other

    # ------------------------------------------------------------------ stream
    async def _relay(
        self, response: ClientResponse, ctx: RequestContext, translator: StreamTranslator
    ) -> AsyncIterator[bytes]:
        buffer = b""
        try:
            async for data in response.iter_chunks():
                buffer = buffer + data if buffer else data
                if b"\r\n" in buffer:
                    buffer = buffer.replace(b"\r\n", b"\n")
                if b"\n\n" not in buffer:
                    continue
                *events, buffer = buffer.split(b"\n\n")
                out: list[bytes] = []
                try:
                    for event in events:
                        for chunk in self._translate_event(event, translator, ctx):
                            out.append(sse_event(chunk))
                        if translator.finished:
                            break
                except AnthropicStreamError as exc:
                    out.append(
                        sse_error(
                            UpstreamError(
                                f"Anthropic upstream {self._host} failed mid-stream: {exc}"
                            )
                        )
                    )
                    yield b"".join(out)
                    return
                if translator.finished:
                    ctx.backend_done_at = time.perf_counter()
                    out.append(SSE_DONE)
                    yield b"".join(out)
                    return
                if out:
                    yield b"".join(out)
        except HTTPClientError as exc:
            yield sse_error(self._translate(exc))
            return
        finally:
            await response.aclose()
        yield sse_error(
            UpstreamError(f"Anthropic upstream {self._host} ended the stream before message_stop")
        )

    def _translate_event(
        self, event: bytes, translator: StreamTranslator, ctx: RequestContext
    ) -> list[dict[str, Any]]:
        data = event_data(event)
        if not data:
            return []  # comments, keep-alives
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise AnthropicStreamError("malformed stream event") from None
        if not isinstance(parsed, dict):
            raise AnthropicStreamError("malformed stream event")
        had_content = translator.has_content
        chunks = translator.feed(parsed)
        if parsed.get("type") in ("message_start", "message_delta"):
            ctx.usage = to_openai_usage(translator.usage)
        if translator.has_content and not had_content:
            ctx.first_token_at = time.perf_counter()
        return chunks


def error_message(raw: bytes) -> str | None:
    """The message of Anthropic's ``{"type": "error", "error": {"type", "message"}}``."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:500] or None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        kind = error.get("type")
        return f"{kind}: {error['message']}" if isinstance(kind, str) else error["message"]
    return None
