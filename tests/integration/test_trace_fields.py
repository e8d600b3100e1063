"""What a stored trace says, through a real gateway on loopback: no secret or PII of any
kind the scanners know in ``redacted`` mode, one definition of overhead for the header,
the metric and the trace, the tokens of a stream the client left, the model list."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import RunningGateway, trace_of, traced_gateway
from tests.unit.test_trace_redaction import NER_ONLY, needles


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)


def stream_chat(gw: RunningGateway, content: str = "hi") -> tuple[dict[str, str], bytes]:
    body = {"model": "chat", "messages": [{"role": "user", "content": content}],
            "stream": True}
    status, headers, data = gw.request_full("POST", "/v1/chat/completions", body)
    assert status == 200, data
    return headers, data if isinstance(data, bytes) else json.dumps(data).encode()


@pytest.mark.parametrize(("stream", "ner"), [(False, True), (True, True), (False, False)])
def test_stored_trace_holds_no_kind_the_scanners_know(
        up: FakeUpstream, tmp_path: Path, stream: bool, ner: bool) -> None:
    """Every secrets rule and PII kind (their registries, see test_trace_redaction), in the
    request and in the answer, default content mode: none of them is stored (with
    ``tracing.redact_ner: false``, none that the scanners find without the NER model)."""
    cases = list(needles(ner))
    undetected = {kind for kind, _, values in cases if not values}
    assert undetected <= (set() if ner else NER_ONLY), "a sample the scanners do not detect"
    text = "\n".join(sample for _, sample, _ in cases)
    up.behaviour.content = "Noted:\n" + text
    gw = traced_gateway(up, tmp_path, {} if ner else {"redact_ner": False})
    try:
        messages = [{"role": "user", "content": sample} for _, sample, _ in cases]
        status, headers, answer = gw.request_full(
            "POST", "/v1/chat/completions",
            {"model": "chat", "messages": messages, "stream": stream})
        assert status == 200, answer
        trace = trace_of(gw, headers["x-request-id"])
    finally:
        gw.stop()
    assert trace["content_mode"] == "redacted"
    assert trace["input"] and trace["output"], "the bodies are kept, redacted"
    stored = "\n".join([*strings(trace["input"]), *strings(trace["output"])])
    assert "Noted:" in stored
    leaked = [(kind, value) for kind, _, values in cases for value in values
              if value in stored]
    assert leaked == []


def test_streamed_overhead_excludes_generation(up: FakeUpstream, tmp_path: Path) -> None:
    """A slow stream (12 events, 60 ms apart): its generation is the backend's time, so the
    trace's overhead is a small part of its latency, and the metric's is the trace's."""
    up.behaviour.chunks = 12
    up.behaviour.chunk_delay_ms = 60
    gw = traced_gateway(up, tmp_path)
    try:
        headers, _ = stream_chat(gw)
        trace = trace_of(gw, headers["x-request-id"])
        status, text = gw.request("GET", "/metrics")
        assert status == 200
    finally:
        gw.stop()
    assert trace["stream"] and trace["status"] == 200
    generation = trace["latency_ms"] - trace["ttft_ms"]
    assert generation >= 0.5 * 11 * 60, "the upstream did stream slowly"
    assert trace["overhead_ms"] * 10 < trace["latency_ms"], trace
    # the header is written before the stream: it counts the gateway's time up to then,
    # which the trace counts too, give or take the instants around the backend's headers
    assert float(headers["x-bastion-overhead-ms"]) <= trace["overhead_ms"] + 1.0
    metric = next(line for line in text.decode().splitlines() if line.startswith(
        'bastion_gateway_overhead_seconds_sum{gen_ai_operation_name="chat"}'))
    assert float(metric.split()[-1]) * 1000 == pytest.approx(trace["overhead_ms"], abs=0.01)


def _read_events(sock: socket.socket, want: int) -> tuple[str, int]:
    """Reads the response until ``want`` content events came: (its trace id, how many)."""
    data = b""
    while data.count(b'"content":"') - data.count(b'"content":""') < want:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode().lower().split("\r\n")
    trace_id = next(h.split(":", 1)[1].strip() for h in head
                    if h.startswith("x-bastion-trace-id:"))
    return trace_id, data.count(b'"content":"') - data.count(b'"content":""')


@pytest.mark.parametrize("mode", ["redacted", "metadata"])
def test_disconnected_stream_counts_the_tokens_sent(
        up: FakeUpstream, tmp_path: Path, mode: str) -> None:
    up.behaviour.chunks = 40
    up.behaviour.chunk_delay_ms = 40
    up.behaviour.content = " ".join(f"word{i}" for i in range(40))
    gw = traced_gateway(up, tmp_path, {"content": mode})
    try:
        body = json.dumps({"model": "chat", "stream": True,
                           "messages": [{"role": "user", "content": "count"}]}).encode()
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nx-request-id: cut-1\r\n"
                     b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
        trace_id, seen = _read_events(sock, 3)
        sock.close()
        trace = trace_of(gw, trace_id)
    finally:
        gw.stop()
    assert trace["status"] == 499 and trace["error"] == "client disconnected", trace
    assert trace["output_tokens"] is not None, "tokens were sent: they are counted"
    assert seen <= trace["output_tokens"] < 40 + 3, trace
    assert trace["metadata"]["output_tokens_from"] == "events_sent"


def test_model_list_is_traced(up: FakeUpstream, tmp_path: Path) -> None:
    """README: every /v1/* call is traced; the model list and a model's entry too."""
    gw = traced_gateway(up, tmp_path)
    try:
        status, listed, _ = gw.request_full("GET", "/v1/models")
        assert status == 200
        status, one, _ = gw.request_full("GET", "/v1/models/chat")
        assert status == 200
        status, missing, _ = gw.request_full("GET", "/v1/models/nope")
        assert status == 404
        traces = [trace_of(gw, h["x-request-id"]) for h in (listed, one, missing)]
    finally:
        gw.stop()
    assert [(t["endpoint"], t["status"]) for t in traces] == [
        ("/v1/models", 200), ("/v1/models/chat", 200), ("/v1/models/nope", 404)]
