"""A fake Anthropic Messages API for tests: a real HTTP/1.1 server on loopback.

stdlib asyncio in a daemon thread, serving ``POST /v1/messages``::

    with FakeAnthropic(api_key="sk-ant-test").start() as fake:
        fake.status, fake.retry_after = 429, 3       # every request until reset()
        ...
        fake.requests[-1]["body"]                    # what the gateway sent

It checks ``x-api-key`` (401 envelope) and ``anthropic-version`` (400), records every
request, and answers a text reply, or a ``tool_use`` of the first tool when tools were
given and the last user message mentions "weather", or exactly the ``tool_use`` blocks a
test puts in ``tool_uses`` (after a ``tool_text`` block when that is set). Streams are real Anthropic SSE
(``event:`` + ``data:`` lines, a ``ping``, chunked transfer encoding). ``stop_sequences``
and ``max_tokens`` (counted in words) cut the reply as Anthropic would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from typing import Any

__all__ = ["DEFAULT_REPLY", "FakeAnthropic"]

DEFAULT_REPLY = "Hello from the fake Anthropic upstream."
INPUT_TOKENS = 12
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class FakeAnthropic:
    def __init__(self, api_key: str = "sk-ant-test", version: str = "2023-06-01") -> None:
        self.api_key = api_key
        self.version = version
        self.host, self.port = "127.0.0.1", 0
        self.requests: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        """Forget recorded requests and restore the default behaviour."""
        self.requests.clear()
        self.reply = DEFAULT_REPLY
        self.status: int | None = None  # answer every request with this error status
        self.retry_after: str | None = None  # sent with a forced error status
        self.drop_mid_stream = False  # close the connection after the first text delta
        self.error_mid_stream = False  # send an `error` event after the first text delta
        self.delay = 0.0  # seconds to wait before answering
        # while set, every reply is these tool_use blocks ({"id", "name", "input"}),
        # preceded by a text block when tool_text is set; stop_reason "tool_use"
        self.tool_uses: list[dict[str, Any]] = []
        self.tool_text: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeAnthropic:
        self._thread = threading.Thread(target=self._run, name="fake-anthropic", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("FakeAnthropic did not start")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeAnthropic:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, self.host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(self._server.wait_closed())
            asyncio.set_event_loop(None)
            loop.close()

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if not await self._serve(method, path, headers, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _serve(
        self, method: str, path: str, headers: dict[str, str], raw: bytes, writer: Any
    ) -> bool:
        if method != "POST" or path != "/v1/messages":
            return self._json(writer, 404, _error(404, f"{method} {path} not found"))
        if headers.get("x-api-key") != self.api_key:
            return self._json(writer, 401, _error(401, "invalid x-api-key"))
        if headers.get("anthropic-version") != self.version:
            return self._json(writer, 400, _error(400, "anthropic-version header is required"))
        body = json.loads(raw)
        self.requests.append({"headers": headers, "body": body})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status is not None:
            extra = {"retry-after": self.retry_after} if self.retry_after else {}
            return self._json(writer, self.status, _error(self.status, "forced error"), extra)
        message = self._message(body)
        if not body.get("stream"):
            return self._json(writer, 200, message)
        await self._stream(writer, message)
        return not self.drop_mid_stream

    def _json(
        self, writer: Any, status: int, payload: Any, extra: dict[str, str] | None = None
    ) -> bool:
        data = json.dumps(payload).encode()
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
                "content-type: application/json", f"content-length: {len(data)}",
                "request-id: req_fake"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        return True

    # ------------------------------------------------------------------ replies
    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        msg_id = f"msg_fake{next(self._ids)}"
        usage = {"input_tokens": INPUT_TOKENS, "output_tokens": 0}
        out: dict[str, Any] = {
            "id": msg_id, "type": "message", "role": "assistant", "model": body["model"],
            "content": [], "stop_reason": "end_turn", "stop_sequence": None, "usage": usage,
        }
        if self.tool_uses:
            text = [{"type": "text", "text": self.tool_text}] if self.tool_text else []
            uses = [{"type": "tool_use", **json.loads(json.dumps(u))} for u in self.tool_uses]
            out["content"] = text + uses
            out["stop_reason"] = "tool_use"
            usage["output_tokens"] = 7 * len(uses)
            return out
        tools = body.get("tools") or []
        if tools and "weather" in _last_user_text(body.get("messages") or []):
            out["content"] = [{"type": "tool_use", "id": f"toolu_fake{next(self._ids)}",
                               "name": tools[0]["name"], "input": {"city": "Paris"}}]
            out["stop_reason"] = "tool_use"
            usage["output_tokens"] = 9
            return out
        words = self.reply.split(" ")
        if len(words) > body["max_tokens"]:
            words = words[: body["max_tokens"]]
            out["stop_reason"] = "max_tokens"
        text = " ".join(words)
        for stop in body.get("stop_sequences") or []:
            if stop in text:
                text = text[: text.index(stop)]
                out["stop_reason"], out["stop_sequence"] = "stop_sequence", stop
        out["content"] = [{"type": "text", "text": text}]
        usage["output_tokens"] = len(text.split())
        return out

    async def _stream(self, writer: Any, message: dict[str, Any]) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")

        async def send(kind: str, data: dict[str, Any]) -> None:
            event = f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()

        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
                 "usage": {**message["usage"], "output_tokens": 1}}
        await send("message_start", {"message": start})
        await send("ping", {})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                await send("content_block_start",
                           {"index": index, "content_block": {"type": "text", "text": ""}})
                words = block["text"].split(" ")
                pieces = [w + " " for w in words[:-1]] + [words[-1]]
                for n, piece in enumerate(pieces):
                    await send("content_block_delta", {
                        "index": index, "delta": {"type": "text_delta", "text": piece}})
                    if n == 0 and self.drop_mid_stream:
                        writer.transport.abort()
                        return
                    if n == 0 and self.error_mid_stream:
                        await send("error", {"error": {"type": "overloaded_error",
                                                       "message": "Overloaded"}})
                        writer.write(b"0\r\n\r\n")
                        return
            else:
                await send("content_block_start", {"index": index, "content_block": {
                    **block, "input": {}}})
                args = json.dumps(block["input"])
                for piece in ("", args[:9], args[9:]):
                    await send("content_block_delta", {"index": index, "delta": {
                        "type": "input_json_delta", "partial_json": piece}})
            await send("content_block_stop", {"index": index})
        await send("message_delta", {
            "delta": {"stop_reason": message["stop_reason"],
                      "stop_sequence": message["stop_sequence"]},
            "usage": {"output_tokens": message["usage"]["output_tokens"]}})
        await send("message_stop", {})
        writer.write(b"0\r\n\r\n")


def _error(status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return " ".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""
