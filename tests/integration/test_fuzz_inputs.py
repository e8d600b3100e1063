"""Property-based fuzzing of the gateway's HTTP surface with hypothesis, over real HTTP.

Generated bad input goes at every ``/v1/*`` endpoint of ``api_gateway`` (a real gateway on
loopback in front of the fake OpenAI upstream, behaving normally): arbitrary JSON values as
the whole body, structurally valid-ish requests whose known fields are replaced by random
JSON, raw random bytes with random Content-Types and headers, random paths and methods,
and random bytes written straight to the socket as an "HTTP request".

Properties:

* no response is a 5xx (the upstream behaves, so 502/503/504 cannot legitimately occur);
* every non-2xx answer is exactly ``{"error": {"message", "type", "param", "code"}}``;
* every answer the gateway pipeline produces carries ``x-request-id``;
* a validated ``stream: true`` request gets ``text/event-stream`` ending in ``data: [DONE]``;
* on raw sockets, the server answers 4xx (or closes) and never hangs;
* the gateway is still healthy afterwards (``GET /health/live``).

Why hypothesis rather than schemathesis: schemathesis generates from an OpenAPI document,
and Bastion does not serve one yet; hypothesis on raw requests is the chosen route. All
tests are derandomized with no example database so CI runs are reproducible.
"""

from __future__ import annotations

