"""Connection lifecycle of the HTTP server, over raw sockets against a real gateway on
loopback: half-closed clients, slow clients (header and body read timeouts), Host
validation (RFC 9112 §3.2) and request framing that could smuggle a request."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.config import load_settings
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import RunningGateway, read_until_eof, trace_of

CHAT = b"/v1/chat/completions"
CHAT_BODY = json.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
).encode()
READ_TIMEOUT = 0.5  # header_timeout and body_timeout of the gateway under test
WRITE_TIMEOUT = 1.0  # write_timeout: how long a response waits on a client reading nothing
HANG_GUARD = 20.0  # a socket still open after this long means the server never gave up


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream().start() as server:
        yield server


@pytest.fixture(scope="module")
def gw(up: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    home: Path = tmp_path_factory.mktemp("http-lifecycle")
    settings = load_settings(env={}, overrides={
        "server.port": 0,
        "server.header_timeout": READ_TIMEOUT,
        "server.body_timeout": READ_TIMEOUT,
        "server.write_timeout": WRITE_TIMEOUT,
        "home": str(home),
        "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}],
        "routing": {"default": {"retries": 0}},
        "tracing": {"flush_interval": 0.05},
    })
    gateway = RunningGateway(settings).start()
    yield gateway
    gateway.stop()


@pytest.fixture()
def slow_upstream(up: FakeUpstream) -> Iterator[FakeUpstream]:
    """Each upstream answer takes 100 ms: the half-close arrives while requests are owed."""
    up.reset()
    up.behaviour.delay_ms = 100
    yield up
    up.reset()


# ------------------------------------------------------------------------ helpers
def chat_request(extra: bytes = b"") -> bytes:
    return (
        b"POST " + CHAT + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + extra + b"Content-Length: %d\r\n\r\n" % len(CHAT_BODY) + CHAT_BODY
    )


def responses(reply: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP/1.1 responses in ``reply``: (status, lower-cased headers, body)."""
    out = []
    rest = reply
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, f"truncated response head: {head[:300]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        assert status_line.startswith("HTTP/1.1 "), status_line
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        if "content-length" in headers:
            size = int(headers["content-length"])
            assert len(rest) >= size, f"truncated body: {rest!r}"
            body, rest = rest[:size], rest[size:]
        else:
            body, rest = rest, b""
        out.append((status, headers, body))
    return out


