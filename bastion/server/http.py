"""A small HTTP/1.1 server on asyncio protocols and httptools: Bastion's hot path.

One :class:`HTTPProtocol` per connection parses requests with httptools, hands each
complete request to the handler as a task, and writes the response in one ``write`` call
(or chunk by chunk for a :class:`StreamingResponse`). It supports keep-alive, pipelining
(answered in order), half-close (requests received before the client's EOF are answered),
``Expect: 100-continue``, a request-body limit (413 before the body is read), write
back-pressure, header / body read timeouts (408) and an idle keep-alive timeout on one lazy
timer per connection, and a graceful drain (see :meth:`HTTPServer.shutdown`). Framing that
could smuggle a request past a proxy (both Content-Length and Transfer-Encoding, duplicate
or malformed lengths, obs-fold, bad chunk sizes: llhttp's strict mode; codings other than
``chunked``, Transfer-Encoding in HTTP/1.0, a missing or repeated Host: here) is a 400 and a
close. When a client goes away, its handler task is cancelled, which closes whatever
upstream stream or model slot the handler held. Given an SSL context (``start(ssl=...)``,
built by :mod:`bastion.server.tls`) it serves HTTPS, the same protocol over uvloop's TLS
transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from typing import TYPE_CHECKING

import httptools

from bastion.errors import error_body
from bastion.server.types import (
    Handler,
    Headers,
    Request,
    Response,
    StreamingResponse,
    aclose,
)
from bastion.server.wire import (
    _COLON,
    _HOST_CHARS,
    _METHODS,
    ServerConfig,
    _BadRequest,
    _BodyTooLarge,
    _check_coding,
    _check_hosts,
    _date_header,
    _header_lines,
    _HeadTooLarge,
    _request_id,
    _status_line,
)

if TYPE_CHECKING:
    from ssl import SSLContext

log = logging.getLogger("bastion.server")

_LINGER_SECONDS = 2.0  # after a rejection, how long the client may keep sending
_DRAIN_POLL = 0.05  # the shutdown loop's tick (shutdown only, never per request)
_TLS_CLOSE_WAIT = 0.5  # shutdown, TLS: how long an idle peer may take to answer close_notify
_STREAM_EAGER_BYTES = 1 << 10  # a stream's first body bytes are written chunk by chunk
_STREAM_FLUSH_BYTES = 16 << 10  # later chunks are coalesced up to this size per write
_MAX_HEAD_BYTES = 64 * 1024
_MAX_PIPELINED = 64

class HTTPProtocol(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_body_size",
        "_busy",
        "_closed",
        "_config",
        "_deferred",
        "_drain_waiter",
        "_eof",
        "_handler",
        "_head_size",
        "_headers",
        "_idle_limit",
        "_idle_since",
        "_keep_alive",
        "_loop",
        "_parser",
        "_peer",
        "_pending",
        "_read_body",
        "_read_limit",
        "_read_since",
        "_server",
        "_shutting_down",
        "_task",
        "_timer",
        "_transport",
        "_url",
        "_write_paused",
        "_write_timer",
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
        self._write_timer: asyncio.TimerHandle | None = None  # armed while writing is paused
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None  # the one lazy timer, see _on_timer
        self._deferred: bytes | None = None  # a rejection waiting for earlier responses
        self._head_size = 0
        self._idle_since = -1.0  # loop time the connection went idle; < 0 while in use
        self._idle_limit = self._config.header_timeout  # for the first byte; then keep-alive
        self._read_since = -1.0  # loop time the current read phase began; < 0: no partial request
        self._read_limit = 0.0  # that phase's timeout (header_timeout or body_timeout)
        self._read_body = False  # the phase is the body (else the request line and headers)
        self._eof = False  # the client half-closed: answer what was received, then close

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
        self._shutting_down = self._server.draining  # accepted just before the drain began
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        self._cancel_timer()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._wake_drain()

    def eof_received(self) -> bool | None:
        """The client half-closed (``shutdown(SHUT_WR)``): it sends no more, but still reads.

        Every complete request received before the EOF has been dispatched by now (parsing
        is synchronous): if any is still being answered, keep the transport open for
        writing (True) and close after the last response (:meth:`_after_response`), which
        carries ``Connection: close``. A partial request can never be completed: it is
        dropped. With nothing owed, the transport closes itself (None).
        """
        self._eof = True
        self._read_since = -1.0
        if self._server.tls:
            # TLS has no half-close here: after the client's close_notify uvloop shuts the
            # connection down whatever we return (and warns on True), so nothing more can
            # be written; connection_lost follows and cancels the request being answered.
            self._closed = True
            return None
        return True if self._busy else None

    def pause_writing(self) -> None:
        """The send buffer is over its high-water mark: the client reads slower than we
        write. A timer (rare: only a full buffer arms it) bounds how long it may stay so."""
        self._write_paused = True
        if self._write_timer is None:
            self._write_timer = self._loop.call_later(
                self._config.write_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._wake_drain()

    def _write_timed_out(self) -> None:
        """The client read nothing for ``write_timeout``: abort, since a close would wait
        for the buffer to drain, which it never will (the response is lost either way)."""
        self._write_timer = None
        if self._write_paused and self._transport is not None and not self._closed:
            log.info("closing a connection from %s: it read nothing for %g s",
                     self._peer[0] if self._peer else "?", self._config.write_timeout)
            self._transport.abort()

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
        self._idle_since = -1.0  # not idle; the idle timer, if armed, lets this pass
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
            elif isinstance(exc.__context__, _HeadTooLarge):
                self._reject(
                    431,
                    f"Request line and headers exceed {_MAX_HEAD_BYTES} bytes",
                    "headers_too_large",
                )
            elif isinstance(exc.__context__, _BadRequest):
                self._reject(400, exc.__context__.message, exc.__context__.code)
            else:
                raise
        except httptools.HttpParserError:
            self._reject(400, "Malformed HTTP request", "malformed_http")

    def _reject(self, status: int, message: str, code: str) -> None:
        """Answer a request we cannot parse, then close after the client stops sending.

        Responses go out in request order: if earlier (pipelined) requests are still being
        answered, the rejection waits for them.
        """
        if self._transport is None or self._closed:
            return
        self._keep_alive = False
        self._read_since = -1.0  # nothing more is read, so nothing more can time out
        self._parser = _Discard()  # type: ignore[assignment]
        body = error_body(status, message, code)
        payload = (
            _status_line(status) + _date_header()
            + b"content-type: application/json\r\nconnection: close\r\nx-request-id: "
            + _request_id() + b"\r\ncontent-length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body
        )
        if self._busy:
            self._deferred = payload
        else:
            self._write_final(payload)

    def _write_final(self, payload: bytes) -> None:
        transport = self._transport
        assert transport is not None
        transport.write(payload)
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
        self._head_size = 0
        # the header timeout runs from the first byte; the timer is pending unless the
        # connection was busy a whole step with nothing to read (see _on_timer)
        now = self._loop.time()
        self._read_since = now
        self._read_limit = self._config.header_timeout
        self._read_body = False
        if self._timer is None:
            self._timer = self._loop.call_at(now + self._config.timer_step, self._on_timer)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > _MAX_HEAD_BYTES:
            raise _HeadTooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._head_size += len(name) + len(value)
        if self._head_size > _MAX_HEAD_BYTES:
            raise _HeadTooLarge()

    def on_headers_complete(self) -> None:
        parser = self._parser
        self._keep_alive = parser.should_keep_alive()
        self._read_since = self._loop.time()  # the body timeout runs from here
        self._read_limit = self._config.body_timeout
        self._read_body = True
        expect_continue = False
        hosts = 0
        host = b""
        coding: bytes | None = None
        for name, value in self._headers:
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = 0
                if size > self._config.max_body_bytes:
                    raise _BodyTooLarge()
            elif name == b"host":
                hosts += 1
                host = value
            elif name == b"transfer-encoding":
                coding = value  # llhttp refused a repeated one, or one not ending in chunked
            elif name == b"expect" and value.lower() == b"100-continue":
                expect_continue = True
        if hosts != 1:
            _check_hosts(hosts, parser.get_http_version())
        elif host.translate(None, _HOST_CHARS):
            raise _BadRequest("Invalid Host header value", "invalid_host")
        if coding is not None:
            _check_coding(coding, parser.get_http_version())
        if expect_continue and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._config.max_body_bytes:
            raise _BodyTooLarge()
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._read_since = -1.0
        url = self._url
        if url[:1] != b"/" and url[:4].lower() == b"http":  # absolute-form request target
            parsed = httptools.parse_url(url)
            url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        qpos = url.find(b"?")
        if qpos >= 0:
            path, query = url[:qpos], url[qpos + 1 :]
        else:
            path, query = url, b""
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        method = self._parser.get_method()
        request = Request(
            _METHODS.get(method) or method.decode("ascii", "replace"),
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
        except Exception:
            log.exception("unhandled error in handler for %s %s", request.method, request.path)
            response = Response(
                500,
                error_body(500, "Internal server error", "internal_error"),
                [(b"content-type", b"application/json"), (b"x-request-id", _request_id())],
            )
        if self._closed:
            if isinstance(response, StreamingResponse):
                await _abandon(response)
            return
        # Draining or half-closed: the last response the connection owes carries
        # Connection: close.
        keep_alive = keep_alive and not ((self._shutting_down or self._eof) and not self._pending)
        if isinstance(response, StreamingResponse):
            try:
                completed = await self._send_stream(response, keep_alive)
            except asyncio.CancelledError:
                return
            except Exception:  # a body that raised mid-way: the client must not hang
                log.exception("stream body failed for %s %s", request.method, request.path)
                completed = False
            # A body that ended abnormally leaves the chunked framing unterminated: close,
            # so the client sees a truncated response rather than a well-formed partial one.
            keep_alive = keep_alive and completed
        else:
            self._send(response, keep_alive, request.method == "HEAD")
        self._after_response(keep_alive)

    def _head(self, status: int, headers: Headers, keep_alive: bool) -> bytes:
        return b"".join((
            _status_line(status),
            _date_header(),
            _header_lines(headers),
            b"" if keep_alive else b"connection: close\r\n",
        ))

    def _send(self, response: Response, keep_alive: bool, head: bool = False) -> None:
        transport = self._transport
        assert transport is not None
        body = response.body
        # one buffer, one write (one send syscall on an uncongested socket)
        transport.write(b"".join((
            _status_line(response.status),
            _date_header(),
            # _header_lines, inlined (every response's cost)
            b"\r\n".join(map(_COLON.join, headers)) + b"\r\n" if (headers := response.headers)
            else b"",
            b"content-length: %d\r\n\r\n" % len(body)
            if keep_alive
            else b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body),
            b"" if head else body,  # HEAD: the headers of a GET, no body
        )))

    async def _send_stream(self, response: StreamingResponse, keep_alive: bool) -> bool:
        """Relays the body as chunked transfer coding, coalescing writes.

        The start of a stream is latency-sensitive, its bulk is not: the status line
        goes out with the first chunk, and each chunk is written as soon as it exists
        until ``_STREAM_EAGER_BYTES`` of body have been sent (so the first content
        events are never held back). After that, chunks go to a buffer that is written
        when the body iterator next waits (a ``call_soon`` flush, i.e. the next
        event-loop turn) or reaches ``_STREAM_FLUSH_BYTES``: chunks that are available
        together (several SSE events from one upstream read) leave in one ``send``
        instead of one each, while a chunk that arrives alone still goes out in the loop
        turn it was produced in. Bytes on the wire are unchanged; a 22-event stream whose
        events arrive together costs about 6 ``send`` calls instead of 25.
        """
        transport = self._transport
        assert transport is not None
        pending: list[bytes] = [
            self._head(response.status, response.headers, keep_alive)
            + b"transfer-encoding: chunked\r\n\r\n"
        ]
        size = 0
        scheduled = False

        def flush() -> None:
            nonlocal size, scheduled
            scheduled = False
            if pending:
                if not self._closed:
                    transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
                pending.clear()
                size = 0

        self._loop.call_soon(flush)
        scheduled = True
        sent = 0
        completed = False
        body = response.body
        try:
            async for chunk in body:
                if self._closed:
                    break
                if chunk:
                    if self._write_paused:
                        flush()
                        await self._drain()
                    pending.append(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    size += len(chunk)
                    eager = sent < _STREAM_EAGER_BYTES
                    sent += len(chunk)
                    if eager or size >= _STREAM_FLUSH_BYTES:
                        flush()
                    elif not scheduled:
                        self._loop.call_soon(flush)
                        scheduled = True
            else:
                if not self._closed:
                    pending.append(b"0\r\n\r\n")
                    flush()
                    completed = True
        finally:
            flush()  # whatever was relayed before an error still goes out, as before
            if not completed:
                with contextlib.suppress(Exception):
                    await aclose(body)
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
        if not self._pending and self._deferred is not None:
            self._write_final(self._deferred)
            self._deferred = None
            return
        if self._pending:
            request, next_keep_alive = self._pending.popleft()
            if len(self._pending) < _MAX_PIPELINED // 2:
                if self._read_since >= 0 and not transport.is_reading():
                    # we stopped reading a partial request, not the client: its clock restarts
                    self._read_since = self._loop.time()
                transport.resume_reading()
            self._start(request, next_keep_alive)
        elif self._eof:
            transport.close()  # half-closed and everything received is answered
        else:
            self._idle_limit = self._config.keepalive_timeout
            self._arm_idle_timer()

    # ------------------------------------------------------------------ timers and shutdown
    def _arm_idle_timer(self) -> None:
        """Marks the connection idle and makes sure its timer is pending.

        One timer per connection covers the idle wait and the header and body reads. It is
        not cancelled when a request arrives, nor re-created after each response or read:
        state changes only record a loop time (``_idle_since``, ``_read_since``), and the
        timer, when it fires, checks the deadline of whatever state the connection is in
        then, re-arming for the remainder. A busy keep-alive connection thus costs no timer
        work per request, which a ``call_later`` + ``cancel`` pair did (a few microseconds
        each). See :meth:`_on_timer` for why no deadline is ever missed.
        """
        loop = self._loop
        now = loop.time()
        self._idle_since = now
        if self._timer is None:
            step = min(self._idle_limit, self._config.timer_step)
            self._timer = loop.call_at(now + step, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        """Enforces the deadline of the connection's current state, lazily.

        A partial request has ``_read_since + _read_limit`` (408 when passed), an idle
        connection ``_idle_since + _idle_limit`` (closed when passed). A connection that is
        answering and reading nothing has none: the timer lapses, and is armed again when
        a request begins (:meth:`on_message_begin`) or the connection goes idle.

        The timer never sleeps longer than ``timer_step`` (the smaller read timeout), so
        when a state begins, whatever timer is pending fires no later than that state's
        deadline: a request that starts 1 s into a 75 s keep-alive wait still gets its
        408 on time, without cancelling and re-creating a timer for it.
        """
        self._timer = None
        transport = self._transport
        if self._closed or transport is None:
            return
        loop = self._loop
        now = loop.time()
        if self._read_since >= 0:  # a partial request (maybe behind one being answered)
            deadline = self._read_since + self._read_limit
            if not transport.is_reading():  # paused by us (pipelining limit): not late
                deadline = now + self._config.timer_step
            elif now + 0.001 >= deadline:
                self._read_timed_out()
                return
        elif not self._busy:
            if self._idle_since < 0:  # bytes that began no request (a stray CRLF)
                self._idle_since = now
            deadline = self._idle_since + self._idle_limit
            if now + 0.001 >= deadline:
                transport.close()  # no bytes of a request: nothing to answer
                return
        else:
            return
        self._timer = loop.call_at(min(deadline, now + self._config.timer_step), self._on_timer)

    def _read_timed_out(self) -> None:
        part = "body" if self._read_body else "line and headers"
        limit = self._read_limit
        self._reject(
            408, f"The request {part} did not arrive within {limit:g} s", "request_timeout"
        )

    def begin_shutdown(self) -> None:
        """From now on, the response that leaves nothing pending carries Connection: close.

        An idle connection is not closed here: the server closes it after the drain linger
        (:meth:`close_if_idle`), so a request the client sent meanwhile is still answered.
        """
        self._shutting_down = True

    def close_if_idle(self, cutoff: float) -> bool:
        """Closes the connection if it has been idle (no request, not even part of one)
        since ``cutoff`` (loop time) or earlier; True if it is now closing."""
        since = self._idle_since
        if (
            self._busy or since < 0 or since > cutoff or self._read_since >= 0
            or self._transport is None
        ):
            return False
        self._transport.close()
        return True

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
    with contextlib.suppress(Exception):
        await aclose(response.body)
    if response.on_close is not None:
        response.on_close(False)


class HTTPServer:
    """Owns the listening socket(s) and the set of live connections."""

    def __init__(self, handler: Handler, config: ServerConfig | None = None) -> None:
        self.handler = handler
        self.config = config or ServerConfig()
        self.connections: set[HTTPProtocol] = set()
        self.draining = False
        self.tls = False  # serving HTTPS (set by start)
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
        ssl: SSLContext | None = None,
    ) -> None:
        """``ssl``: serve HTTPS with this context (see :mod:`bastion.server.tls`); the
        handshake must finish within ``header_timeout``, like a request's headers. A failed
        handshake (plain HTTP on this port, an untrusting client) closes the connection
        without a log line (uvloop logs it at debug level only in debug mode)."""
        self.tls = ssl is not None
        handshake = self.config.header_timeout if ssl is not None else None
        if sock is not None:
            self._server = await self.loop.create_server(
                lambda: HTTPProtocol(self), sock=sock, backlog=backlog, ssl=ssl,
                ssl_handshake_timeout=handshake,
            )
        else:
            self._server = await self.loop.create_server(
                lambda: HTTPProtocol(self),
                host=host,
                port=port,
                reuse_port=reuse_port or None,
                backlog=backlog,
                ssl=ssl,
                ssl_handshake_timeout=handshake,
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
        """Drains, Envoy-style, then closes; returns within ``grace`` s (plus one tick).

        It stops accepting at once. Every response from then on that leaves its connection
        with nothing pending carries ``Connection: close``, and the connection closes after
        it. An idle keep-alive connection is kept open for ``drain_linger`` (at most
        ``grace``) and then closed: closing it at once would reset a request the client
        had already sent on it (the keep-alive race, a failed request for a client that
        did nothing wrong), while a request that arrives within the linger is answered,
        with ``Connection: close``. Busy connections finish up to ``grace``; whatever is
        still open then is aborted. Nothing here costs a request anything: the loop below
        runs at shutdown only, and connections are told once (:meth:`begin_shutdown`).

        Over TLS, closing sends close_notify and uvloop then waits (up to 30 s) for the
        peer's, which an idle pooled client never sends: an idle connection closed here is
        aborted once ``_TLS_CLOSE_WAIT`` has passed, so that they do not hold the drain.
        """
        loop = self.loop
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.begin_shutdown()
        start = loop.time()
        deadline = start + grace
        linger = min(self.config.drain_linger, grace)
        closed_idle: dict[HTTPProtocol, float] = {}  # TLS: closed while idle, when
        # A 50 ms poll, at shutdown only: simpler than an event every response must set.
        while self.connections and loop.time() < deadline:
            now = loop.time()
            if now >= start + linger:
                for conn in list(self.connections):
                    if conn.close_if_idle(now - linger) and self.tls:
                        closed_idle.setdefault(conn, now)
                if self.tls and all(now - closed_idle.get(conn, now) >= _TLS_CLOSE_WAIT
                                    for conn in self.connections):
                    break  # all that is left waits on a close_notify that will not come
            await asyncio.sleep(_DRAIN_POLL)
        now = loop.time()
        for conn in list(self.connections):
            if self.tls or not conn.close_if_idle(now):
                conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
