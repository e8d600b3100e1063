"""GET /metrics on a real gateway: chat (streamed and not) and an error are counted; with
two worker processes any worker's answer covers both, and a killed worker's counts stay."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bastion.config import load_settings
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import RunningGateway
from tests.integration.test_lifecycle import free_port, start_bastion, stop_process, wait_ready

MSG = [{"role": "user", "content": "Say hello to the metrics."}]
Samples = list[tuple[str, dict[str, str], float]]


def parse(text: bytes) -> dict[str, Samples]:
    families = text_string_to_metric_families(text.decode())
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in families}


def total(parsed: dict[str, Samples], family: str, sample: str | None = None,
          **labels: str) -> float:
    """The sum of the family's samples named ``sample`` whose labels include ``labels``."""
    names = (sample,) if sample else (family, family + "_total")
    return sum(v for name, lab, v in parsed.get(family, [])
               if name in names and all(lab.get(k) == w for k, w in labels.items()))


@pytest.fixture()
def ups() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    good, bad = FakeUpstream().start(), FakeUpstream().start()
    bad.behaviour.status = 500
    yield good, bad
    good.stop()
    bad.stop()


def gateway(home: Path, good: FakeUpstream, bad: FakeUpstream, **overrides: Any) -> RunningGateway:
    models = [
        {"name": "fake-a", "backend": "openai", "base_url": good.base_url, "alias": "chat"},
        {"name": "broken", "backend": "openai", "base_url": bad.base_url},
    ]
    settings = load_settings(env={}, overrides={
        "server.port": 0, "models": models, "home": str(home),
        "tracing": {"enabled": False},  # metrics alone
        **overrides,
    })
    return RunningGateway(settings).start()


def stream_usage(body: bytes) -> dict[str, int]:
    for line in body.split(b"\n"):
        if line.startswith(b"data: {"):
            usage = json.loads(line[6:]).get("usage")
            if usage:
                return dict(usage)
    raise AssertionError("no usage in the stream")


def scrape_until(gw: RunningGateway, requests: float, timeout: float = 5.0) -> dict[str, Samples]:
    """Streams are counted when they close, just after the client read them: poll."""
    deadline = time.monotonic() + timeout
    while True:
        status, headers, body = gw.request_full("GET", "/metrics")
        assert status == 200
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        parsed = parse(body)
        if total(parsed, "bastion_requests") >= requests or time.monotonic() > deadline:
            return parsed
        time.sleep(0.05)


def test_metrics_count_chat_streams_and_errors(
    tmp_path: Path, ups: tuple[FakeUpstream, FakeUpstream]
) -> None:
    gw = gateway(tmp_path, *ups)
    try:
        usages = []
        for _ in range(3):
            status, body = gw.request("POST", "/v1/chat/completions",
                                      {"model": "chat", "messages": MSG})
            assert status == 200
            usages.append(body["usage"])
        for _ in range(2):
            status, body = gw.request("POST", "/v1/chat/completions", {
                "model": "chat", "messages": MSG, "stream": True,
                "stream_options": {"include_usage": True}})
            assert status == 200
            usages.append(stream_usage(body))
        status, _ = gw.request("POST", "/v1/chat/completions", {"model": "broken", "messages": MSG},
                               headers={"x-bastion-retries": "1"})
        assert status == 502
        got = scrape_until(gw, 6)
    finally:
        gw.stop()

    assert total(got, "bastion_requests") == 6, "health checks and scrapes are not counted"
    assert total(got, "bastion_requests", model="chat", deployment="fake-a", status="200") == 5
    assert total(got, "bastion_requests", model="broken", status="502") == 1
    assert total(got, "bastion_errors", model="broken", error_type="upstream_error") == 1
    assert total(got, "bastion_errors", model="chat") == 0
    assert total(got, "bastion_retries", model="broken") == 1
    prompt = sum(u["prompt_tokens"] for u in usages)
    completion = sum(u["completion_tokens"] for u in usages)
    assert total(got, "bastion_tokens", model="chat", type="input") == prompt
    assert total(got, "bastion_tokens", model="chat", type="output") == completion

    usage = "gen_ai_client_token_usage"
    chat_labels = {"gen_ai_operation_name": "chat", "gen_ai_request_model": "chat",
                   "gen_ai_provider_name": "openai"}
    assert total(got, usage, usage + "_count", gen_ai_token_type="input", **chat_labels) == 5
    assert total(got, usage, usage + "_sum", gen_ai_token_type="output", **chat_labels) == completion
    duration = "gen_ai_client_operation_duration_seconds"
    ok = {**chat_labels, "deployment": "fake-a", "error_type": ""}
    assert total(got, duration, duration + "_count", **ok) == 5
    assert total(got, duration, duration + "_bucket", le="+Inf", **ok) == 5
    buckets = [v for name, lab, v in got[duration]
               if name == duration + "_bucket" and lab.get("deployment") == "fake-a"]
    assert buckets == sorted(buckets) and buckets[0] <= 5, "cumulative buckets"
    assert total(got, duration, duration + "_count", error_type="upstream_error") == 1
    ttft = "gen_ai_server_time_to_first_token_seconds"
    assert total(got, ttft, ttft + "_count", deployment="fake-a") == 2, "streams only"
    tpot = "gen_ai_server_time_per_output_token_seconds"
    assert total(got, tpot, tpot + "_count") == 2
    overhead = "bastion_gateway_overhead_seconds"
    assert total(got, overhead, overhead + "_count", gen_ai_operation_name="chat") == 6

    assert total(got, "bastion_deployment_ready", deployment="fake-a") == 1
    assert total(got, "bastion_deployment_in_flight", deployment="fake-a") == 0
    assert total(got, "bastion_deployment_breaker_state", deployment="fake-a") == 0
    assert total(got, "bastion_queue_depth", model="chat") == 0
    assert total(got, "bastion_workers") == 1
    assert total(got, "bastion_resident_memory_bytes") > 1 << 20
    assert "bastion_guard_decisions" in got and "bastion_cache_requests" in got
    assert got["bastion_gpu_utilization_ratio"] == [], "no GPU on this machine"


