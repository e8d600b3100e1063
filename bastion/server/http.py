"""A small HTTP/1.1 server on asyncio protocols and httptools: Bastion's hot path.

One :class:`HTTPProtocol` per connection parses requests with httptools, hands each
complete request to the handler as a task, and writes the response in one ``write`` call
(or chunk by chunk for a :class:`StreamingResponse`). It supports keep-alive, pipelining
(answered in order), ``Expect: 100-continue``, a request-body limit (413 before the body is
read), write back-pressure, an idle keep-alive timeout, and a graceful shutdown that lets
in-flight responses finish. When a client goes away, its handler task is cancelled, which
closes whatever upstream stream or model slot the handler held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools

from bastion.server.types import Handler, Headers, Request, Response, StreamingResponse

log = logging.getLogger("bastion.server")

_STATUS_LINES: dict[int, bytes] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("latin-1") for s in HTTPStatus
}
_LINGER_SECONDS = 2.0
_MAX_PIPELINED = 64

_date_cache: list[Any] = [0, b""]


def _date_header() -> bytes:
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    value: bytes = _date_cache[1]
    return value


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} Unknown\r\n".encode()
    return line


def _error_body(status: int, message: str, code: str) -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return (
        b'{"error":{"message":"' + message.encode() + b'","type":"' + kind.encode()
        + b'","param":null,"code":"' + code.encode() + b'"}}'
    )


class ServerConfig:
    __slots__ = ("keepalive_timeout", "max_body_bytes")

    def __init__(self, *, max_body_bytes: int = 8 << 20, keepalive_timeout: float = 75.0) -> None:
        self.max_body_bytes = max_body_bytes
        self.keepalive_timeout = keepalive_timeout


class _BodyTooLarge(Exception):
    pass


class HTTPProtocol(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_body_size",
        "_busy",
        "_closed",
        "_config",
        "_drain_waiter",
        "_handler",
        "_headers",
        "_idle_handle",
        "_keep_alive",
        "_loop",
        "_parser",
        "_pending",
        "_peer",
        "_server",
        "_shutting_down",
        "_task",
        "_transport",
        "_url",
        "_write_paused",
    )

    def __init__(self, server: HTTPServer) -> None:
        self._server = server
        self._handler = server.handler
        self._config = server.config
        self._loop = server.loop
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._peer: tuple[str, int] | None = None
        self._url = b""
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._keep_alive = True
        self._pending: deque[tuple[Request, bool]] = deque()
        self._busy = False
        self._closed = False
        self._shutting_down = False
        self._task: asyncio.Task[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._idle_handle: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server.connections.add(self)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        self._cancel_idle_timer()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._wake_drain()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._drain_waiter = None

    async def _drain(self) -> None:
        if self._write_paused and not self._closed:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter

    def data_received(self, data: bytes) -> None:
        if self._idle_handle is not None:
            self._cancel_idle_timer()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, "Protocol upgrades are not supported", "upgrade_not_supported")
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _BodyTooLarge):
                limit = self._config.max_body_bytes
                self._reject(
                    413, f"Request body exceeds the limit of {limit} bytes", "payload_too_large"
                )
            else:
                raise
        except httptools.HttpParserError:
            self._reject(400, "Malformed HTTP request", "malformed_http")

    def _reject(self, status: int, message: str, code: str) -> None:
        """Answer a request we cannot parse, then close after the client stops sending."""
        transport = self._transport
        if transport is None or self._closed:
            return
        self._keep_alive = False
        body = _error_body(status, message, code)
        transport.write(
            _status_line(status) + _date_header()
            + b"content-type: application/json\r\nconnection: close\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self._parser = _Discard()  # type: ignore[assignment]
        with contextlib.suppress(OSError, RuntimeError):
            if transport.can_write_eof():
                transport.write_eof()
        self._loop.call_later(_LINGER_SECONDS, transport.close)

    # ------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        expect_continue = False
        for name, value in self._headers:
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = 0
                if size > self._config.max_body_bytes:
                    raise _BodyTooLarge()
            elif name == b"expect" and value.lower() == b"100-continue":
                expect_continue = True
        if expect_continue and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._config.max_body_bytes:
            raise _BodyTooLarge()
        self._body.append(body)

    def on_message_complete(self) -> None:
        url = self._url
        qpos = url.find(b"?")
        if qpos >= 0:
            path, query = url[:qpos], url[qpos + 1 :]
        else:
            path, query = url, b""
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request = Request(
            self._parser.get_method().decode("ascii", "replace"),
            path.decode("latin-1"),
            query.decode("latin-1"),
            self._headers,
            body,
            self._peer,
            time.perf_counter(),
        )
        keep_alive = self._keep_alive
        if self._busy:
            self._pending.append((request, keep_alive))
            if len(self._pending) >= _MAX_PIPELINED and self._transport is not None:
                self._transport.pause_reading()
            return
        self._start(request, keep_alive)

    # ------------------------------------------------------------------ dispatch
    def _start(self, request: Request, keep_alive: bool) -> None:
        self._busy = True
        self._task = self._loop.create_task(self._run(request, keep_alive))

    async def _run(self, request: Request, keep_alive: bool) -> None:
        try:
            response = await self._handler(request)
        except asyncio.CancelledError:
            return
        except Exception:  # noqa: BLE001 - last resort: a handler bug must not kill the connection
            log.exception("unhandled error in handler for %s %s", request.method, request.path)
            response = Response(
                500,
                _error_body(500, "Internal server error", "internal_error"),
                [(b"content-type", b"application/json")],
            )
        if self._closed:
            if isinstance(response, StreamingResponse):
                await _abandon(response)
            return
        keep_alive = keep_alive and not self._shutting_down
        if isinstance(response, StreamingResponse):
            try:
                completed = await self._send_stream(response, keep_alive)
            except asyncio.CancelledError:
                return
            # A body that ended abnormally leaves the chunked framing unterminated: close,
            # so the client sees a truncated response rather than a well-formed partial one.
            keep_alive = keep_alive and completed
        else:
            self._send(response, keep_alive)
        self._after_response(keep_alive)

    def _head(self, status: int, headers: Headers, keep_alive: bool) -> list[bytes]:
        parts = [_status_line(status), _date_header()]
        for name, value in headers:
            parts.append(name + b": " + value + b"\r\n")
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        return parts

    def _send(self, response: Response, keep_alive: bool) -> None:
        transport = self._transport
        assert transport is not None
        parts = self._head(response.status, response.headers, keep_alive)
        body = response.body
        parts.append(b"content-length: " + str(len(body)).encode() + b"\r\n\r\n")
        parts.append(body)
        transport.write(b"".join(parts))

    async def _send_stream(self, response: StreamingResponse, keep_alive: bool) -> bool:
        transport = self._transport
        assert transport is not None
        parts = self._head(response.status, response.headers, keep_alive)
        parts.append(b"transfer-encoding: chunked\r\n\r\n")
        transport.write(b"".join(parts))
        completed = False
        body = response.body
        try:
            async for chunk in body:
                if self._closed:
                    break
                if chunk:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    if self._write_paused:
                        await self._drain()
            else:
                if not self._closed:
                    transport.write(b"0\r\n\r\n")
                    completed = True
        finally:
            if not completed:
                aclose = getattr(body, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
            if response.on_close is not None:
                response.on_close(completed)
        return completed

    def _after_response(self, keep_alive: bool) -> None:
        self._busy = False
        self._task = None
        transport = self._transport
        if transport is None or self._closed:
            return
        if not keep_alive:
            transport.close()
            return
        if self._pending:
            request, next_keep_alive = self._pending.popleft()
            if len(self._pending) < _MAX_PIPELINED // 2:
                transport.resume_reading()
            self._start(request, next_keep_alive)
        else:
            self._arm_idle_timer()

    # ------------------------------------------------------------------ timers and shutdown
    def _arm_idle_timer(self) -> None:
        self._cancel_idle_timer()
        self._idle_handle = self._loop.call_later(self._config.keepalive_timeout, self._on_idle)

    def _cancel_idle_timer(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _on_idle(self) -> None:
        self._idle_handle = None
        if not self._busy and self._transport is not None:
            self._transport.close()

    def begin_shutdown(self) -> None:
        """Close now if idle; otherwise finish the current response with Connection: close."""
        self._shutting_down = True
        self._pending.clear()
        if not self._busy and self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    @property
    def busy(self) -> bool:
        return self._busy


class _Discard:
    """Stands in for the parser after a rejected request: input is read and dropped."""

    def feed_data(self, data: bytes) -> None:
        return None


async def _abandon(response: StreamingResponse) -> None:
    aclose = getattr(response.body, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
    if response.on_close is not None:
        response.on_close(False)


class HTTPServer:
    """Owns the listening socket(s) and the set of live connections."""

    def __init__(self, handler: Handler, config: ServerConfig | None = None) -> None:
        self.handler = handler
        self.config = config or ServerConfig()
        self.connections: set[HTTPProtocol] = set()
        self.loop = asyncio.get_running_loop()
        self._server: asyncio.base_events.Server | None = None

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
        backlog: int = 2048,
    ) -> None:
        if sock is not None:
            self._server = await self.loop.create_server(
                lambda: HTTPProtocol(self), sock=sock, backlog=backlog
            )
        else:
            self._server = await self.loop.create_server(
                lambda: HTTPProtocol(self),
                host=host,
                port=port,
                reuse_port=reuse_port or None,
                backlog=backlog,
            )

    @property
    def sockets(self) -> list[socket.socket]:
        if self._server is None:
            return []
        return list(self._server.sockets)

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    async def shutdown(self, grace: float = 30.0) -> None:
        """Stop accepting, let in-flight responses finish (up to ``grace`` s), then close."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.begin_shutdown()
        deadline = self.loop.time() + grace
        while any(c.busy for c in self.connections) and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
