"""Confidence on real traces: a client that asks for logprobs gets its answer's
confidence on the trace (streamed or not), through a real gateway and the fake upstream;
the tokens themselves only where the content mode keeps the output in full."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, chat, trace_of, traced_gateway


@pytest.fixture(scope="module", params=["full", "redacted"])
def gw(request: pytest.FixtureRequest,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with FakeUpstream().start() as up:
        gateway = traced_gateway(up, tmp_path_factory.mktemp("conf"),
                                 {"content": request.param},
                                 **{"server.master_key": MASTER_KEY})
        gateway.mode = request.param  # type: ignore[attr-defined]
        yield gateway
        gateway.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_give_the_trace_its_confidence(gw: RunningGateway, stream: bool) -> None:
    status, headers, _ = chat(gw, "How sure are you?", stream=stream, logprobs=True,
                              top_logprobs=3)
    assert status == 200
    trace = trace_of(gw, headers["x-request-id"])
    confidence: dict[str, Any] = trace["metadata"]["confidence"]
    assert confidence["tokens"] >= 1
    assert confidence["mean_logprob"] <= 0 and confidence["perplexity"] >= 1
    assert 0 < confidence["min_prob"] <= 1 and confidence["entropy"] > 0
    assert trace["content_mode"] == gw.mode  # type: ignore[attr-defined]
    kept = (trace.get("output") or {}).get("logprobs")
    if trace["content_mode"] == "full":
        assert kept and len(kept) == confidence["tokens"]
        assert all(set(t) == {"token", "logprob"} for t in kept)
    else:
        assert kept is None


def test_no_logprobs_no_confidence(gw: RunningGateway) -> None:
    status, headers, _ = chat(gw, "plain")
    assert status == 200
    assert "confidence" not in trace_of(gw, headers["x-request-id"])["metadata"]


def test_traces_filter_on_confidence(gw: RunningGateway) -> None:
    import math

    _, sure_headers, _ = chat(gw, "Filter me", logprobs=True)
    _, plain_headers, _ = chat(gw, "No logprobs here")
    sure = trace_of(gw, sure_headers["x-request-id"])
    plain = trace_of(gw, plain_headers["x-request-id"])
    value = sure["confidence"]
    assert value == pytest.approx(math.exp(sure["metadata"]["confidence"]["mean_logprob"]),
                                  abs=1e-6)
    assert 0 < value < 1 and plain["confidence"] is None

    def ids(query: str) -> set[str]:
        status, page = gw.request("GET", f"/api/traces?limit=500&{query}")
        assert status == 200, page
        return {t["id"] for t in page["data"]}

    at_most = ids(f"max_confidence={value + 1e-6}")
    assert sure["id"] in at_most and plain["id"] not in at_most  # no logprobs: no value
    assert sure["id"] not in ids(f"max_confidence={value - 1e-3}")
    assert sure["id"] in ids(f"min_confidence={value - 1e-3}")
    status, body = gw.request("GET", "/api/traces?max_confidence=high")
    assert status == 400 and body["error"]["param"] == "max_confidence"
