"""A fake OpenAI-compatible upstream for tests, controllable per request.

A real HTTP/1.1 server on loopback, built on stdlib asyncio only, serving from a
daemon thread with its own event loop, so sync and async tests can both use it::

    with FakeUpstream().start() as up:
        up.behaviour.status = 503                      # default for every request
        client.post(up.base_url + "/chat/completions",
                    headers={"x-fake-delay-ms": "200"}) # override for one request

Every :class:`Behaviour` field can be overridden for a single request with a
header ``x-fake-<field-with-dashes>: <value>``.  An unknown ``x-fake-*`` header or
an unparsable value gets a 400 envelope (so a typo in a test fails loudly).
``up.tool_calls = [...]`` makes chat replies those tool calls (streamed as deltas).

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``,
``POST /v1/embeddings``, ``GET /v1/models``, ``GET /v1/models/{id}``,
``GET /health``.

Order of processing per request: read and record the request, resolve the
behaviour, sleep ``delay_ms``, ``drop=before_headers``/``reset``, auth (401),
forced ``status`` (error envelope), then routing (404 / 400 / endpoint).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import email.utils
import hashlib
import itertools
import json
import math
import re
import socket
import struct
import threading
import time
import typing
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Literal

__all__ = ["DEFAULT_CONTENT", "DROP_MODES", "Behaviour", "FakeUpstream"]

DEFAULT_CONTENT = "Hello from the fake upstream."
DROP_MODES = ("before_headers", "mid_body", "mid_stream", "reset")

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024


@dataclasses.dataclass
class Behaviour:
    """How the fake answers.  Mutable defaults on ``FakeUpstream.behaviour``."""

    delay_ms: int = 0
    """Sleep before sending the response headers."""
    chunk_delay_ms: int = 0
    """Sleep between consecutive SSE events of a stream (not before the first)."""
    chunks: int = 5
    """Number of content chunks a streamed reply is split into."""
    status: int = 200
    """Non-200 → that status with the OpenAI error envelope (``server_error``)."""
    retry_after: float | None = None
    """Seconds; sent as a ``Retry-After`` header when set (any status)."""
    drop: Literal["before_headers", "mid_body", "mid_stream", "reset"] | None = None
    """``before_headers``: close (FIN) without answering.  ``mid_body``: headers and
    half the body, then close.  ``mid_stream``: 2 SSE events then close, without
    the terminating chunk or ``[DONE]`` (for a non-stream request this acts like
    ``mid_body``).  ``reset``: abort with a TCP RST without answering."""
    malformed_stream: bool = False
    """Stream: 1 good event, then ``data: {not json``, then ``data: [DONE]``."""
    content: str = DEFAULT_CONTENT
    """Text of the reply."""
    chunked: bool = False
    """Non-stream responses use ``Transfer-Encoding: chunked`` (not Content-Length)."""
    require_auth: bool = True
    """If the server has an ``api_key``, demand ``Authorization: Bearer <api_key>``."""
    close_delimited: bool = False
    """Extra: no Content-Length, no chunking; the body ends when the socket closes
    (streams too)."""
    keep_alive: bool = True
    """Extra: False → answer with ``Connection: close`` and close afterwards."""


_BEHAVIOUR_FIELDS = {f.name: f for f in dataclasses.fields(Behaviour)}
_BEHAVIOUR_HINTS = typing.get_type_hints(Behaviour)


def _parse_field(name: str, raw: str) -> Any:
    """Parse a header value into the type of ``Behaviour.<name>``; ValueError if bad."""
    hint = _BEHAVIOUR_HINTS[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    value = raw.strip()
    if optional and value.lower() in ("", "none", "null"):
        return None
    if optional:
        inner = [a for a in args if a is not type(None)]
        hint = inner[0] if len(inner) == 1 else hint
    if typing.get_origin(hint) is Literal:
        if value not in typing.get_args(hint):
            raise ValueError(f"{name} must be one of {typing.get_args(hint)}")
        return value
    if hint is bool:
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} must be a boolean")
    if hint is int:
        return int(value)
    if hint is float:
        result = float(value)
        if not math.isfinite(result):
            raise ValueError(f"{name} must be finite")
        return result
    if hint is str:
        return raw  # content: keep as sent (header values are latin-1 decoded)
    raise ValueError(f"unsupported field type for {name}")  # pragma: no cover


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Dropped(Exception):
    """The connection was deliberately broken; stop serving it."""


@dataclasses.dataclass
class _Request:
    method: str
    target: str
    path: str
    version: str
    headers: dict[str, str]
    raw: bytes
    conn_id: int

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


def _error_body(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _count_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def _tokens(text: str) -> list[str]:
    """Split text into plausible tokens that concatenate back to it."""
    return re.findall(r"\s*\w+|\s*[^\w\s]|\s+$", text)


def _split(text: str, n: int) -> list[str]:
    """Split text into exactly n pieces (some may be empty) that join back to it."""
    if n <= 0:
        return []
    size = len(text)
    bounds = [i * size // n for i in range(n + 1)]
    return [text[bounds[i] : bounds[i + 1]] for i in range(n)]


def _logprob(token: str) -> float:
    digest = hashlib.sha256(token.encode()).digest()
    return -round(digest[0] / 255 * 2.0, 6) - 0.0001


def _chat_logprobs(tokens: list[str], top: int) -> list[dict[str, Any]]:
    out = []
    for tok in tokens:
        lp = _logprob(tok)
        tops = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}]
        for i in range(1, top):
            alt = f"{tok.strip() or '_'}{i}"
            tops.append({"token": alt, "logprob": lp - i, "bytes": list(alt.encode())})
        out.append(
            {
                "token": tok,
                "logprob": lp,
                "bytes": list(tok.encode()),
                "top_logprobs": tops[:top],
            }
        )
    return out


def _completion_logprobs(tokens: list[str], top: int, offset: int = 0) -> dict[str, Any]:
    text_offset = []
    pos = offset
    for tok in tokens:
        text_offset.append(pos)
        pos += len(tok)
    return {
        "tokens": tokens,
        "token_logprobs": [_logprob(t) for t in tokens],
        "top_logprobs": [{t: _logprob(t)} for t in tokens] if top > 0 else None,
        "text_offset": text_offset,
    }


def _embedding(item: Any) -> list[float]:
    digest = hashlib.sha256(json.dumps(item).encode()).digest()
    vec = [(b - 127.5) / 127.5 for b in digest[:8]]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [round(v / norm, 6) for v in vec]


def _text_of(value: Any) -> str:
    """Flatten message content / prompt into text for token counting."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text_of(v) for v in value)
    if isinstance(value, dict):
        if "text" in value:
            return _text_of(value["text"])
        if "content" in value:
            return _text_of(value["content"])
        return ""
    return str(value)


def _sse(obj: Any) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


Chunk = Callable[..., dict[str, Any]]


def _completion(cid: str, created: int, model: str, message: dict[str, Any], logprobs: Any,
                finish: str, usage: dict[str, int]) -> dict[str, Any]:
    """A whole ``chat.completion`` with one choice, as OpenAI sends it."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": logprobs,
                     "finish_reason": finish}],
        "usage": usage,
        "system_fingerprint": "fp_fake",
    }


def _chunk_maker(cid: str, created: int, model: str, include_usage: bool) -> Chunk:
    """The builder of one stream's ``chat.completion.chunk`` events, as OpenAI sends them
    (``usage: null`` on each when the client asked for usage at the end)."""

    def chunk(delta: dict[str, Any], finish: str | None, lp: Any = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}],
        }
        if include_usage:
            out["usage"] = None
        return out

    return chunk


def _with_usage(events: list[dict[str, Any]], chunk: Chunk,
                usage: dict[str, int] | None) -> list[dict[str, Any]]:
    """``events``, and when ``usage`` is given the final usage event (no choices)."""
    if usage is not None:
        final = chunk({}, None)
        final["choices"] = []
        final["usage"] = usage
        events.append(final)
    return events


class FakeUpstream:
    """Fake OpenAI-compatible HTTP/1.1 upstream on loopback, served from a thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None):
        self.host = host
        self.port = port
        self.api_key = api_key
        self.model_ids: list[str] = ["fake-model"]
        self.behaviour = Behaviour()
        # replies for the next requests, in order (then behaviour.content again)
        self.contents: list[str] = []
        # tool calls every chat reply makes while set, in OpenAI's message shape
        # ({"id", "type": "function", "function": {"name", "arguments"}}): the reply has
        # no content and finish_reason "tool_calls"; a stream sends each call's id and
        # name first, then its arguments in ``behaviour.chunks`` pieces, by index.
        self.tool_calls: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.connections_opened = 0
        self.errors: list[BaseException] = []
        """Unexpected exceptions inside the fake itself (should stay empty)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._conn_ids = itertools.count(1)
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def url(self) -> str:
        """Root URL without ``/v1`` (for ``/health``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections_active(self) -> int:
        return len(self._writers)

    def start(self) -> FakeUpstream:
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("FakeUpstream did not start in time")
        if self._start_error is not None:
            self._thread.join(5)
            self._thread = None
            raise self._start_error
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            with contextlib.suppress(Exception):
                fut.result(10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None

    def reset(self) -> None:
        """Clear recorded requests and errors, restore default behaviour, zero the
        ``connections_opened`` counter (already-open keep-alive connections stay)."""
        self.requests.clear()
        self.errors.clear()
        self.behaviour = Behaviour()
        self.contents = []
        self.tool_calls = []
        self.connections_opened = 0

    def __enter__(self) -> FakeUpstream:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least n requests were received (for fire-and-forget paths)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"got {len(self.requests)} requests, wanted {n}")
            time.sleep(0.005)
        return self.requests

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._handle, self.host, self.port, limit=_MAX_HEAD, reuse_address=True
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                self._start_error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ---------------------------------------------------------------- connection
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections_opened += 1
        conn_id = next(self._conn_ids)
        try:
            while True:
                try:
                    req = await self._read_request(reader, writer, conn_id)
                except _HTTPError as exc:
                    await self._send(
                        writer,
                        exc.status,
                        _error_body(exc.message, "invalid_request_error"),
                        Behaviour(),
                        keep_alive=False,
                    )
                    break
                if req is None:
                    break
                if not await self._serve(req, writer):
                    break
        except (ConnectionError, _Dropped, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # stop(): end quietly.  (3.11's start_server done-callback calls
            # task.exception() on the task, which would log a cancelled task.)
            pass
        except Exception as exc:
            self.errors.append(exc)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn_id: int
    ) -> _Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _HTTPError(400, "incomplete request head") from None
            return None
        except asyncio.LimitOverrunError:
            raise _HTTPError(431, "request head too large") from None
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise _HTTPError(400, "bad request line") from None
        if not version.startswith("HTTP/1."):
            raise _HTTPError(505, "HTTP version not supported")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _HTTPError(400, f"bad header line {line!r}")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        te = headers.get("transfer-encoding", "").lower()
        if te:
            if te.split(",")[-1].strip() != "chunked":
                raise _HTTPError(501, f"unsupported transfer-encoding {te!r}")
            body = await self._read_chunked(reader)
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise _HTTPError(400, "bad content-length") from None
            if length < 0 or length > _MAX_BODY:
                raise _HTTPError(413, "bad content-length")
            body = await reader.readexactly(length)
        else:
            body = b""
        path = target.split("?", 1)[0]
        return _Request(method, target, path, version, headers, body, conn_id)

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _HTTPError(400, "bad chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > _MAX_BODY:
                raise _HTTPError(413, "body too large")
            parts.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise _HTTPError(400, "bad chunk terminator")

    # ------------------------------------------------------------------- serving
    def _resolve(self, req: _Request) -> Behaviour:
        overrides: dict[str, Any] = {}
        for key, value in req.headers.items():
            if not key.startswith("x-fake-"):
                continue
            name = key[len("x-fake-") :].replace("-", "_")
            if name not in _BEHAVIOUR_FIELDS:
                raise _HTTPError(400, f"unknown fake header {key!r}")
            try:
                overrides[name] = _parse_field(name, value)
            except ValueError as exc:
                raise _HTTPError(400, f"bad value for {key!r}: {exc}") from None
        if self.contents and "content" not in overrides:
            overrides["content"] = self.contents.pop(0)
        return dataclasses.replace(self.behaviour, **overrides)

    async def _serve(self, req: _Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; return whether the connection may be reused."""
        parsed: Any = None
        json_error = False
        if req.raw:
            try:
                parsed = json.loads(req.raw)
            except (ValueError, UnicodeDecodeError):
                json_error = True
        self.requests.append(
            {
                "method": req.method,
                "path": req.path,
                "target": req.target,
                "headers": dict(req.headers),
                "json": parsed,
                "raw": req.raw,
                "conn": req.conn_id,
                "time": time.monotonic(),
            }
        )
        keep = req.keep_alive
        try:
            b = self._resolve(req)
        except _HTTPError as exc:
            body = _error_body(exc.message, "invalid_request_error")
            return await self._send(writer, exc.status, body, Behaviour(), keep)

        if b.delay_ms > 0:
            await asyncio.sleep(b.delay_ms / 1000)
        if b.drop == "before_headers":
            raise _Dropped
        if b.drop == "reset":
            self._reset(writer)
            raise _Dropped

        authorized = req.headers.get("authorization", "") == f"Bearer {self.api_key}"
        if self.api_key is not None and b.require_auth and not authorized:
            body = _error_body(
                "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
            return await self._send(writer, 401, body, b, keep)
        if b.status != 200:
            body = _error_body("fake upstream error", "server_error")
            return await self._send(writer, b.status, body, b, keep)

        route = self._route(req)
        if route is None:
            body = _error_body(f"Invalid URL ({req.method} {req.path})", "invalid_request_error")
            return await self._send(writer, 404, body, b, keep)
        is_post = route.__name__.startswith("_post")
        if is_post and (json_error or not isinstance(parsed, dict)):
            body = _error_body(
                "We could not parse the JSON body of your request.", "invalid_request_error"
            )
            return await self._send(writer, 400, body, b, keep)
        try:
            result = route(req, parsed or {}, b)
        except _HTTPError as exc:
            body = _error_body(exc.message, "invalid_request_error")
            return await self._send(writer, exc.status, body, b, keep)
        if isinstance(result, list):
            return await self._stream(writer, result, b, keep)
        return await self._send(writer, 200, result, b, keep)

    def _route(self, req: _Request) -> Callable[[_Request, dict[str, Any], Behaviour], Any] | None:
        m, p = req.method, req.path.rstrip("/") or "/"
        if m == "POST" and p == "/v1/chat/completions":
            return self._post_chat
        if m == "POST" and p == "/v1/completions":
            return self._post_completions
        if m == "POST" and p == "/v1/embeddings":
            return self._post_embeddings
        if m == "GET" and p == "/v1/models":
            return self._get_models
        if m == "GET" and p.startswith("/v1/models/"):
            return self._get_model
        if m == "GET" and p == "/health":
            return self._get_health
        return None

    # ----------------------------------------------------------------- endpoints
    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-fake{next(self._ids):06d}"

    @staticmethod
    def _model(body: dict[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _HTTPError(400, "you must provide a model parameter")
        return model

    @staticmethod
    def _include_usage(body: dict[str, Any]) -> bool:
        opts = body.get("stream_options")
        return isinstance(opts, dict) and opts.get("include_usage") is True

    def _post_chat(self, req: _Request, body: dict[str, Any], b: Behaviour) -> Any:
        model = self._model(body)
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise _HTTPError(400, "'messages' is a required property")
        prompt_tokens = _count_tokens(_text_of(messages))
        calls = [json.loads(json.dumps(c)) for c in self.tool_calls]  # a copy per reply
        answer = "".join(c["function"]["arguments"] for c in calls) if calls else b.content
        completion_tokens = _count_tokens(answer)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if calls:
            return self._tool_reply(body, model, calls, usage, b)
        want_logprobs = body.get("logprobs") is True
        top = body.get("top_logprobs") or 0
        top = top if isinstance(top, int) and top > 0 else 0
        cid, created = self._new_id("chatcmpl"), int(time.time())
        if not body.get("stream"):
            logprobs = (
                {"content": _chat_logprobs(_tokens(b.content), top), "refusal": None}
                if want_logprobs
                else None
            )
            message = {"role": "assistant", "content": b.content, "refusal": None}
            return _completion(cid, created, model, message, logprobs, "stop", usage)

        include_usage = self._include_usage(body)

        chunk = _chunk_maker(cid, created, model, include_usage)
        events = [chunk({"role": "assistant", "content": ""}, None)]
        for piece in _split(b.content, b.chunks):
            lp = (
                {"content": _chat_logprobs(_tokens(piece), top), "refusal": None}
                if want_logprobs
                else None
            )
            events.append(chunk({"content": piece}, None, lp))
        events.append(chunk({}, "stop"))
        return _with_usage(events, chunk, usage if include_usage else None)

    def _tool_reply(
        self,
        body: dict[str, Any],
        model: str,
        calls: list[dict[str, Any]],
        usage: dict[str, int],
        b: Behaviour,
    ) -> Any:
        """A reply made of ``calls`` (see ``tool_calls``), whole or as OpenAI streams it."""
        cid, created = self._new_id("chatcmpl"), int(time.time())
        if not body.get("stream"):
            message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": calls}
            return _completion(cid, created, model, message, None, "tool_calls", usage)
        include_usage = self._include_usage(body)

        chunk = _chunk_maker(cid, created, model, include_usage)
        events = [chunk({"role": "assistant", "content": None}, None)]
        for index, call in enumerate(calls):
            fn = call["function"]
            head = {"index": index, "id": call["id"], "type": call.get("type", "function"),
                    "function": {"name": fn["name"], "arguments": ""}}
            events.append(chunk({"tool_calls": [head]}, None))
            for piece in _split(fn["arguments"], b.chunks):
                if piece:
                    part = {"index": index, "function": {"arguments": piece}}
                    events.append(chunk({"tool_calls": [part]}, None))
        events.append(chunk({}, "tool_calls"))
        return _with_usage(events, chunk, usage if include_usage else None)

    def _post_completions(self, req: _Request, body: dict[str, Any], b: Behaviour) -> Any:
        model = self._model(body)
        if "prompt" not in body:
            raise _HTTPError(400, "'prompt' is a required property")
        prompt_tokens = _count_tokens(_text_of(body.get("prompt")))
        completion_tokens = _count_tokens(b.content)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        lp_n = body.get("logprobs")
        want_logprobs = isinstance(lp_n, int) and not isinstance(lp_n, bool)
        cid, created = self._new_id("cmpl"), int(time.time())

        def obj(text: str, finish: str | None, lp: Any = None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"text": text, "index": 0, "logprobs": lp, "finish_reason": finish}],
            }

        if not body.get("stream"):
            lp = _completion_logprobs(_tokens(b.content), lp_n) if want_logprobs else None
            out = obj(b.content, "stop", lp)
            out["usage"] = usage
            return out

        include_usage = self._include_usage(body)
        events: list[dict[str, Any]] = []
        offset = 0
        for piece in _split(b.content, b.chunks):
            lp = _completion_logprobs(_tokens(piece), lp_n, offset) if want_logprobs else None
            offset += len(piece)
            events.append(obj(piece, None, lp))
        events.append(obj("", "stop"))
        if include_usage:
            for ev in events:
                ev["usage"] = None
            final = obj("", None)
            final["choices"] = []
            final["usage"] = usage
            events.append(final)
        return events

    def _post_embeddings(self, req: _Request, body: dict[str, Any], b: Behaviour) -> Any:
        model = self._model(body)
        raw = body.get("input")
        if isinstance(raw, str):
            items: list[Any] = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            items = [raw]  # one pre-tokenized input
        elif isinstance(raw, list) and raw and all(isinstance(x, str | list) for x in raw):
            items = list(raw)
        else:
            raise _HTTPError(400, "'input' must be a string or a non-empty array")
        b64 = body.get("encoding_format") == "base64"
        data = []
        tokens = 0
        for i, item in enumerate(items):
            vec = _embedding(item)
            tokens += len(item) if isinstance(item, list) else max(1, _count_tokens(item))
            emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _model_obj(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": "fake"}

    def _get_models(self, req: _Request, body: dict[str, Any], b: Behaviour) -> Any:
        return {"object": "list", "data": [self._model_obj(m) for m in self.model_ids]}

    def _get_model(self, req: _Request, body: dict[str, Any], b: Behaviour) -> Any:
        model_id = req.path.rstrip("/")[len("/v1/models/") :]
        if model_id not in self.model_ids:
            raise _HTTPError(404, f"The model '{model_id}' does not exist")
        return self._model_obj(model_id)

    def _get_health(self, req: _Request, body: dict[str, Any], b: Behaviour) -> Any:
        return {"status": "ok"}

    # ------------------------------------------------------------------- writing
    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    @staticmethod
    def _head(
        status: int, content_type: str, framing: str, length: int, keep: bool, b: Behaviour
    ) -> bytes:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"date: {email.utils.formatdate(usegmt=True)}",
            "server: fake-upstream",
            f"content-type: {content_type}",
        ]
        if framing == "length":
            lines.append(f"content-length: {length}")
        elif framing == "chunked":
            lines.append("transfer-encoding: chunked")
        if content_type.startswith("text/event-stream"):
            lines.append("cache-control: no-cache")
        if b.retry_after is not None:
            ra = b.retry_after
            lines.append(f"retry-after: {int(ra) if float(ra).is_integer() else ra}")
        lines.append("connection: keep-alive" if keep else "connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @staticmethod
    def _frame(data: bytes, framing: str) -> bytes:
        if framing == "chunked":
            return b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        return data

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, obj: Any, b: Behaviour, keep: bool
    ) -> bool:
        body = json.dumps(obj).encode()
        framing = "close" if b.close_delimited else "chunked" if b.chunked else "length"
        keep = keep and b.keep_alive and framing != "close"
        writer.write(self._head(status, "application/json", framing, len(body), keep, b))
        if b.drop in ("mid_body", "mid_stream"):
            writer.write(self._frame(body[: len(body) // 2], framing))
            await writer.drain()
            raise _Dropped
        writer.write(self._frame(body, framing))
        if framing == "chunked":
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        return keep

    async def _stream(
        self, writer: asyncio.StreamWriter, objs: list[Any], b: Behaviour, keep: bool
    ) -> bool:
        events = [_sse(o) for o in objs]
        if b.malformed_stream:
            events = [*events[:1], b"data: {not json\n\n"]
        events.append(_sse("[DONE]"))
        framing = "close" if b.close_delimited else "chunked"
        keep = keep and b.keep_alive and framing != "close"
        writer.write(self._head(200, "text/event-stream; charset=utf-8", framing, 0, keep, b))
        if b.drop == "mid_body":
            body = b"".join(events)
            writer.write(self._frame(body[: len(body) // 2], framing))
            await writer.drain()
            raise _Dropped
        await writer.drain()
        for i, event in enumerate(events):
            if b.drop == "mid_stream" and i == 2:
                raise _Dropped
            if i > 0 and b.chunk_delay_ms > 0:
                await asyncio.sleep(b.chunk_delay_ms / 1000)
            writer.write(self._frame(event, framing))
            await writer.drain()
        if framing == "chunked":
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        return keep
