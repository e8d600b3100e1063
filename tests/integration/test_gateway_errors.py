"""Bad input and failing upstreams, over raw HTTP: every /v1 failure is one OpenAI envelope
with the right status, and nothing answers 500."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from bastion.config import ServerSettings, Settings, UpstreamModel
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import RunningGateway, running

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]


def assert_envelope(status: int, body: Any, expected: int, code: str | None = None) -> dict[str, Any]:
    assert status == expected, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'"just a string"', None),
        (b'{"messages": [{"role":"user","content":"hi"}]}', "model"),
        (b'{"model": "fake-model"}', "messages"),
        (b'{"model": 3, "messages": []}', "model"),
        (b'{"model": "fake-model", "messages": "hello"}', "messages"),
        (b'{"model": "fake-model", "messages": []}', "messages"),
        (b'{"model": "fake-model", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"model": "fake-model", "messages": [{"role": "tool", "content": "x"}]}', "messages[0].tool_call_id"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "max_tokens": "10"}', "max_tokens"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "max_tokens"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "temperature": 9}', "temperature"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "stop": [1]}', "stop"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}', "top_logprobs"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}', "response_format"),
    ],
)
def test_bad_chat_requests_get_400_naming_the_parameter(
    api_gateway: RunningGateway, raw: bytes, param: str | None
) -> None:
    status, body = api_gateway.request("POST", CHAT, raw=raw)
    error = assert_envelope(status, body, 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_unknown_model_is_404_model_not_found(api_gateway: RunningGateway) -> None:
    status, body = api_gateway.request("POST", CHAT, {"model": "gpt-99", "messages": MSG})
    assert_envelope(status, body, 404, "model_not_found")


def test_body_over_limit_is_413(api_gateway: RunningGateway) -> None:
    big = b'{"model": "fake-model", "messages": [{"role": "user", "content": "' + b"x" * (9 << 20) + b'"}]}'
    status, body = api_gateway.request("POST", CHAT, raw=big)
    assert_envelope(status, body, 413, "payload_too_large")


def test_chunked_body_over_limit_is_413(api_gateway: RunningGateway) -> None:
    sock = socket.create_connection(("127.0.0.1", api_gateway.port))
    try:
        head = (
            f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/json\r\n\r\n"
        ).encode()
        sock.sendall(head)
        chunk = b"a" * (1 << 20)
        reply = b""
        sock.settimeout(10)
        for _ in range(10):
            try:
                sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            except OSError:
                break
        while b"\r\n\r\n" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
        assert reply.startswith(b"HTTP/1.1 413")
    finally:
        sock.close()


def test_missing_and_wrong_key_are_401(api_gateway: RunningGateway) -> None:
    status, body = api_gateway.request("POST", CHAT, {"model": "fake-model", "messages": MSG}, key=None)
    assert_envelope(status, body, 401, "missing_api_key")
    status, body = api_gateway.request("GET", "/v1/models", key="sk-wrong")
    error = assert_envelope(status, body, 401, "invalid_api_key")
    assert error["type"] == "authentication_error"


def test_unknown_path_and_wrong_method(api_gateway: RunningGateway) -> None:
    status, body = api_gateway.request("GET", "/v1/nothing-here")
    assert_envelope(status, body, 404)
    status, body = api_gateway.request("GET", CHAT)
    assert_envelope(status, body, 405)


def test_malformed_http_gets_400_not_500(api_gateway: RunningGateway) -> None:
    with socket.create_connection(("127.0.0.1", api_gateway.port)) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")


def test_every_response_has_request_id_and_overhead(api_gateway: RunningGateway) -> None:
    for method, path, body in [
        ("GET", "/v1/models", None),
        ("POST", CHAT, {"model": "nope", "messages": MSG}),
        ("GET", "/health/live", None),
    ]:
        _, headers, _ = api_gateway.request_full(method, path, body)
        assert headers["x-request-id"]
        assert float(headers["x-bastion-overhead-ms"]) >= 0
    _, headers, _ = api_gateway.request_full("GET", "/v1/models", headers={"x-request-id": "trace-abc"})
    assert headers["x-request-id"] == "trace-abc"


def test_health_endpoints(api_gateway: RunningGateway) -> None:
    assert api_gateway.request("GET", "/health/live")[0] == 200
    status, body = api_gateway.request("GET", "/health/ready")
    assert status == 200 and body["status"] == "ready"


# ---------------------------------------------------------------- upstream failures
def chat(
    api_gateway: RunningGateway, upstream: FakeUpstream, stream: bool = False, **behaviour: Any
) -> tuple[int, dict[str, str], Any]:
    """A chat request through the gateway while the upstream behaves as told."""
    upstream.reset()
    for name, value in behaviour.items():
        setattr(upstream.behaviour, name, value)
    try:
        return api_gateway.request_full(
            "POST", CHAT, {"model": "fake-model", "messages": MSG, "stream": stream}
        )
    finally:
        upstream.reset()


def test_upstream_500_becomes_502_with_its_message(api_gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    status, _, body = chat(api_gateway, fresh_upstream, status=500)
    error = assert_envelope(status, body, 502, "upstream_error")
    assert "fake upstream error" in error["message"]


def test_upstream_429_keeps_retry_after(api_gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    status, headers, body = chat(api_gateway, fresh_upstream, status=429, retry_after=7)
    assert_envelope(status, body, 429)
    assert headers["retry-after"] == "7"


def test_upstream_400_passes_through(api_gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    status, _, body = chat(api_gateway, fresh_upstream, status=400)
    assert_envelope(status, body, 400, "upstream_rejected")


def test_upstream_dropping_connection_is_502(api_gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    for mode in ("before_headers", "mid_body", "reset"):
        status, _, body = chat(api_gateway, fresh_upstream, drop=mode)
        assert_envelope(status, body, 502, "upstream_error")


def test_slow_upstream_is_504(api_gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    status, _, body = chat(api_gateway, fresh_upstream, delay_ms=3000)  # read_timeout is 2 s
    assert_envelope(status, body, 504, "upstream_timeout")


def test_unreachable_upstream_is_502() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    settings = Settings(
        server=ServerSettings(port=0),
        models=[
            UpstreamModel(name="dead", backend="openai", base_url=f"http://127.0.0.1:{dead_port}/v1")
        ],
    )
    with running(settings) as gw:
        status, body = gw.request("POST", CHAT, {"model": "dead", "messages": MSG})
        error = assert_envelope(status, body, 502, "upstream_error")
        assert "connect" in error["message"].lower()


def _sse_events(raw: bytes) -> list[bytes]:
    return [e for e in raw.split(b"\n\n") if e.strip()]


def test_stream_dropped_mid_way_ends_with_error_event(api_gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    status, headers, body = chat(api_gateway, fresh_upstream, stream=True, drop="mid_stream")
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = _sse_events(body)
    assert b'"error"' in events[-1]
    assert b"[DONE]" not in body


def test_malformed_stream_ends_with_error_event(api_gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    status, _, body = chat(api_gateway, fresh_upstream, stream=True, malformed_stream=True)
    assert status == 200
    events = _sse_events(body)
    assert b"malformed" in events[-1]
    assert b"{not json" not in body


def test_stream_failure_before_headers_is_plain_error(api_gateway: RunningGateway, fresh_upstream: FakeUpstream) -> None:
    status, _, body = chat(api_gateway, fresh_upstream, stream=True, status=503)
    assert_envelope(status, body, 502)