import gc
import http.client
import json
import re
import socket
import string
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway_harness import MASTER_KEY, RunningGateway, read_until_eof

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
POST_ENDPOINTS = (CHAT, COMPLETIONS, EMBEDDINGS)
V1_ROUTES = (
    ("POST", CHAT),
    ("POST", COMPLETIONS),
    ("POST", EMBEDDINGS),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/fake-model"),
)
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ------------------------------------------------------------------------ client helpers
class Client:
    """One keep-alive HTTP/1.1 connection to the gateway that reopens itself when needed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        hdrs = {"content-type": "application/json", **AUTH, **(headers or {})}
        try:
            return self._send(method, path, body, hdrs)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # A keep-alive connection the server closed between requests: retry once.
            self.reset()
            return self._send(method, path, body, hdrs)

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        if method == "HEAD" or resp.will_close:
            self.reset()  # never reuse a connection after a HEAD: see the HEAD test below
        return resp.status, resp_headers, data

    def reset(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def close(self) -> None:
        self.conn.close()


def collect_orphans() -> None:
    """Collects now any gateway task that died with an unretrieved exception.

    Such a task sits in a reference cycle (task → coroutine → protocol → task), so it is
    freed by whatever garbage collection comes next, and asyncio then logs "Task exception
    was never retrieved" with a formatted traceback, which on Python 3.11 calls
    ``ast.parse``. If that collection happens inside pytest's own ``ast.parse`` (while it
    formats a failure), the nested parse corrupts the interpreter-wide AST recursion counter
    and pytest dies with INTERNALERROR "AST constructor recursion depth mismatch". So
    collect at a moment of our choosing, with the log record captured and checkable.
    """
    time.sleep(0.05)  # let the gateway thread finish what the last request started
    gc.collect()


def assert_healthy(gw: RunningGateway) -> None:
    status, body = gw.request("GET", "/health/live")
    assert status == 200 and body["status"] == "ok"


GATEWAY_FAILURES = ("Task exception was never retrieved", "unhandled error in handler")


@pytest.fixture()
def client(api_gateway: RunningGateway, caplog: pytest.LogCaptureFixture) -> Iterator[Client]:
    """A keep-alive client; afterwards the gateway must be healthy and must not have logged
    a handler crash or a task that died with nobody to report its exception to."""
    c = Client(api_gateway.port)
    yield c
    c.close()
    collect_orphans()
    crashes = [
        r.getMessage()
        for r in (*caplog.get_records("call"), *caplog.records)
        if r.getMessage().startswith(GATEWAY_FAILURES)
    ]
    assert not crashes, f"the gateway logged {len(crashes)} crash(es), first: {crashes[0]}"
    assert_healthy(api_gateway)


def assert_envelope(status: int, body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        pytest.fail(f"{status} error body is not JSON: {body[:300]!r}")
    assert isinstance(parsed, dict) and set(parsed) == {"error"}, parsed
    error = parsed["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    return error


def check(
    status: int, headers: dict[str, str], body: bytes, *, method: str = "POST"
) -> None:
    """The properties every gateway answer must have (fake upstream behaving normally)."""
    assert status < 500, (status, body[:500])
    assert headers.get("x-request-id"), (status, headers)
    if method == "HEAD":
        return
    if not 200 <= status < 300:
        assert headers.get("content-type", "").startswith("application/json"), headers
        assert_envelope(status, body)
    elif headers.get("content-type", "").startswith("text/event-stream"):
        assert body.endswith(b"data: [DONE]\n\n"), body[-300:]
    else:
        json.loads(body)  # a 2xx non-stream answer is JSON


# ------------------------------------------------------------------------ strategies
def _no_surrogates(**kw: Any) -> st.SearchStrategy[str]:
    return st.text(st.characters(exclude_categories=("Cs",)), **kw)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.integers(min_value=-(10**40), max_value=10**40)  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | _no_surrogates(max_size=20)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(_no_surrogates(max_size=10), children, max_size=4),
    max_leaves=12,
)
models = st.sampled_from(["fake-model", "renamed"]) | _no_surrogates(max_size=12)

CHAT_FIELDS = (
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "n", "stop", "seed", "logprobs", "top_logprobs",
    "response_format", "tools", "user", "metadata",
)
COMPLETION_FIELDS = (
    "model", "prompt", "stream", "stream_options", "max_tokens", "temperature", "top_p", "n",
    "stop", "seed", "logprobs", "user", "metadata",
)
EMBEDDING_FIELDS = ("model", "input", "encoding_format", "dimensions", "user")
MESSAGE_FIELDS = ("role", "content", "content_parts")

# Values that are *right* for each field, so that most examples get past the fields that
# are not being fuzzed and reach the one that is (and some reach the upstream).
GOOD: dict[str, st.SearchStrategy[Any]] = {
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "max_tokens": st.integers(1, 64),
    "max_completion_tokens": st.integers(1, 64),
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1),
    "n": st.integers(1, 4),
    "stop": st.lists(st.text(max_size=5), max_size=4),
    "seed": st.integers(-(2**31), 2**31),
    "logprobs": st.booleans(),
    "response_format": st.sampled_from(
        [{"type": "text"}, {"type": "json_object"}, {"type": "json_schema"}]
    ),
    "tools": st.just([]),
    "user": st.text(max_size=10),
    "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    "encoding_format": st.sampled_from(["float", "base64"]),
    "dimensions": st.integers(1, 64),
}

# Junk with the right outer shape, so the checks *inside* objects and arrays are reached.
SHAPED_JUNK: dict[str, st.SearchStrategy[Any]] = {
    "messages": st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "tool", "system"]) | json_values},
            optional={"content": json_values, "tool_call_id": json_values},
        ),
        max_size=3,
    ),
    "stream_options": st.fixed_dictionaries({"include_usage": json_values}),
    "response_format": st.fixed_dictionaries({"type": json_values}),
    "metadata": st.dictionaries(_no_surrogates(max_size=5), json_values, max_size=3),
    "stop": st.lists(json_values, max_size=5),
    "tools": st.lists(json_values, max_size=2),
    "prompt": st.lists(json_values, max_size=3),
    "input": st.lists(json_values, max_size=3) | st.lists(st.lists(json_values), max_size=2),
}


@st.composite
def fuzzed_requests(draw: st.DrawFn, endpoint: str) -> dict[str, Any]:
    """A valid request for ``endpoint`` (model, good optional fields) in which one known
    field, sometimes two, is set to junk, so that every check in turn gets reached."""
    fields = {CHAT: CHAT_FIELDS, COMPLETIONS: COMPLETION_FIELDS, EMBEDDINGS: EMBEDDING_FIELDS}[
        endpoint
    ]
    targets = fields + MESSAGE_FIELDS if endpoint == CHAT else fields
    junked = [draw(st.sampled_from(targets))]
    if draw(st.integers(0, 4)) == 0:
        junked.append(draw(st.sampled_from(targets).filter(lambda t: t not in junked)))
    body: dict[str, Any] = {"model": draw(models)}
    if endpoint == CHAT:
        message: dict[str, Any] = {"role": "user", "content": "hi"}
        for name in junked:
            if name == "content_parts":
                message["content"] = draw(
                    st.lists(
                        st.fixed_dictionaries({"type": st.just("text"), "text": json_values})
                        | st.dictionaries(st.sampled_from(["type", "text"]), json_values)
                        | json_values,
                        max_size=3,
                    )
                )
            elif name in MESSAGE_FIELDS:
                message[name] = draw(json_values)
        body["messages"] = [message]
    elif endpoint == COMPLETIONS:
        body["prompt"] = "hi"
    else:
        body["input"] = "hi"
    optional = [f for f in fields if f in GOOD and f not in junked]
    for name in draw(st.lists(st.sampled_from(optional), unique=True, max_size=3)):
        body[name] = draw(GOOD[name])
    if endpoint == CHAT and body.get("logprobs") is True and "top_logprobs" not in junked:
        body["top_logprobs"] = draw(st.integers(0, 5))
    if endpoint == COMPLETIONS and "logprobs" in body and "logprobs" not in junked:
        body["logprobs"] = draw(st.integers(0, 5))
    for name in junked:
        if name in MESSAGE_FIELDS:
            continue
        junk = SHAPED_JUNK[name] | json_values if name in SHAPED_JUNK else json_values
        body[name] = draw(junk | models if name == "model" else junk)
    return body


TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
RESERVED_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "host", "connection", "upgrade", "expect",
     "te", "trailer", "keep-alive", "proxy-connection", "authorization"}
)
header_names = st.text(TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda n: n.lower() not in RESERVED_HEADERS
)
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=40
).map(str.strip)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "MULTIPART/mixed",
        "application/octet-stream",
        "",
    ]
) | header_values


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------------ JSON bodies
@FUZZ
@given(route=st.sampled_from(V1_ROUTES), value=json_values)
def test_any_json_value_as_the_whole_body_is_never_a_5xx(
    client: Client, route: tuple[str, str], value: Any
) -> None:
    method, path = route
    status, headers, body = client.send(method, path, _dumps(value))
    check(status, headers, body)
    if method == "POST" and not isinstance(value, dict):
        assert status == 400, body


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@FUZZ
@given(data=st.data())
def test_requests_with_junk_in_known_fields_are_answered_cleanly(
    client: Client, path: str, data: st.DataObject
) -> None:
    payload = data.draw(fuzzed_requests(path), label="payload")
    status, headers, body = client.send("POST", path, _dumps(payload))
    check(status, headers, body)
    if status == 200 and path != EMBEDDINGS and payload.get("stream") is True:
        assert headers["content-type"].startswith("text/event-stream"), headers
        assert body.endswith(b"data: [DONE]\n\n"), body[-300:]
    if status == 400:
        error = json.loads(body)["error"]
        assert error["type"] == "invalid_request_error", error


# ------------------------------------------------------------------------ bytes and headers
@FUZZ
@given(
    path=st.sampled_from(POST_ENDPOINTS),
    raw=st.binary(max_size=512)
    | st.builds(lambda v, cut: _dumps(v)[:cut], json_values, st.integers(0, 200)),
    content_type=content_types,
)
def test_raw_bytes_bodies_with_any_content_type_are_never_a_5xx(
    client: Client, path: str, raw: bytes, content_type: str
) -> None:
    status, headers, body = client.send("POST", path, raw, {"content-type": content_type})
    check(status, headers, body)


@FUZZ
@given(
    route=st.sampled_from(V1_ROUTES),
    extra=st.dictionaries(header_names, header_values, max_size=6),
    auth=st.sampled_from([f"Bearer {MASTER_KEY}", f"bearer {MASTER_KEY}  "]) | header_values,
    request_id=st.none() | header_values,
)
def test_random_headers_never_break_a_valid_request(
    client: Client,
    route: tuple[str, str],
    extra: dict[str, str],
    auth: str,
    request_id: str | None,
) -> None:
    method, path = route
    payload = {
        CHAT: {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
        COMPLETIONS: {"model": "fake-model", "prompt": "hi"},
        EMBEDDINGS: {"model": "fake-model", "input": "hi"},
    }.get(path)
    headers = {**extra, "authorization": auth}
    if request_id is not None:
        headers["x-request-id"] = request_id
    status, resp_headers, body = client.send(
        method, path, _dumps(payload) if payload else None, headers
    )
    check(status, resp_headers, body)
    authorized = auth.partition(" ")[0].lower() == "bearer" and (
        auth.partition(" ")[2].strip() == MASTER_KEY
    )
    if not authorized:
        assert status == 401, body
    elif all(k.lower() != "content-type" for k in extra):
        assert status == 200, body
    if request_id and re.fullmatch(r"[A-Za-z0-9._:\-]{1,128}", request_id):
        assert resp_headers["x-request-id"] == request_id


_PATH_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND")


@FUZZ
@given(
    method=st.sampled_from(METHODS),
    suffix=st.text(_PATH_CHARS, max_size=40)
    | st.sampled_from(["models", "models/", "models/fake-model", "chat/completions/",
                       "embeddings/x", "models/%2e%2e", "models/%ff", "models/../models"]),
    query=st.none() | st.text(_PATH_CHARS + "?", max_size=20),
    payload=st.none() | json_values.map(_dumps),
)
def test_random_paths_and_methods_under_v1_are_never_a_5xx(
    client: Client, method: str, suffix: str, query: str | None, payload: bytes | None
) -> None:
    path = "/v1/" + suffix + (f"?{query}" if query is not None else "")
    status, headers, body = client.send(method, path, payload)
    check(status, headers, body, method=method)
    known = {p for _, p in V1_ROUTES} - {"/v1/models/fake-model"}
    bare = path.split("?", 1)[0]
    if bare not in known and not bare.startswith("/v1/models/"):
        assert status == 404, (path, body)


# ------------------------------------------------------------------------ raw sockets
def _statuses(reply: bytes) -> list[int]:
    """Status codes of the HTTP/1.1 responses in ``reply`` (bodies skipped by length)."""
    statuses = []
    rest = reply
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, f"truncated response head: {head[:200]!r}"
        match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
        assert match, f"not an HTTP/1.1 response: {head[:200]!r}"
        statuses.append(int(match.group(1)))
        if 100 <= statuses[-1] < 200:
            continue
        length = re.search(rb"\r\ncontent-length: (\d+)", head, re.IGNORECASE)
        if length is not None:
            rest = rest[int(length.group(1)) :]
        elif b"transfer-encoding: chunked" in head.lower():
            end = rest.find(b"\r\n0\r\n\r\n")
            rest = rest[end + 7 :] if end >= 0 else b""
        else:
            rest = b""
    return statuses


_CRLF = st.sampled_from([b"\r\n", b"\n", b"\r", b""])
request_lines = st.builds(
    lambda m, t, v, e: m + b" " + t + b" " + v + e,
    st.sampled_from([b"GET", b"POST", b"HEAD", b"DELETE", b"FOO", b"", b"G\x00T", b"get"])
    | st.binary(max_size=8),
    st.sampled_from([b"/v1/chat/completions", b"/v1/models", b"/health/live", b"*", b"",
                     b"http://x/v1/models", b"/v1/models/\xff"])
    | st.binary(max_size=30),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9.9", b"HTTP/1", b"", b"ICE/1.0"]),
    _CRLF,
)
header_lines = st.lists(
    st.sampled_from(
        [
            b"Host: x",
            b"Content-Length: 5",
            b"Content-Length: -1",
            b"Content-Length: 99999999999999999999999",
            b"Content-Length: 1, 2",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: gzip, chunked",
            b"Transfer-Encoding: identity",
            b"Expect: 100-continue",
            b"Connection: close",
            b"Connection: Upgrade",
            b"Upgrade: h2c",
            b"Authorization: Bearer " + MASTER_KEY.encode(),
            b"Content-Type: application/json",
            b"X-Request-Id: \xff\xfe",
            b": no-name",
            b"no-colon",
            b"Bad Name: x",
            b" folded: continuation",
            b"X-Nul: a\x00b",
        ]
    )
    | st.binary(max_size=40),
    max_size=6,
)
bodies = st.sampled_from(
    [
        b"",
        b"hello",
        b"5\r\nhello\r\n0\r\n\r\n",
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX\r\n0\r\n\r\n",
        b"ffffffffffffffffff\r\n",
        b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
        b"3\r\nabc",
        b'{"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}',
    ]
) | st.binary(max_size=64)


@FUZZ
@given(line=request_lines, headers=header_lines, end=_CRLF, body=bodies,
       mode=st.sampled_from(["half-close", "close"]))
def test_raw_socket_garbage_gets_a_4xx_or_a_close_never_a_5xx(
    api_gateway: RunningGateway,
    client: Client,
    line: bytes,
    headers: list[bytes],
    end: bytes,
    body: bytes,
    mode: str,
) -> None:
    data = line + b"".join(h + b"\r\n" for h in headers) + end + body
    with socket.create_connection(("127.0.0.1", api_gateway.port), timeout=10) as sock:
        sock.sendall(data)
        if mode == "close":
            sock.close()  # truncated request then gone: nothing to read, just must not hurt
        else:
            sock.shutdown(socket.SHUT_WR)
            try:
                reply = read_until_eof(sock, 10)
            except TimeoutError:
                pytest.fail(f"server neither answered nor closed for {data!r}")
            for status in _statuses(reply):
                assert status < 500, (data, reply[:500])
    status, _, resp = client.send("GET", "/health/live")
    assert status == 200, resp


# ------------------------------------------------------------------------ pinned findings
# Each of these was found by the fuzzers above; they pin the expected behaviour.
def test_unhashable_response_format_type_is_400_not_500(api_gateway: RunningGateway) -> None:
    for fmt_type in ([], {}, ["text"]):
        status, headers, body = api_gateway.request_full(
            "POST",
            CHAT,
            {
                "model": "fake-model",
                "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": fmt_type},
            },
        )
        assert status == 400, body
        assert body["error"]["param"] == "response_format"
        assert headers.get("x-request-id")


def _pipeline(api_gateway: RunningGateway, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", api_gateway.port), timeout=10) as sock:
        sock.sendall(data)
        sock.settimeout(5)
        reply = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    collect_orphans()
    return reply


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="malformed"),
        pytest.param(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n",
            id="too-large",
        ),
    ],
)
def test_pipelined_request_is_answered_before_a_bad_one_is_rejected(
    api_gateway: RunningGateway, second: bytes
) -> None:
    """RFC 9112 §9.3.2: responses go out in request order. A good request followed, in the
    same segment, by one the parser rejects must still get its own answer first."""
    reply = _pipeline(api_gateway, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n" + second)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
    statuses = _statuses(reply)
    assert statuses[0] == 200 and statuses[-1] in (400, 413), statuses
    assert_healthy(api_gateway)


def test_head_response_carries_no_body_so_keep_alive_stays_in_sync(
    api_gateway: RunningGateway,
) -> None:
    """RFC 9110 §9.3.2: a response to HEAD has no content. Bytes after the head would be read
    by a keep-alive client as the start of the next response."""
    auth = b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\n"
    reply = _pipeline(
        api_gateway,
        b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"
        b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    first, _, rest = reply.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 "), reply[:300]
    assert rest.startswith(b"HTTP/1.1 200 "), reply[:600]


def test_oversized_request_headers_are_refused(api_gateway: RunningGateway) -> None:
    """Headers are buffered in memory like the body, so they need a limit too: here 16 MiB
    of headers (twice the body limit) must be refused (431/400/413), not accepted."""
    with socket.create_connection(("127.0.0.1", api_gateway.port), timeout=10) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        pad = b"a" * 8000
        try:
            for i in range(2048):
                sock.sendall(b"x-pad-%d: %b\r\n" % (i, pad))
            sock.sendall(b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server hung up on us: also a refusal
        try:
            reply = sock.recv(4096)
        except ConnectionResetError:
            reply = b""
    status = int(reply[9:12]) if reply.startswith(b"HTTP/1.1 ") else None
    assert status is None or status in (400, 413, 431), reply[:300]
    assert_healthy(api_gateway)