def assert_envelope(body: bytes, code: str) -> dict[str, Any]:
    parsed = json.loads(body)
    assert set(parsed) == {"error"}, parsed
    error: dict[str, Any] = parsed["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["type"] == "invalid_request_error" and error["param"] is None, error
    assert error["code"] == code and error["message"], error
    return error


def trace_id(headers: dict[str, str]) -> str:
    return headers.get("x-bastion-trace-id") or headers["x-request-id"]


def assert_serving(gw: RunningGateway) -> None:
    status, body = gw.request("GET", "/health/live")
    assert status == 200, body


def exchange(gw: RunningGateway, data: bytes,
             half_close: bool = False) -> list[tuple[int, dict[str, str], bytes]]:
    """Sends ``data`` (then, with ``half_close``, a FIN: ``shutdown(SHUT_WR)``) and reads
    until the server closes: it must close by itself."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=HANG_GUARD) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return responses(read_until_eof(sock))


# ------------------------------------------------------------------------ half-close
def test_half_closed_client_gets_its_answer_and_a_trace(
    gw: RunningGateway, slow_upstream: FakeUpstream
) -> None:
    answers = exchange(gw, chat_request(), half_close=True)
    assert [a[0] for a in answers] == [200], answers
    _, headers, body = answers[0]
    assert headers.get("connection") == "close", headers
    assert json.loads(body)["choices"][0]["message"]["content"]
    assert trace_of(gw, trace_id(headers))["status"] == 200
    assert_serving(gw)


def test_pipelined_requests_then_half_close_are_all_answered_in_order_and_traced(
    gw: RunningGateway, slow_upstream: FakeUpstream
) -> None:
    ids = [f"half-close-{i}" for i in range(5)]
    data = b"".join(chat_request(b"X-Request-Id: %s\r\n" % i.encode()) for i in ids)
    answers = exchange(gw, data, half_close=True)
    assert [a[0] for a in answers] == [200] * 5, answers
    assert [a[1]["x-request-id"] for a in answers] == ids, "answered in request order"
    assert [a[1].get("connection") for a in answers] == [None] * 4 + ["close"]
    for _, headers, _ in answers:
        assert trace_of(gw, trace_id(headers))["status"] == 200
    assert_serving(gw)


def test_half_close_after_a_partial_request_answers_the_complete_one_then_closes(
    gw: RunningGateway, slow_upstream: FakeUpstream
) -> None:
    answers = exchange(gw, chat_request() + chat_request()[:40], half_close=True)
    assert [a[0] for a in answers] == [200], answers
    assert_serving(gw)


# ------------------------------------------------------------------------ slow clients
PARTIAL_LINE = b"POST /v1/chat/comp"
PARTIAL_HEADERS = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le"
PARTIAL_BODY = chat_request()[:-20]  # headers complete, 20 bytes of the body missing
DRIP_HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


def test_slow_clients_get_408_while_other_clients_are_served(gw: RunningGateway) -> None:
    """~50 slow connections: a request line, headers or a body that never ends, a body
    trickled a byte per 50 ms (the body timeout is a total, not a gap between reads), and
    connections that send nothing. Each partial request gets a 408 envelope and a close;
    a connection with no bytes of a request is just closed; meanwhile others are served."""
    kinds = {"line": PARTIAL_LINE, "headers": PARTIAL_HEADERS, "body": PARTIAL_BODY,
             "drip": DRIP_HEAD, "silent": b""}
    slow: dict[socket.socket, str] = {}
    replies: dict[socket.socket, bytes] = {}
    try:
        for i in range(50):
            kind = list(kinds)[i % len(kinds)]
            sock = socket.create_connection(("127.0.0.1", gw.port), timeout=HANG_GUARD)
            if kinds[kind]:
                sock.sendall(kinds[kind])
            sock.setblocking(False)
            slow[sock] = kind
            replies[sock] = b""
        open_ = set(slow)
        served = 0
        deadline = time.monotonic() + HANG_GUARD
        while open_ and time.monotonic() < deadline:
            status, body = gw.request(
                "POST", "/v1/chat/completions", raw=CHAT_BODY, headers={"connection": "close"}
            )
            assert status == 200, body
            served += 1
            for sock in [s for s in open_ if slow[s] == "drip"]:
                with contextlib.suppress(OSError):  # done with: its reply is read below
                    sock.send(b" ")
            readable, _, _ = select.select(list(open_), [], [], 0.05)
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    replies[sock] += data
                else:
                    open_.discard(sock)
        stuck = sorted(slow[s] for s in open_)
        assert not stuck, f"slow connections the server never timed out: {stuck}"
        assert served > 0
        for sock, kind in slow.items():
            if kind == "silent":
                assert replies[sock] == b"", replies[sock]
                continue
            answers = responses(replies[sock])
            assert [a[0] for a in answers] == [408], (kind, replies[sock][:300])
            _, headers, body = answers[0]
            assert headers.get("connection") == "close", headers
            error = assert_envelope(body, "request_timeout")
            part = "body" if kind in ("body", "drip") else "line and headers"
            assert part in error["message"], (kind, error)
    finally:
        for sock in slow:
            sock.close()
    assert_serving(gw)


@pytest.fixture()
def big_answer(up: FakeUpstream) -> Iterator[FakeUpstream]:
    """Answers of 24 MB (a stream of 3,000 events): more than loopback's socket buffers
    hold, so a client that reads nothing leaves the gateway's writes paused."""
    up.reset()
    up.behaviour.content = "abcdefgh " * ((24 << 20) // 9)
    up.behaviour.chunks = 3000
    yield up
    up.reset()


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_stops_reading_is_cut_off_after_the_write_timeout(
        gw: RunningGateway, big_answer: FakeUpstream, stream: bool) -> None:
    """A client asks for a big answer and reads none of it: after ``write_timeout`` the
    gateway aborts the connection (a close would wait forever on the full buffer), others
    are served meanwhile, and a stream's trace says the client went away."""
    body = json.dumps({"model": "chat", "stream": stream,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(HANG_GUARD)
    try:
        sock.connect(("127.0.0.1", gw.port))
        sock.sendall(b"POST " + CHAT + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                     % len(body) + body)
        started = time.monotonic()
        time.sleep(WRITE_TIMEOUT * 3)  # reads nothing; others are served meanwhile
        small = json.dumps({"model": "chat", "max_tokens": 5,
                            "messages": [{"role": "user", "content": "hi"}]}).encode()
        big_answer.behaviour.content = "short"
        status, answer = gw.request("POST", "/v1/chat/completions", raw=small)
        assert status == 200, answer
        reply = read_until_eof(sock)  # ends: the server gave up on this client
        assert time.monotonic() - started < HANG_GUARD
    finally:
        sock.close()
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert head.startswith("http/1.1 200"), head[:200]
    assert len(reply) < 24 << 20, "the whole answer was not sent"
    if stream:
        assert not reply.endswith(b"0\r\n\r\n"), "no terminating chunk: the stream was cut"
        rid = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.startswith("x-request-id:"))
        trace = trace_of(gw, rid)
        assert trace["status"] == 499 and trace["error"] == "client disconnected", trace
    assert_serving(gw)


def test_a_request_split_across_reads_within_the_timeouts_is_served(gw: RunningGateway) -> None:
    """The read timeouts bound a request, they do not cut one that arrives in pieces."""
    data = chat_request(b"Connection: close\r\n")
    with socket.create_connection(("127.0.0.1", gw.port), timeout=HANG_GUARD) as sock:
        for piece in (data[:10], data[10:60], data[60:-5], data[-5:]):
            sock.sendall(piece)
            time.sleep(0.02)  # separate reads, well inside the 0.5 s timeouts
        answers = responses(read_until_eof(sock))
    assert [a[0] for a in answers] == [200], answers


# ------------------------------------------------------------------------ Host (RFC 9112 §3.2)
@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        pytest.param(b"GET /health/live HTTP/1.1\r\n\r\n", "missing_host", id="http11-no-host"),
        pytest.param(b"GET /health/live HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "invalid_host",
                     id="http11-two-hosts"),
        pytest.param(b"GET /health/live HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "invalid_host",
                     id="http11-same-host-twice"),
        pytest.param(b"GET /health/live HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "invalid_host",
                     id="http10-two-hosts"),
        pytest.param(b"GET /health/live HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid_host",
                     id="host-with-space"),
        pytest.param(b"GET /health/live HTTP/1.1\r\nHost: a/b\r\n\r\n", "invalid_host",
                     id="host-with-slash"),
        pytest.param(b"GET http://x/health/live HTTP/1.1\r\n\r\n", "missing_host",
                     id="absolute-form-no-host"),
    ],
)
def test_missing_repeated_or_invalid_host_is_400(
    gw: RunningGateway, request_bytes: bytes, code: str
) -> None:
    answers = exchange(gw, request_bytes)
    assert [a[0] for a in answers] == [400], answers
    assert answers[0][1].get("connection") == "close"
    assert_envelope(answers[0][2], code)
    assert_serving(gw)


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET /health/live HTTP/1.0\r\n\r\n", id="http10-no-host"),
        pytest.param(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                     b"Connection: close\r\n\r\n", id="host-and-port"),
        pytest.param(b"GET /health/live HTTP/1.1\r\nHost: [::1]:8080\r\n"
                     b"Connection: close\r\n\r\n", id="ipv6-literal"),
        pytest.param(b"GET /health/live HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
                     id="empty-host"),
    ],
)
def test_valid_host_forms_are_served(gw: RunningGateway, request_bytes: bytes) -> None:
    answers = exchange(gw, request_bytes)
    assert [a[0] for a in answers] == [200], answers


