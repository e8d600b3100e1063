"""The upstream backend: any OpenAI-compatible server (vLLM, TGI, Ollama, llama.cpp, OpenAI).

Requests go out with the configured upstream model name and key; every field the client
sent, known or not, goes with them. Streams are relayed as they arrive: each network read
is split into complete SSE events, which are checked (one orjson parse each, so a broken
upstream stream ends in a clean error event rather than garbage) and forwarded at once.
Usage is always recorded: ``stream_options.include_usage`` is injected upstream and the
usage chunk is stripped again when the client did not ask for it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import orjson

from bastion.backends.base import (
    Backend,
    ClosingStream,
    Completion,
    EventStream,
    Result,
    sse_error,
)
from bastion.backends.http_errors import error_body, read_json, retry_after, translate
from bastion.config import UpstreamModel, read_secret_env
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

_DONE = b"[DONE]"


class UpstreamBackend(Backend):
    kind = "openai"
    owned_by = "upstream"

    def __init__(self, spec: UpstreamModel) -> None:
        super().__init__(spec.name)
        self.spec = spec
        self._client = HTTPClient(
            max_connections_per_host=spec.max_connections,
            connect_timeout=spec.connect_timeout,
            read_timeout=spec.read_timeout,
        )
        base = spec.base_url.rstrip("/")
        parts = urlsplit(base)
        self._host = parts.netloc
        self._urls = {
            "chat": base + "/chat/completions",
            "completion": base + "/completions",
            "embeddings": base + "/embeddings",
            "models": base + "/models",
        }
        self._upstream_model = spec.upstream_model or spec.name
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
        ]
        if spec.api_key_env:
            key = read_secret_env(spec.api_key_env)
            if key is None:
                raise ConfigError(
                    f"model {spec.name!r}: environment variable {spec.api_key_env} "
                    "(api_key_env) is not set or empty"
                )
            headers.append((b"authorization", b"Bearer " + key.encode()))
        for name, value in spec.headers.items():
            headers.append((name.lower().encode(), value.encode()))
        self._headers = headers

    async def close(self) -> None:
        self.ready = False
        await self._client.aclose()

    async def probe(self) -> None:
        """GET {base_url}/models: the cheapest call every OpenAI-compatible server has.
        Any answer below 500 (even 401/404) shows the server is up."""
        try:
            response = await self._client.request(
                "GET", self._urls["models"], headers=self._headers, read_timeout=5.0
            )
            await response.read()
        except HTTPClientError as exc:
            raise self._translate(exc) from exc
        if response.status >= 500:
            raise UpstreamError(f"Upstream {self._host} health probe: HTTP {response.status}")

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["meta"] = {"backend": self.kind, "upstream": self._host}
        return out

    # ------------------------------------------------------------------ endpoints
    async def chat(self, body: dict[str, Any], stream: bool, ctx: RequestContext) -> Result:
        return await self._call("chat", body, stream, ctx)

    async def completion(self, body: dict[str, Any], stream: bool, ctx: RequestContext) -> Result:
        return await self._call("completion", body, stream, ctx)

    async def embeddings(
        self, body: dict[str, Any], inputs: list[Any], ctx: RequestContext
    ) -> Result:
        return await self._call("embeddings", body, False, ctx)

    async def _call(
        self, endpoint: str, body: dict[str, Any], stream: bool, ctx: RequestContext
    ) -> Result:
        body["model"] = self._upstream_model
        strip_usage = False
        if stream:
            options = body.get("stream_options")
            if not isinstance(options, dict):
                options = {}
            if options.get("include_usage") is not True:
                strip_usage = True
                body["stream_options"] = {**options, "include_usage": True}
        payload = orjson.dumps(body)
        ctx.backend_started_at = time.perf_counter()
        response = await self._send(endpoint, payload, ctx)
        ctx.backend_headers_at = time.perf_counter()
        if response.status >= 400:
            raise await self._error(response)
        if stream:
            return EventStream(
                ClosingStream(self._relay(response, ctx, strip_usage), response.aclose)
            )
        data, parsed = await read_json(response, f"upstream {self._host}")
        ctx.first_token_at = ctx.backend_done_at = time.perf_counter()
        if isinstance(parsed, dict):
            usage = parsed.get("usage")
            if isinstance(usage, dict):
                ctx.usage = usage
        return Completion(data)

    async def _send(self, endpoint: str, payload: bytes, ctx: RequestContext) -> ClientResponse:
        headers = self._headers + upstream_headers(ctx)  # traceparent: this request's span
        try:
            return await self._client.request(
                "POST", self._urls[endpoint], headers=headers, body=payload
            )
        except HTTPClientError as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: HTTPClientError) -> BastionError:
        return translate(exc, f"upstream {self._host}")

    async def _error(self, response: ClientResponse) -> BastionError:
        raw = await error_body(response)
        message = _upstream_message(raw) or f"HTTP {response.status}"
        retry = retry_after(response)
        text = f"Upstream {self._host} returned {response.status}: {message}"
        if response.status == 429:
            return RateLimited(text, retry_after=retry)
        if response.status >= 500:
            return UpstreamError(text, retry_after=retry)
        # A 4xx from the upstream is about the request: pass its status through.
        return UpstreamError(text, status=response.status, code="upstream_rejected")

    # ------------------------------------------------------------------ streams
    async def _relay(
        self, response: ClientResponse, ctx: RequestContext, strip_usage: bool
    ) -> AsyncIterator[bytes]:
        buffer = b""
        done = False
        try:
            async for data in response.iter_chunks():
                buffer = buffer + data if buffer else data
                if b"\n\n" not in buffer and b"\r\n\r\n" not in buffer:
                    continue
                if b"\r\n" in buffer:
                    buffer = buffer.replace(b"\r\n", b"\n")
                *events, buffer = buffer.split(b"\n\n")
                out: list[bytes] = []
                for event in events:
                    verdict = self._check_event(event, ctx, strip_usage)
                    if verdict is None:
                        continue
                    if verdict is _DONE:
                        done = True
                    elif isinstance(verdict, BastionError):
                        if out:
                            yield b"".join(out)
                        yield sse_error(verdict)
                        return
                    out.append(event + b"\n\n")
                if out:
                    yield b"".join(out)
                if done:
                    break
        except HTTPClientError as exc:
            yield sse_error(self._translate(exc))
            return
        finally:
            await response.aclose()
        if not done:
            yield sse_error(
                UpstreamError(f"Upstream {self._host} ended the stream before [DONE]")
            )

    def _check_event(
        self, event: bytes, ctx: RequestContext, strip_usage: bool
    ) -> bytes | BastionError | None:
        """Returns the event to forward, _DONE, None (drop it) or an error to end with."""
        data = event_data(event)
        if not data:
            return event  # comments / keep-alives are forwarded as they are
        if data == _DONE:
            return _DONE
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return UpstreamError(f"Upstream {self._host} sent a malformed stream event")
        if not isinstance(chunk, dict):
            return UpstreamError(f"Upstream {self._host} sent a malformed stream event")
        if "error" in chunk:
            return UpstreamError(f"Upstream {self._host} failed mid-stream: {_message_of(chunk)}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            ctx.usage = usage
            if strip_usage and not chunk.get("choices"):
                return None
            if strip_usage:
                chunk["usage"] = None
                return b"data: " + orjson.dumps(chunk)
        if ctx.first_token_at is None:
            ctx.first_token_at = time.perf_counter()
        return event


def _message_of(payload: dict[str, Any]) -> str:
    error = payload.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return "unknown error"


def _upstream_message(raw: bytes) -> str | None:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:500] or None
    if isinstance(parsed, dict):
        return _message_of(parsed)
    return None
