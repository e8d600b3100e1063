"""OpenTelemetry export from a real gateway to an OTLP/HTTP collector on loopback.

The collector is a tiny HTTP server in the test that decodes what the gateway's SDK sends
(``ExportTraceServiceRequest`` / ``ExportMetricsServiceRequest`` protobufs). Stopping the
gateway flushes its exporter, so the assertions run on everything it exported.
"""

from __future__ import annotations

import gzip
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as ProtoStatus

from bastion.config import load_settings
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import RunningGateway

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi, I am jane.doe@example.com"},
]


# ---------------------------------------------------------------------- the collector
def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _attrs(v.kvlist_value.values)
    return getattr(v, kind) if kind else None


def _attrs(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items if isinstance(kv, KeyValue)}


class Collector:
    """Accepts POST /v1/traces and /v1/metrics (protobuf, gzip or not); keeps it all."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path == "/v1/traces":
                    collector._traces(body)
                    reply = ExportTraceServiceResponse().SerializeToString()
                elif self.path == "/v1/metrics":
                    collector._metrics(body)
                    reply = ExportMetricsServiceResponse().SerializeToString()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            self.resources.append(_attrs(resource_spans.resource.attributes))
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append({
                        "name": span.name,
                        "kind": span.kind,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent": span.parent_span_id.hex(),
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                        "status": span.status.code,
                        "attrs": _attrs(span.attributes),
                    })

    def _metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        for resource_metrics in request.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.histogram.data_points:
                        self.metrics.append({
                            "name": metric.name, "unit": metric.unit,
                            "count": point.count, "sum": point.sum,
                            "bounds": list(point.explicit_bounds),
                            "attrs": _attrs(point.attributes),
                        })

    def roots(self) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["kind"] == ProtoSpan.SPAN_KIND_CLIENT]

    def children(self, root: dict[str, Any]) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["parent"] == root["span_id"]]

    def latest(self, name: str) -> dict[tuple[tuple[str, Any], ...], dict[str, Any]]:
        """The last cumulative point per attribute set of a histogram."""
        out: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
        for point in self.metrics:
            if point["name"] == name:
                out[tuple(sorted(point["attrs"].items()))] = point
        return out


@pytest.fixture()
def collector() -> Iterator[Collector]:
    c = Collector()
    c.thread.start()
    yield c
    c.server.shutdown()
    c.server.server_close()


@pytest.fixture()
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream().start() as up:
        yield up


@pytest.fixture()
def start(tmp_path: Path) -> Iterator[Any]:
    started: list[RunningGateway] = []

    def make(up: FakeUpstream, endpoint: str, **overrides: Any) -> RunningGateway:
        settings = load_settings(env={}, overrides={
            "server.port": 0,
            "home": str(tmp_path),
            "models": [{
                "name": "fake", "backend": "openai", "base_url": up.base_url,
                "upstream_model": "fake-upstream-v1", "read_timeout": 5.0,
            }],
            "routing": {"default": {"retries": 0}},
            "tracing": {"enabled": False},
            "metrics": {"enabled": False},
            **overrides,
            "otel": {"enabled": True, "endpoint": endpoint, "export_interval": 0.2,
                     "service_name": "bastion-test", **overrides.get("otel", {})},
        })
        gw = RunningGateway(settings).start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


def chat(gw: RunningGateway, headers: dict[str, str] | None = None, **body: Any) -> Any:
    status, reply = gw.request(
        "POST", "/v1/chat/completions", {"model": "fake", "messages": MESSAGES, **body}, headers
    )
    assert status == 200, reply
    return reply


def stop(gw: RunningGateway) -> None:
    t0 = time.monotonic()
    gw.stop()
    assert time.monotonic() - t0 < 15, "close flushes within a bounded time"


# ---------------------------------------------------------------------- tests
def test_chat_span_follows_genai_conventions_and_joins_the_callers_trace(
    collector: Collector, upstream: FakeUpstream, start: Any
) -> None:
    gw = start(upstream, collector.endpoint)
    reply = chat(gw, {"traceparent": f"00-{TRACE}-{PARENT}-01"},
                 temperature=0.25, max_tokens=40, top_p=0.9, seed=7)
    stop(gw)

    (root,) = collector.roots()
    assert root["name"] == "chat fake"
    assert root["trace_id"] == TRACE and root["parent"] == PARENT
    a = root["attrs"]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "fake"
    assert a["gen_ai.response.model"] == "fake-upstream-v1" == reply["model"]
    assert a["gen_ai.response.id"] == reply["id"]
    assert a["gen_ai.request.temperature"] == 0.25
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 40
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.usage.input_tokens"] == reply["usage"]["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == reply["usage"]["completion_tokens"]
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == upstream.port
    assert a["bastion.deployment"] == "fake"
    assert "error.type" not in a and root["status"] != ProtoStatus.STATUS_CODE_ERROR
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    assert collector.resources[0]["service.name"] == "bastion-test"

    children = collector.children(root)
    assert [c["name"] for c in children] == ["auth", "admission", "parse", "backend"]
    backend = children[-1]
    assert backend["trace_id"] == TRACE and backend["kind"] == ProtoSpan.SPAN_KIND_INTERNAL
    assert root["start"] <= backend["start"] <= backend["end"] <= root["end"]
    assert backend["attrs"]["bastion.deployment"] == "fake"
    assert abs(root["start"] / 1e9 - time.time()) < 60, "epoch nanoseconds"

    (sent,) = upstream.requests
    assert sent["headers"]["traceparent"] == f"00-{TRACE}-{root['span_id']}-01"


def test_request_without_traceparent_starts_a_trace_the_upstream_continues(
    collector: Collector, upstream: FakeUpstream, start: Any
) -> None:
    gw = start(upstream, collector.endpoint)
    chat(gw, {"traceparent": f"00-{'0' * 32}-{PARENT}-01",  # invalid: ignored
              "tracestate": "congo=t61rcWkgMzE"})
    stop(gw)
    (root,) = collector.roots()
    assert root["parent"] == "" and root["trace_id"] != "0" * 32
    headers = upstream.requests[0]["headers"]
    assert headers["traceparent"] == f"00-{root['trace_id']}-{root['span_id']}-01"
    assert "tracestate" not in headers, "no tracestate without a valid traceparent"


def test_tracestate_is_passed_upstream_with_the_callers_trace(
    collector: Collector, upstream: FakeUpstream, start: Any
) -> None:
    gw = start(upstream, collector.endpoint)
    chat(gw, {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "congo=t61rcWkgMzE"})
    stop(gw)
    assert upstream.requests[0]["headers"]["tracestate"] == "congo=t61rcWkgMzE"


@pytest.mark.parametrize(
    ("capture", "mode", "expected"),
    [(True, "full", "full"), (True, "redacted", "redacted"), (True, "metadata", None),
     (False, "full", None)],
)
def test_content_is_exported_only_when_allowed(
    collector: Collector, upstream: FakeUpstream, start: Any,
    capture: bool, mode: str, expected: str | None,
) -> None:
    gw = start(upstream, collector.endpoint, otel={"capture_content": capture},
               tracing={"enabled": False, "content": mode})
    reply = chat(gw)
    stop(gw)
    (root,) = collector.roots()
    a = root["attrs"]
    if expected is None:
        assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
        return
    inputs = json.loads(a["gen_ai.input.messages"])
    outputs = json.loads(a["gen_ai.output.messages"])
    assert [m["role"] for m in inputs] == ["system", "user"]
    assert inputs[0]["parts"] == [{"type": "text", "content": "Be brief."}]
    user_text = inputs[1]["parts"][0]["content"]
    if expected == "full":
        assert user_text == "hi, I am jane.doe@example.com"
    else:
        assert "jane.doe@example.com" not in user_text and "<EMAIL>" in user_text
    assert outputs == [{
        "role": "assistant", "finish_reason": "stop",
        "parts": [{"type": "text", "content": reply["choices"][0]["message"]["content"]}],
    }]


def test_streamed_request_span(collector: Collector, upstream: FakeUpstream, start: Any) -> None:
    # the trace store keeps the stream's events (content mode full): the span gets them too
    gw = start(upstream, collector.endpoint, otel={"capture_content": True},
               tracing={"enabled": True, "content": "full"})
    status, raw = gw.request("POST", "/v1/chat/completions",
                             {"model": "fake", "messages": MESSAGES, "stream": True},
                             {"x-bastion-session": "conv-7"})
    assert status == 200 and b"[DONE]" in raw
    stop(gw)
    (root,) = collector.roots()
    a = root["attrs"]
    assert root["name"] == "chat fake"
    assert a["gen_ai.request.stream"] is True
    assert 0 < a["gen_ai.response.time_to_first_chunk"] < 5
    assert a["gen_ai.usage.output_tokens"] > 0 and a["gen_ai.usage.input_tokens"] > 0
    assert a["gen_ai.response.model"] == "fake-upstream-v1"
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.conversation.id"] == "conv-7"
    (output,) = json.loads(a["gen_ai.output.messages"])
    streamed = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in raw.decode().splitlines()
        if line.startswith("data: {") and json.loads(line[6:])["choices"]
    )
    assert output["parts"] == [{"type": "text", "content": streamed}] and streamed
    assert [c["name"] for c in collector.children(root)][-1] == "backend"


def test_failed_request_has_error_type_and_error_status(
    collector: Collector, upstream: FakeUpstream, start: Any
) -> None:
    upstream.behaviour.status = 500
    gw = start(upstream, collector.endpoint)
    status, _ = gw.request("POST", "/v1/chat/completions", {"model": "fake", "messages": MESSAGES})
    assert status == 502
    stop(gw)
    (root,) = collector.roots()
    assert root["attrs"]["error.type"] == "502"
    assert root["status"] == ProtoStatus.STATUS_CODE_ERROR
    children = collector.children(root)
    assert [c["name"] for c in children] == ["auth", "admission", "parse", "backend"]
    assert children[-1]["status"] == ProtoStatus.STATUS_CODE_ERROR
    durations = collector.latest("gen_ai.client.operation.duration")
    assert any(dict(k).get("error.type") == "502" for k in durations)


def test_unsampled_caller_gets_no_spans_but_metrics_count_it(
    collector: Collector, upstream: FakeUpstream, start: Any
) -> None:
    gw = start(upstream, collector.endpoint)
    chat(gw, {"traceparent": f"00-{TRACE}-{PARENT}-00"})
    stop(gw)
    assert collector.spans == []
    assert upstream.requests[0]["headers"]["traceparent"].endswith("-00")
    assert collector.latest("gen_ai.client.operation.duration")


def test_metrics_are_the_genai_client_histograms(
    collector: Collector, upstream: FakeUpstream, start: Any
) -> None:
    gw = start(upstream, collector.endpoint)
    replies = [chat(gw) for _ in range(3)]
    stop(gw)
    (duration,) = collector.latest("gen_ai.client.operation.duration").values()
    assert duration["unit"] == "s" and duration["count"] == 3
    assert duration["bounds"][:3] == [0.01, 0.02, 0.04]
    assert duration["attrs"] == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "fake", "gen_ai.response.model": "fake-upstream-v1",
        "server.address": "127.0.0.1", "server.port": upstream.port,
    }
    tokens = {dict(k)["gen_ai.token.type"]: p
              for k, p in collector.latest("gen_ai.client.token.usage").items()}
    assert tokens["input"]["unit"] == "{token}" and tokens["input"]["count"] == 3
    assert tokens["input"]["sum"] == sum(r["usage"]["prompt_tokens"] for r in replies)
    assert tokens["output"]["sum"] == sum(r["usage"]["completion_tokens"] for r in replies)
    assert tokens["input"]["bounds"][:3] == [1, 4, 16]


def test_non_genai_requests_are_not_exported(
    collector: Collector, upstream: FakeUpstream, start: Any
) -> None:
    gw = start(upstream, collector.endpoint)
    for path in ("/health/live", "/v1/models"):
        assert gw.request("GET", path)[0] == 200
    stop(gw)
    assert collector.spans == [] and collector.metrics == []


def test_collector_down_costs_requests_nothing(upstream: FakeUpstream, start: Any) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    gw = start(upstream, dead)
    latencies = []
    for _ in range(30):
        t0 = time.perf_counter()
        chat(gw)
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.02)  # let export attempts (every 0.2 s) happen meanwhile
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.1, latencies
    assert latencies[-1] < 1.0, latencies
    stop(gw)