# ------------------------------------------------------------------------ framing / smuggling
SMUGGLED = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"0\r\n\r\n" + SMUGGLED, id="cl-then-te"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
                     b"0\r\n\r\n" + SMUGGLED, id="te-then-cl"),
        pytest.param(HEAD + b"Content-Length: 0\r\nContent-Length: 37\r\n\r\n" + SMUGGLED,
                     id="two-differing-content-lengths"),
        pytest.param(HEAD + b"Content-Length: 37\r\nContent-Length: 37\r\n\r\n" + SMUGGLED,
                     id="two-equal-content-lengths"),
        pytest.param(HEAD + b"Content-Length: 0, 37\r\n\r\n" + SMUGGLED, id="content-length-list"),
        pytest.param(HEAD + b"Content-Length: -1\r\n\r\n" + SMUGGLED, id="negative-content-length"),
        pytest.param(HEAD + b"Content-Length: +37\r\n\r\n" + SMUGGLED, id="signed-content-length"),
        pytest.param(HEAD + b"Content-Length: 0x25\r\n\r\n" + SMUGGLED, id="hex-content-length"),
        pytest.param(HEAD + b"Content-Length: abc\r\n\r\n" + SMUGGLED, id="non-numeric-content-length"),
        pytest.param(HEAD + b"Content-Length: \r\n\r\n" + SMUGGLED, id="empty-content-length"),
        pytest.param(HEAD + b"Content-Length: 99999999999999999999999\r\n\r\n",
                     id="overflowing-content-length"),
        pytest.param(HEAD + b"Content-Length : 37\r\n\r\n" + SMUGGLED, id="space-before-colon"),
        pytest.param(HEAD + b"X-Note: a\r\n folded\r\nContent-Length: 0\r\n\r\n", id="obs-fold"),
        pytest.param(HEAD + b"Content-Length: 0\r\n 37\r\n\r\n" + SMUGGLED,
                     id="obs-fold-content-length"),
        pytest.param(HEAD + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
                     id="obs-fold-transfer-encoding"),
        pytest.param(HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                     id="stacked-coding"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n" + SMUGGLED,
                     id="chunked-not-last"),
        pytest.param(HEAD + b"Transfer-Encoding: identity\r\n\r\n" + SMUGGLED, id="identity-coding"),
        pytest.param(HEAD + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
                     id="unknown-coding"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"0\r\n\r\n" + SMUGGLED, id="repeated-transfer-encoding"),
        pytest.param(b"POST /v1/chat/completions HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Length: 5\r\n\r\n0\r\n\r\n", id="http10-cl-and-te"),
        pytest.param(b"POST /v1/chat/completions HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"0\r\n\r\n" + SMUGGLED, id="http10-transfer-encoding"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
                     id="non-hex-chunk-size"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
                     id="negative-chunk-size"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
                     id="prefixed-chunk-size"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
                     id="overflowing-chunk-size"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
                     id="chunk-size-trailing-space"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
                     id="chunk-longer-than-its-size"),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
                     id="bare-lf-chunk-lines"),
        pytest.param(b"POST /v1/chat/completions HTTP/1.1\nHost: x\nContent-Length: 0\n\n",
                     id="bare-lf-head"),
    ],
)
def test_ambiguous_or_malformed_framing_is_400_and_a_close(
    gw: RunningGateway, request_bytes: bytes
) -> None:
    """Each could make this server and a proxy in front of it disagree on where a request
    ends (request smuggling): one 400 envelope, the connection closed, nothing after it
    answered (no response to the smuggled GET), never a 5xx or a hang."""
    answers = exchange(gw, request_bytes)
    assert [a[0] for a in answers] == [400], answers
    _, headers, body = answers[0]
    assert headers.get("connection") == "close", headers
    parsed = json.loads(body)
    assert parsed["error"]["type"] == "invalid_request_error", parsed
    assert set(parsed["error"]) == {"message", "type", "param", "code"}
    assert_serving(gw)
