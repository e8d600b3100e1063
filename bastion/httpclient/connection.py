"""One pooled HTTP/1.1 connection (an ``asyncio.Protocol``) and the response it delivers.

Hot-path notes: the protocol feeds bytes straight into ``httptools.HttpResponseParser``;
body pieces are appended to the response's deque as the parser hands them over and the
waiting consumer (if any) is woken with a bare future.  One read-timeout timer per
connection is kept armed across requests and only re-armed when it fires, so a request
costs no timer allocation in the common case.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import TYPE_CHECKING

import httptools

from .errors import HTTPClientError, ReadTimeout, RemoteProtocolError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import TracebackType

    from .pool import Pool

__all__ = ["HIGH_WATER", "LOW_WATER", "ClientResponse", "Connection"]

#: pause reading the socket once this many body bytes wait for the consumer
HIGH_WATER = 1 << 20
#: resume reading once the consumer has drained the buffer down to this
LOW_WATER = 256 << 10

_TIMER_SLACK = 1e-3


class ClientResponse:
    """Status line + headers of a response; the body is streamed from the connection."""

    __slots__ = ("_buffered", "_chunks", "_conn", "_done", "_exc", "headers", "status")

    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], conn: Connection | None
    ) -> None:
        self.status = status
        #: header names are lower-cased, values as received
        self.headers = headers
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._exc: BaseException | None = None

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} done={self._done}>"

    def header(self, name: bytes) -> bytes | None:
        """First value of header ``name`` (case-insensitive), or None."""
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def complete(self) -> bool:
        """True once the whole body has been received from the server."""
        return self._done

    async def read(self) -> bytes:
        """Read the whole body; the connection goes back to the pool when it is complete."""
        chunks = self._chunks
        if self._done:  # fast path: the body arrived with the headers
            self._buffered = 0
            if len(chunks) == 1:
                return chunks.popleft()
            data = b"".join(chunks)
            chunks.clear()
            return data
        parts: list[bytes] = []
        while True:
            if chunks:
                parts.extend(chunks)
                chunks.clear()
                self._buffered = 0
                conn = self._conn
                if conn is not None and conn._paused:
                    conn._resume()
            if self._done:
                break
            if self._exc is not None:
                raise self._exc
            await self._conn._wait_body(self)  # type: ignore[union-attr]
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes exactly as they come off the socket (one item per parser body callback)."""
        return self

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        chunks = self._chunks
        while True:
            if chunks:
                chunk = chunks.popleft()
                left = self._buffered - len(chunk)
                self._buffered = left
                if left <= LOW_WATER:
                    conn = self._conn
                    if conn is not None and conn._paused:
                        conn._resume()
                return chunk
            if self._done:
                raise StopAsyncIteration
            if self._exc is not None:
                raise self._exc
            await self._conn._wait_body(self)  # type: ignore[union-attr]

    async def aclose(self) -> None:
        """Release the response: a fully received body leaves the connection pooled,
        an unfinished one closes the socket."""
        self._abandon()

    def _abandon(self) -> None:
        self._chunks.clear()
        self._buffered = 0
        if self._done or self._exc is not None:
            return
        err = HTTPClientError("response closed before its body was read")
        self._exc = err
        conn = self._conn
        if conn is not None and conn._resp is self:
            conn._fail(err)
        self._conn = None

    async def __aenter__(self) -> ClientResponse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._abandon()


class Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection owned by a :class:`~bastion.httpclient.pool.Pool`."""

    __slots__ = (
        "_alive",
        "_busy",
        "_closed_early",
        "_counted",
        "_framed",
        "_got_bytes",
        "_head",
        "_headers",
        "_hfut",
        "_idle",
        "_idle_since",
        "_last_rx",
        "_loop",
        "_lost",
        "_lost_fut",
        "_nreq",
        "_parser",
        "_paused",
        "_pool",
        "_read_timeout",
        "_req_close",
        "_resp",
        "_srv_close",
        "_timer",
        "_timer_when",
        "_transport",
        "_waiter",
    )

    def __init__(self, pool: Pool, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._alive = False  # connected and not closed: may carry a request
        self._lost = False  # connection_lost ran (or connect failed)
        self._lost_fut: asyncio.Future[None] | None = None
        self._counted = True  # counts against the pool's connection limit
        self._idle = False  # sits in the pool's idle stack
        self._idle_since = 0.0
        self._busy = False  # a request is in flight (until its response is complete)
        self._hfut: asyncio.Future[ClientResponse] | None = None
        self._resp: ClientResponse | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._read_timeout = 0.0
        self._last_rx = 0.0
        self._paused = False
        self._head = False
        self._req_close = False
        self._got_bytes = False
        self._closed_early = False
        self._nreq = 0  # completed requests (>0: the connection is being reused)
        self._headers: list[tuple[bytes, bytes]] = []
        self._framed = False
        self._srv_close = False

    # ------------------------------------------------------------------ requests

    def _send(
        self, data: bytes | list[bytes], head: bool, req_close: bool, read_timeout: float
    ) -> asyncio.Future[ClientResponse]:
        loop = self._loop
        fut: asyncio.Future[ClientResponse] = loop.create_future()
        self._hfut = fut
        self._busy = True
        self._head = head
        self._req_close = req_close
        self._got_bytes = False
        self._headers = []
        self._framed = False
        self._srv_close = False
        now = loop.time()
        self._last_rx = now
        self._read_timeout = read_timeout
        when = now + read_timeout
        timer = self._timer
        if timer is None or self._timer_when > when + _TIMER_SLACK:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(when, self._on_timer)
            self._timer_when = when
        transport = self._transport
        assert transport is not None
        if isinstance(data, bytes):
            transport.write(data)
        else:
            transport.writelines(data)
        return fut

    async def _wait_body(self, resp: ClientResponse) -> None:
        w: asyncio.Future[None] = self._loop.create_future()
        self._waiter = w
        self._last_rx = self._loop.time()
        try:
            await w
        except asyncio.CancelledError:
            if self._waiter is w:
                self._waiter = None
            if self._resp is resp:
                self._fail(HTTPClientError("cancelled while reading the response body"))
            raise

    def _cancel_request(self, fut: asyncio.Future[ClientResponse]) -> None:
        """The task awaiting ``fut`` was cancelled: drop the connection if still ours."""
        if self._hfut is fut:
            self._fail(HTTPClientError("request cancelled"))
        elif fut.done() and not fut.cancelled() and fut.exception() is None:
            fut.result()._abandon()

    def _on_timer(self) -> None:
        self._timer = None
        if not self._busy:
            return
        loop = self._loop
        now = loop.time()
        if self._hfut is None and self._waiter is None:
            # nobody waits for bytes (the consumer is busy, or reading is paused)
            when = now + self._read_timeout
        else:
            when = self._last_rx + self._read_timeout
            if now + _TIMER_SLACK >= when:
                self._fail(ReadTimeout(f"no data received for {self._read_timeout:g} s"))
                return
        self._timer = loop.call_at(when, self._on_timer)
        self._timer_when = when

    def _resume(self) -> None:
        self._paused = False
        if self._transport is not None and self._alive:
            self._transport.resume_reading()

    def _complete(self, keep_alive: bool) -> None:
        resp = self._resp
        assert resp is not None
        self._resp = None
        self._busy = False
        self._nreq += 1
        resp._done = True
        resp._conn = None
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)
        if self._paused:
            self._resume()
        if keep_alive and self._alive and not self._req_close:
            self._pool._release(self)
        else:
            self._close()

    def _fail(self, err: BaseException) -> None:
        """Fail the in-flight request (if any) with ``err`` and close the socket."""
        self._busy = False
        hf = self._hfut
        if hf is not None:
            self._hfut = None
            if not hf.done():
                hf.set_exception(err)
        resp = self._resp
        if resp is not None:
            self._resp = None
            resp._exc = err
            resp._conn = None
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)
        self._close()

    def _close(self) -> None:
        self._alive = False
        if self._busy:
            self._fail(HTTPClientError("connection closed"))
            return
        transport = self._transport
        if transport is not None and not self._lost:
            transport.abort()
        self._pool._forget(self)

    def _wait_lost(self) -> asyncio.Future[None] | None:
        if self._lost or self._transport is None:
            return None
        if self._lost_fut is None:
            self._lost_fut = self._loop.create_future()
        return self._lost_fut

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._alive = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._alive = False
        self._lost = True
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
        if self._busy:
            if (
                self._resp is not None
                and not self._framed
                and (exc is None or isinstance(exc, ssl.SSLError))
            ):
                # body delimited by the end of the connection: this is its end
                self._complete(False)
            else:
                if not self._got_bytes:
                    self._closed_early = True
                err = RemoteProtocolError(
                    "server closed the connection before the response was complete"
                    if exc is None
                    else f"connection lost before the response was complete: {exc!r}"
                )
                err.__cause__ = exc
                self._fail(err)
        self._pool._discard(self)
        lf = self._lost_fut
        if lf is not None and not lf.done():
            lf.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self._busy:
            # bytes nobody asked for: the connection cannot be trusted any more
            self._close()
            return
        self._last_rx = self._loop.time()
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._busy:
                self._fail(RemoteProtocolError("protocol upgrade (101) is not supported"))
            else:
                self._close()
        except httptools.HttpParserError as e:
            if self._busy:
                self._fail(RemoteProtocolError(f"malformed HTTP response: {e}"))
            else:
                self._close()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost decides what the EOF meant

    def pause_writing(self) -> None:  # request bodies are written in one go
        pass

    def resume_writing(self) -> None:
        pass

    # ------------------------------------------------------------------ httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._resp is not None or not self._busy:
            return  # chunked trailers / stray data
        name = name.lower()
        self._headers.append((name, value))
        if name == b"content-length" or name == b"transfer-encoding":
            self._framed = True
        elif name == b"connection" and b"close" in value.lower():
            self._srv_close = True

    def on_headers_complete(self) -> None:
        if not self._busy or self._resp is not None:
            return
        parser = self._parser
        status: int = parser.get_status_code()
        if status < 200 and status != 101:
            # interim response (100 Continue, 103 Early Hints): wait for the real one
            self._headers = []
            self._framed = False
            self._srv_close = False
            return
        resp = ClientResponse(status, self._headers, self)
        self._resp = resp
        hf = self._hfut
        self._hfut = None
        if hf is not None and not hf.done():
            hf.set_result(resp)
        if self._head:
            # llhttp cannot be told the request was HEAD: finish here, use a fresh parser
            self._parser = httptools.HttpResponseParser(self)
            self._complete(bool(parser.should_keep_alive()) and not self._srv_close)

    def on_body(self, body: bytes) -> None:
        resp = self._resp
        if resp is None:
            return
        resp._chunks.append(body)
        n = resp._buffered + len(body)
        resp._buffered = n
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)
        if n > HIGH_WATER and not self._paused:
            self._paused = True
            transport = self._transport
            if transport is not None:
                transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._resp is None:
            return  # interim 1xx response, or the tail of a HEAD response
        self._complete(bool(self._parser.should_keep_alive()) and not self._srv_close)
