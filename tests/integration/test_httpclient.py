"""bastion.httpclient against real servers on loopback: a raw asyncio server that
misbehaves on demand, uvicorn, a TLS server with a trustme CA, and Debian's nginx.

Every asyncio scenario runs twice: on the default event loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from bastion.httpclient import (
    ConnectError,
    ConnectTimeout,
    HTTPClient,
    HTTPClientError,
    ReadTimeout,
    RemoteProtocolError,
)
from bastion.httpclient.connection import HIGH_WATER

# --------------------------------------------------------------------------- loops

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}

Runner = Callable[..., Any]


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Runner:
    """run(coro_fn, *args) runs the scenario in a fresh loop of the parametrized kind."""
    factory = LOOPS[request.param]

    def _run(fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float = 30.0) -> Any:
        async def main() -> Any:
            return await asyncio.wait_for(fn(*args), timeout)

        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main())

    return _run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pool_stats(client: HTTPClient) -> tuple[int, int]:
    """(open connections, idle connections) summed over the client's pools."""
    n = idle = 0
    for pool in client._pools.values():
        a, b = pool.stats()
        n += a
        idle += b
    return n, idle


def big_body(n: int) -> bytes:
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


# --------------------------------------------------------------------------- raw server


class RawServer:
    """A hand-written HTTP/1.1 server; the request path picks the (mis)behaviour."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        idle_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.idle_timeout = idle_timeout
        self.ssl_context = ssl_context
        self.connections = 0  # accepted so far
        self.open = 0  # currently open
        self.max_open = 0
        self.requests = 0
        self.client_closed = 0  # connections the client closed while we waited on it
        self.sent = 0  # body bytes written by /big
        self.acks: asyncio.Queue[None] = asyncio.Queue()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str, scheme: str = "http", host: str | None = None) -> str:
        h = host or self.host
        if ":" in h:
            h = f"[{h}]"
        return f"{scheme}://{h}:{self.port}{path}"

    async def _read_request(
        self, reader: asyncio.StreamReader
    ) -> tuple[str, str, dict[str, str], bytes] | None:
        try:
            if self.idle_timeout is None:
                head = await reader.readuntil(b"\r\n\r\n")
            else:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_timeout)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        body = await reader.readexactly(n) if n else b""
        return method, path, headers, body

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        nth = 0
        try:
            while True:
                req = await self._read_request(reader)
                if req is None:
                    break
                nth += 1
                self.requests += 1
                if not await self._respond(req, nth, reader, writer):
                    break
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass  # (a cancelled handler must not re-raise: 3.11's streams log it as an error)
        finally:
            self.open -= 1
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(
        self,
        req: tuple[str, str, dict[str, str], bytes],
        nth: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Write the response; return False to close the connection afterwards."""
        method, path, headers, body = req
        path = path.split("?", 1)[0]
        w = writer.write
        if path.startswith("/cl/"):
            data = big_body(int(path[4:]))
            w(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        elif path == "/echo":
            out = json.dumps(
                {"method": method, "headers": headers, "body": body.decode("latin-1")}
            ).encode()
            w(b"HTTP/1.1 201 Created\r\nX-Echo: 1\r\nContent-Length: %d\r\n\r\n" % len(out))
            w(out)
        elif path == "/chunked":
            w(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n"
                b'6;name="quoted value"\r\n world\r\n'
                b"0\r\nX-Trailer: yes\r\n\r\n"
            )
        elif path == "/until-close":
            w(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ")
            await writer.drain()
            await asyncio.sleep(0.02)
            w(b"part two")
            return False
        elif path == "/http10":
            w(b"HTTP/1.0 200 OK\r\n\r\nold school")
            return False
        elif path == "/conn-close":
            w(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
            return False
        elif path == "/garbage":
            w(b"HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        elif path == "/bad-length":
            w(b"HTTP/1.1 200 OK\r\nContent-Length: banana\r\n\r\nok")
        elif path == "/mid-body":
            w(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            await writer.drain()
            await asyncio.sleep(0.05)
            return False
        elif path == "/mid-chunked":
            w(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            return False
        elif path == "/hang":
            if await reader.read(1) == b"":  # never answer; wait for the client to give up
                self.client_closed += 1
            return False
        elif path == "/slow":  # one chunk per ack from the test: proves nothing is buffered
            w(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(3):
                piece = b"event %d\n" % i
                w(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                await self.acks.get()
            w(b"0\r\n\r\n")
        elif path.startswith("/paced/"):  # chunks every `delay` seconds
            delay = float(path[7:])
            w(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(4):
                await writer.drain()
                await asyncio.sleep(delay)
                w(b"1\r\nx\r\n")
            w(b"0\r\n\r\n")
        elif path == "/race":  # first request answered; later ones on the connection dropped
            if nth >= 2:
                return False
            w(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nrace")
        elif path == "/drop":
            return False
        elif path == "/head":
            w(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            if method != "HEAD":
                w(b"hello")
        elif path in ("/204", "/304"):
            status = b"204 No Content" if path == "/204" else b"304 Not Modified"
            w(b"HTTP/1.1 " + status + b"\r\nX-Status: yes\r\n\r\n")
        elif path == "/100":
            w(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
        elif path.startswith("/big/"):
            n = int(path[5:])
            w(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
            data = big_body(n)
            step = 64 * 1024
            for i in range(0, n, step):
                w(data[i : i + step])
                await writer.drain()
                self.sent = i + len(data[i : i + step])
        elif path.startswith("/sleep/"):
            await asyncio.sleep(float(path[7:]))
            w(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nslept")
        else:
            w(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        return True


# --------------------------------------------------------------------------- raw server tests


def test_content_length_body_is_read_whole(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            for n in (0, 1, 1000, 300_000):
                resp = await client.request("GET", srv.url(f"/cl/{n}"))
                assert resp.status == 200
                assert resp.header(b"Content-Length") == str(n).encode()
                assert await resp.read() == big_body(n)
            assert srv.connections == 1

    run(main)


def test_chunked_body_with_extensions_and_trailers_then_reuse(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            for _ in range(3):
                resp = await client.request("GET", srv.url("/chunked"))
                assert resp.header(b"transfer-encoding") == b"chunked"
                assert [c async for c in resp.iter_chunks()] == [b"hello", b" world"]
                assert resp.header(b"x-trailer") is None
            assert srv.connections == 1

    run(main)


def test_read_until_close_bodies(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            resp = await client.request("GET", srv.url("/until-close"))
            assert await resp.read() == b"part one, part two"
            resp = await client.request("GET", srv.url("/http10"))
            assert await resp.read() == b"old school"
            assert srv.connections == 2
            await asyncio.sleep(0.01)
            assert pool_stats(client) == (0, 0)

    run(main)


def test_connection_close_from_server_prevents_reuse(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            for _ in range(3):
                resp = await client.request("GET", srv.url("/conn-close"))
                assert await resp.read() == b"ok"
            assert srv.connections == 3
            await asyncio.sleep(0.01)
            assert pool_stats(client) == (0, 0)

    run(main)


def test_caller_connection_close_prevents_reuse(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            for _ in range(2):
                resp = await client.request(
                    "GET", srv.url("/cl/3"), headers=[(b"Connection", b"close")]
                )
                assert await resp.read() == b"012"
            assert srv.connections == 2

    run(main)


def test_garbage_status_line_raises_remote_protocol_error(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            for path in ("/garbage", "/bad-length"):
                with pytest.raises(RemoteProtocolError, match="malformed"):
                    await client.request("GET", srv.url(path))
            resp = await client.request("GET", srv.url("/cl/2"))  # client still usable
            assert await resp.read() == b"01"
            await asyncio.sleep(0.01)
            assert pool_stats(client) == (1, 1)

    run(main)


def test_connection_closed_mid_body_raises_remote_protocol_error(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            resp = await client.request("GET", srv.url("/mid-body"))
            with pytest.raises(RemoteProtocolError):
                await resp.read()
            resp = await client.request("GET", srv.url("/mid-chunked"))
            got = []
            with pytest.raises(RemoteProtocolError):
                async for chunk in resp.iter_chunks():
                    got.append(chunk)
            assert got == [b"hello"]  # what arrived is delivered before the error
            assert pool_stats(client) == (0, 0)

    run(main)


def test_server_closing_idle_connection_is_replaced_transparently(run: Runner) -> None:
    async def main() -> None:
        async with RawServer(idle_timeout=0.05) as srv, HTTPClient() as client:
            for _ in range(3):
                resp = await client.request("GET", srv.url("/cl/5"))
                assert await resp.read() == b"01234"
                await asyncio.sleep(0.15)  # the server drops the idle connection
            assert srv.connections == 3
            assert pool_stats(client) == (0, 0)  # connection_lost removed it from the pool

    run(main)


def test_request_on_connection_closed_in_race_is_retried_once(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            resp = await client.request("GET", srv.url("/race"))
            assert await resp.read() == b"race"
            # the reused connection is dropped by the server without a byte of response
            resp = await client.request("POST", srv.url("/race"), body=b"x")
            assert await resp.read() == b"race"
            assert srv.connections == 2

    run(main)


def test_fresh_connection_dropped_without_response_is_not_retried(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            with pytest.raises(RemoteProtocolError, match="closed"):
                await client.request("GET", srv.url("/drop"))
            assert srv.connections == 1
            # a reused connection dropped twice: one retry only, then the error
            resp = await client.request("GET", srv.url("/cl/1"))
            await resp.read()
            with pytest.raises(RemoteProtocolError):
                await client.request("GET", srv.url("/drop"))
            assert srv.connections == 3

    run(main)


def test_server_that_never_answers_raises_read_timeout(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient(read_timeout=0.2) as client:
            t0 = time.monotonic()
            with pytest.raises(ReadTimeout):
                await client.request("GET", srv.url("/hang"))
            assert 0.15 < time.monotonic() - t0 < 2.0
            with pytest.raises(ReadTimeout):  # per-request override
                await client.request("GET", srv.url("/hang"), read_timeout=0.05)
            await asyncio.sleep(0.05)
            assert srv.client_closed == 2
            assert pool_stats(client) == (0, 0)

    run(main)


def test_read_timeout_counts_between_reads_not_total(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            # 4 chunks 0.1 s apart, 0.3 s read timeout: 0.4 s total is fine
            resp = await client.request("GET", srv.url("/paced/0.1"), read_timeout=0.3)
            assert await resp.read() == b"xxxx"
            resp = await client.request("GET", srv.url("/paced/0.4"), read_timeout=0.15)
            with pytest.raises(ReadTimeout):
                await resp.read()
            with pytest.raises(ReadTimeout):  # the error sticks
                await resp.read()

    run(main)


def test_slow_chunked_stream_arrives_chunk_by_chunk(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            resp = await client.request("GET", srv.url("/slow"))
            got = []
            async for chunk in resp.iter_chunks():
                got.append(chunk)
                # the server sends the next chunk only after this ack: a buffering
                # client would deadlock here instead of seeing the chunk
                srv.acks.put_nowait(None)
            assert got == [b"event 0\n", b"event 1\n", b"event 2\n"]
            assert srv.connections == 1

    run(main)


def test_fifty_sequential_requests_use_one_connection(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            for i in range(50):
                resp = await client.request("GET", srv.url(f"/cl/{i}"))
                assert await resp.read() == big_body(i)
            assert srv.connections == 1
            assert srv.requests == 50
            assert pool_stats(client) == (1, 1)

    run(main)


def test_concurrency_is_bounded_by_max_connections_per_host(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient(max_connections_per_host=8) as client:

            async def one(i: int) -> bytes:
                resp = await client.request("POST", srv.url("/echo"), body=b"%d" % i)
                return await resp.read()

            results = await asyncio.gather(*(one(i) for i in range(100)))
            assert [json.loads(r)["body"] for r in results] == [str(i) for i in range(100)]
            assert srv.connections <= 8
            assert srv.max_open <= 8
            assert pool_stats(client)[0] <= 8

    run(main)


def test_head_204_304_have_no_body_and_keep_the_connection(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            resp = await client.request("HEAD", srv.url("/head"))
            assert resp.header(b"content-length") == b"5"
            assert await resp.read() == b""
            resp = await client.request("GET", srv.url("/head"))
            assert await resp.read() == b"hello"
            for path, status in (("/204", 204), ("/304", 304)):
                resp = await client.request("GET", srv.url(path))
                assert resp.status == status
                assert resp.header(b"x-status") == b"yes"
                assert [c async for c in resp.iter_chunks()] == []
            resp = await client.request("HEAD", srv.url("/head"))
            await resp.aclose()
            resp = await client.request("GET", srv.url("/head"))
            assert await resp.read() == b"hello"
            assert srv.connections == 1

    run(main)


def test_interim_100_continue_is_skipped(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            resp = await client.request("GET", srv.url("/100"))
            assert resp.status == 200
            assert await resp.read() == b"final"

    run(main)


def test_request_head_has_host_length_keepalive_and_caller_headers(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            resp = await client.request(
                "POST",
                srv.url("/echo?x=1"),
                headers=[(b"X-Api-Key", b"k"), (b"content-type", b"application/json")],
                body=b'{"a": 1}',
            )
            assert resp.status == 201
            assert resp.headers[0] == (b"x-echo", b"1")
            echo = json.loads(await resp.read())
            assert echo["method"] == "POST"
            assert echo["body"] == '{"a": 1}'
            h = echo["headers"]
            assert h["host"] == f"127.0.0.1:{srv.port}"
            assert h["content-length"] == "8"
            assert h["connection"] == "keep-alive"
            assert h["x-api-key"] == "k"
            assert h["content-type"] == "application/json"
            # the caller's own Host wins; bodiless POST says Content-Length: 0
            resp = await client.request(
                "POST", srv.url("/echo"), headers=[(b"Host", b"upstream.example")]
            )
            h = json.loads(await resp.read())["headers"]
            assert h["host"] == "upstream.example"
            assert h["content-length"] == "0"
            # a large body (written separately from the head)
            payload = big_body(500_000)
            resp = await client.request("PUT", srv.url("/echo"), body=payload)
            assert json.loads(await resp.read())["body"].encode("latin-1") == payload

    run(main)


def test_header_injection_is_refused(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            for hdr in ((b"X-A", b"v\r\nX-B: evil"), (b"X-A\n", b"v"), (b"X-A", b"v\r")):
                with pytest.raises(ValueError, match="CR or LF"):
                    await client.request("GET", srv.url("/cl/1"), headers=[hdr])
            for method in ("GET\r\n", "GET /x", ""):
                with pytest.raises(ValueError, match="method"):
                    await client.request(method, srv.url("/cl/1"))
            assert srv.connections == 0

    run(main)


def test_connect_error_on_closed_port(run: Runner) -> None:
    async def main() -> None:
        port = free_port()
        async with HTTPClient() as client:
            with pytest.raises(ConnectError) as ei:
                await client.request("GET", f"http://127.0.0.1:{port}/")
            assert not isinstance(ei.value, ConnectTimeout)
            assert pool_stats(client) == (0, 0)

    run(main)


def test_connect_timeout_when_tls_handshake_never_completes(run: Runner) -> None:
    async def main() -> None:
        # a plain TCP server that accepts and then says nothing: the TLS handshake stalls
        async with RawServer() as srv, HTTPClient(connect_timeout=0.2) as client:
            t0 = time.monotonic()
            with pytest.raises(ConnectTimeout):
                await client.request("GET", srv.url("/", scheme="https"))
            assert time.monotonic() - t0 < 2.0
            with pytest.raises(ConnectError):  # ConnectTimeout is a ConnectError
                await client.request("GET", srv.url("/", scheme="https"), connect_timeout=0.05)
            assert pool_stats(client) == (0, 0)

    run(main)


def test_cancelled_request_closes_its_connection(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            task = asyncio.create_task(client.request("GET", srv.url("/hang")))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.05)
            assert srv.client_closed == 1
            assert pool_stats(client) == (0, 0)
            # cancelled while streaming the body
            resp = await client.request("GET", srv.url("/paced/0.2"))
            reader = asyncio.create_task(resp.read())
            await asyncio.sleep(0.05)
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
            with pytest.raises(HTTPClientError):
                await resp.read()
            assert pool_stats(client) == (0, 0)

    run(main)


def test_cancelled_waiter_for_a_connection_slot_leaks_nothing(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient(max_connections_per_host=1) as client:
            busy = asyncio.create_task(client.request("GET", srv.url("/hang")))
            await asyncio.sleep(0.05)
            waiting = asyncio.create_task(client.request("GET", srv.url("/cl/2")))
            await asyncio.sleep(0.05)
            assert not waiting.done()  # queued behind the only connection
            waiting.cancel()
            busy.cancel()
            for t in (waiting, busy):
                with pytest.raises(asyncio.CancelledError):
                    await t
            assert pool_stats(client) == (0, 0)
            resps = await asyncio.gather(
                *(client.request("GET", srv.url("/sleep/0.01")) for _ in range(5))
            )
            assert [await r.read() for r in resps] == [b"slept"] * 5
            assert srv.max_open == 1

    run(main)


def test_abandoned_body_closes_the_socket(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient() as client:
            resp = await client.request("GET", srv.url(f"/big/{8 << 20}"))
            first = await anext(aiter(resp.iter_chunks()))
            assert first
            await resp.aclose()
            assert pool_stats(client) == (0, 0)
            await asyncio.sleep(0.05)
            assert srv.open == 0  # the server saw the socket go away
            async with await client.request("GET", srv.url("/cl/3")) as resp:
                assert await resp.read() == b"012"
            # a body that was fully received keeps its connection when closed unread
            resp = await client.request("GET", srv.url("/cl/3"))
            await resp.aclose()
            assert pool_stats(client) == (1, 1)
            assert srv.connections == 2

    run(main)


def test_slow_consumer_pauses_reading_and_resumes(run: Runner) -> None:
    async def main() -> None:
        total = 32 << 20
        async with RawServer() as srv, HTTPClient() as client:
            resp = await client.request("GET", srv.url(f"/big/{total}"))
            it = aiter(resp.iter_chunks())
            parts = [await anext(it)]
            await asyncio.sleep(0.3)  # consumer falls behind
            conn = resp._conn
            assert conn is not None and conn._paused
            assert resp._buffered <= HIGH_WATER + (512 << 10)
            assert srv.sent < total  # the server is blocked by TCP flow control
            parts.extend([c async for c in it])
            assert b"".join(parts) == big_body(total)
            assert srv.sent == total
            assert srv.connections == 1
            assert pool_stats(client) == (1, 1)

    run(main)


def test_idle_connections_expire_after_keepalive_expiry(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv, HTTPClient(keepalive_expiry=0.1) as client:
            resp = await client.request("GET", srv.url("/cl/1"))
            await resp.read()
            assert pool_stats(client) == (1, 1)
            await asyncio.sleep(0.3)
            assert pool_stats(client) == (0, 0)
            assert srv.open == 0
            resp = await client.request("GET", srv.url("/cl/1"))
            await resp.read()
            assert srv.connections == 2

    run(main)


def test_client_aclose_closes_pooled_and_active_connections(run: Runner) -> None:
    async def main() -> None:
        async with RawServer() as srv:
            client = HTTPClient()
            resp = await client.request("GET", srv.url("/cl/1"))
            await resp.read()
            streaming = await client.request("GET", srv.url("/paced/0.2"))
            await client.aclose()
            assert pool_stats(client) == (0, 0)
            with pytest.raises(HTTPClientError):
                await streaming.read()
            with pytest.raises(HTTPClientError, match="closed"):
                await client.request("GET", srv.url("/cl/1"))
            for _ in range(100):  # the /paced handler notices when its next write fails
                if srv.open == 0:
                    break
                await asyncio.sleep(0.02)
            assert srv.open == 0

    run(main)


def test_ipv6_loopback_literal(run: Runner) -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")

    async def main() -> None:
        async with RawServer(host="::1") as srv, HTTPClient() as client:
            resp = await client.request("POST", srv.url("/echo"), body=b"v6")
            echo = json.loads(await resp.read())
            assert echo["headers"]["host"] == f"[::1]:{srv.port}"
            assert echo["body"] == "v6"

    run(main)


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_ca() -> Any:
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


def test_tls_with_trusted_ca_succeeds_and_default_context_fails(run: Runner, tls_ca: Any) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    sni: list[str | None] = []
    server_ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment,func-returns-value]
    client_ctx = ssl.create_default_context()
    tls_ca.configure_trust(client_ctx)

    async def main() -> None:
        async with RawServer(ssl_context=server_ctx) as srv:
            async with HTTPClient(ssl_context=client_ctx) as client:
                for _ in range(3):
                    resp = await client.request("GET", srv.url("/chunked", scheme="https"))
                    assert await resp.read() == b"hello world"
                resp = await client.request("GET", srv.url(f"/big/{3 << 20}", scheme="https"))
                assert await resp.read() == big_body(3 << 20)
                resp = await client.request(
                    "GET", srv.url("/cl/4", scheme="https", host="localhost")
                )
                assert await resp.read() == b"0123"
                assert srv.connections == 2
                assert sni[-1] == "localhost"
            async with HTTPClient() as default_client:
                with pytest.raises(ConnectError) as ei:
                    await default_client.request("GET", srv.url("/cl/1", scheme="https"))
                assert not isinstance(ei.value, ConnectTimeout)
                assert pool_stats(default_client) == (0, 0)

    run(main)


# --------------------------------------------------------------------------- uvicorn


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/echo":
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-method", scope["method"].encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"tok%d " % i, "more_body": True})
            await asyncio.sleep(0.02)
        await send({"type": "http.response.body", "body": b""})
    else:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"hello " + path.encode()})


@pytest.fixture(scope="module")
def uvicorn_url() -> Iterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        asgi_app, log_level="warning", lifespan="off", loop="asyncio", http="h11"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_uvicorn_get_post_echo_and_chunked_stream(run: Runner, uvicorn_url: str) -> None:
    async def main() -> None:
        async with HTTPClient() as client:
            resp = await client.request("GET", f"{uvicorn_url}/hi?q=1")
            assert resp.status == 200
            assert resp.header(b"content-type") == b"text/plain"
            assert await resp.read() == b"hello /hi"
            payload = big_body(200_000)
            resp = await client.request("POST", f"{uvicorn_url}/echo", body=payload)
            assert resp.header(b"x-method") == b"POST"
            assert await resp.read() == payload
            resp = await client.request("GET", f"{uvicorn_url}/stream")
            assert resp.header(b"transfer-encoding") == b"chunked"
            chunks = [c async for c in resp.iter_chunks()]
            assert chunks == [b"tok%d " % i for i in range(5)]
            assert pool_stats(client) == (1, 1)

    run(main)


# --------------------------------------------------------------------------- nginx

NGINX = "/usr/sbin/nginx"


@pytest.fixture(scope="module")
def nginx_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not os.path.exists(NGINX):
        if os.environ.get("CI") == "true":
            pytest.fail("nginx missing in CI: apt-get install nginx-light")
        pytest.skip("nginx not installed (apt-get install nginx-light)")
    d: Path = tmp_path_factory.mktemp("nginx")
    (d / "www" / "static").mkdir(parents=True)
    (d / "www" / "static" / "big.bin").write_bytes(big_body(3 << 20))
    (d / "www" / "static" / "text.txt").write_bytes(b"AAAA-" * 50_000)
    port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    (d / "nginx.conf").write_text(
        f"""
{user}
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    keepalive_requests 5;
    keepalive_timeout 1s;
    server {{
        listen 127.0.0.1:{port};
        add_header X-Conn $connection always;
        location = /hello {{ return 200 "hello from nginx"; }}
        location /static/ {{ root {d}/www; }}
        location /chunked/ {{
            alias {d}/www/static/;
            chunked_transfer_encoding on;
            sub_filter_types *;
            sub_filter 'AAAA' 'BBBB';
            sub_filter_once off;
        }}
    }}
}}
"""
    )
    proc = subprocess.Popen(
        [NGINX, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (d / "error.log").read_text() if (d / "error.log").exists() else ""
                pytest.fail(f"nginx did not start: {log}")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.needs_nginx
def test_nginx_return_static_chunked_and_keepalive_requests(run: Runner, nginx_url: str) -> None:
    async def main() -> None:
        async with HTTPClient() as client:
            conns = []
            for _ in range(20):  # keepalive_requests 5: nginx closes every 5th response
                resp = await client.request("GET", f"{nginx_url}/hello")
                assert resp.status == 200
                assert await resp.read() == b"hello from nginx"
                conns.append(resp.header(b"x-conn"))
            assert len(set(conns)) == 4
            resp = await client.request("GET", f"{nginx_url}/static/big.bin")
            assert resp.header(b"content-length") == str(3 << 20).encode()
            assert await resp.read() == big_body(3 << 20)
            resp = await client.request("GET", f"{nginx_url}/chunked/text.txt")
            assert resp.header(b"transfer-encoding") == b"chunked"
            assert b"".join([c async for c in resp.iter_chunks()]) == b"BBBB-" * 50_000
            resp = await client.request("HEAD", f"{nginx_url}/static/big.bin")
            assert await resp.read() == b""
            resp = await client.request("GET", f"{nginx_url}/missing")
            assert resp.status == 404
            await resp.read()
            await asyncio.sleep(1.3)  # keepalive_timeout 1s: nginx drops the idle connection
            resp = await client.request("GET", f"{nginx_url}/hello")
            assert await resp.read() == b"hello from nginx"

    run(main)


@pytest.mark.needs_nginx
def test_nginx_concurrent_requests(run: Runner, nginx_url: str) -> None:
    async def main() -> None:
        async with HTTPClient(max_connections_per_host=8) as client:

            async def one() -> bytes:
                resp = await client.request("GET", f"{nginx_url}/hello")
                return await resp.read()

            for _ in range(3):
                results = await asyncio.gather(*(one() for _ in range(100)))
                assert set(results) == {b"hello from nginx"}
                assert pool_stats(client)[0] <= 8

    run(main)