def test_metrics_can_be_turned_off(tmp_path: Path, ups: tuple[FakeUpstream, FakeUpstream]) -> None:
    gw = gateway(tmp_path, *ups, metrics={"enabled": False})
    try:
        status, body = gw.request("GET", "/metrics")
        assert status == 404 and body["error"]["code"] == "unknown_url"
    finally:
        gw.stop()


# ---------------------------------------------------------------------- two workers
def get(port: int, path: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a new connection
    try:
        if body is None:
            conn.request("GET", path)
        else:
            conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def scrape(port: int) -> dict[str, Samples]:
    status, _, body = get(port, "/metrics")
    assert status == 200
    return parse(body)


def workers_of(parsed: dict[str, Samples]) -> set[int]:
    return {int(lab["worker"]) for _, lab, _ in parsed["bastion_process_open_fds"]}


def wait_for(port: int, requests: int, timeout: float = 10.0) -> dict[str, Samples]:
    """Siblings' counts arrive with their next snapshot (about a second)."""
    deadline = time.monotonic() + timeout
    while True:
        parsed = scrape(port)
        if total(parsed, "bastion_requests") == requests or time.monotonic() > deadline:
            return parsed
        time.sleep(0.1)


def test_workers_metrics_cover_every_worker_and_survive_a_killed_one(tmp_path: Path) -> None:
    with FakeUpstream().start() as up:
        port = free_port()
        config = {
            "server": {"workers": 2},
            "home": str(tmp_path / "home"),
            "tracing": {"enabled": False},
            "models": [{"name": "a", "backend": "openai", "base_url": up.base_url}],
        }
        proc = start_bastion(tmp_path, config, port)
        try:
            wait_ready(port, proc)
            body = {"model": "a", "messages": MSG}
            served_by: set[str] = set()
            sent = 0
            deadline = time.monotonic() + 20
            while (len(served_by) < 2 or sent < 20) and time.monotonic() < deadline:
                status, headers, _ = get(port, "/v1/chat/completions", body)
                assert status == 200
                served_by.add(headers["x-request-id"][:12])  # each gateway's own id prefix
                sent += 1
            assert len(served_by) == 2, "requests went to both workers"

            got = wait_for(port, sent)
            assert total(got, "bastion_requests") == sent
            for _ in range(10):  # whichever worker answers, it reports both
                got = scrape(port)
                assert total(got, "bastion_requests", model="a", status="200") == sent
                assert total(got, "bastion_workers") == 2
            pids = workers_of(got)
            assert len(pids) == 2
            cpu = total(got, "bastion_cpu_seconds")

            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            replaced = False
            while time.monotonic() < deadline and not replaced:
                with contextlib.suppress(OSError):  # between a death and its replacement
                    got = scrape(port)
                    assert total(got, "bastion_requests") == sent, "no count went backwards"
                    assert total(got, "bastion_cpu_seconds") >= cpu
                    now = workers_of(got)
                    replaced = len(now) == 2 and victim not in now
                time.sleep(0.2)
            assert replaced, "the killed worker was replaced, and its gauges dropped"

            for _ in range(6):
                assert get(port, "/v1/chat/completions", body)[0] == 200
            got = wait_for(port, sent + 6)
            assert total(got, "bastion_requests") == sent + 6
            tokens = total(got, "gen_ai_client_token_usage", "gen_ai_client_token_usage_count",
                           gen_ai_token_type="input")
            assert tokens == sent + 6
            retired = tmp_path / "home" / "metrics" / f"sup-{proc.pid}" / "retired.json"
            assert retired.exists()
        finally:
            # SIGTERM, so the supervisor takes its workers down with it (SIGKILL would not)
            with contextlib.suppress(subprocess.TimeoutExpired):
                stop_process(proc, graceful=True)
            stop_process(proc)
