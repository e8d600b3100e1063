"""Routing under faults: several fake upstreams behind one alias, on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from bastion.config import load_settings
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import RunningGateway

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture()
def ups() -> Iterator[list[FakeUpstream]]:
    servers = [FakeUpstream().start() for _ in range(3)]
    yield servers
    for server in servers:
        server.stop()


def deployment(name: str, up: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {"name": name, "backend": "openai", "base_url": up.base_url, "read_timeout": 2.0, **extra}


def start(models: list[dict[str, Any]], routing: dict[str, Any] | None = None) -> RunningGateway:
    settings = load_settings(
        env={},
        overrides={"server.port": 0, "models": models, "routing": routing or {}},
    )
    return RunningGateway(settings).start()


@pytest.fixture()
def gateway_factory() -> Iterator[Any]:
    started: list[RunningGateway] = []

    def make(models: list[dict[str, Any]], routing: dict[str, Any] | None = None) -> RunningGateway:
        gw = start(models, routing)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


def chat(gw: RunningGateway, model: str = "chat", stream: bool = False) -> tuple[int, dict[str, str], Any]:
    return gw.request_full("POST", "/v1/chat/completions", {"model": model, "messages": MSG, "stream": stream})


def deployments(gw: RunningGateway) -> dict[str, dict[str, Any]]:
    status, body = gw.request("GET", "/api/deployments")
    assert status == 200
    return {d["name"]: d for d in body["data"]}


def test_failing_deployment_is_failed_over_and_its_breaker_opens(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    bad, good = ups[0], ups[1]
    bad.behaviour.status = 500
    gw = gateway_factory(
        [deployment("a", bad, alias="chat"), deployment("b", good, alias="chat")],
        {"default": {"strategy": "round_robin"}, "failure_threshold": 3, "cooldown": 60},
    )
    results = [chat(gw)[0] for _ in range(20)]
    assert results == [200] * 20, "every request is answered by the healthy deployment"
    state = deployments(gw)
    assert state["a"]["breaker"] == "open"
    assert state["a"]["failures"] == 3, "no traffic after the breaker opened"
    assert state["b"]["successes"] == 20
    assert len(bad.requests) == 3


def test_dead_upstream_loses_no_request(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    gw = gateway_factory(
        [deployment("a", ups[0], alias="chat"), deployment("b", ups[1], alias="chat")],
        {"default": {"strategy": "round_robin"}},
    )
    assert [chat(gw)[0] for _ in range(4)] == [200] * 4
    ups[0].stop()
    assert [chat(gw)[0] for _ in range(10)] == [200] * 10
    assert deployments(gw)["a"]["failures"] >= 1


def test_rate_limited_deployment_fails_over_to_another(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.status = 429
    ups[0].behaviour.retry_after = 30
    gw = gateway_factory(
        [deployment("a", ups[0], alias="chat", priority=1), deployment("b", ups[1], alias="chat", priority=2)]
    )
    status, _, body = chat(gw)
    assert status == 200, body
    assert len(ups[0].requests) == 1 and len(ups[1].requests) == 1


def test_long_retry_after_is_not_waited_for(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.status = 429
    ups[0].behaviour.retry_after = 30
    gw = gateway_factory([deployment("a", ups[0], alias="chat")], {"default": {"retries": 3}})
    started = time.monotonic()
    status, headers, _ = chat(gw)
    assert status == 429
    assert headers["retry-after"] == "30"
    assert time.monotonic() - started < 5
    assert len(ups[0].requests) == 1


def test_short_retry_after_is_honoured_then_retried(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.status = 503
    ups[0].behaviour.retry_after = 1
    gw = gateway_factory(
        [deployment("a", ups[0], alias="chat")],
        {"default": {"retries": 1, "max_backoff": 2.0}, "failure_threshold": 10},
    )
    started = time.monotonic()
    status, _, _ = chat(gw)
    elapsed = time.monotonic() - started
    assert status == 502
    assert len(ups[0].requests) == 2, "one retry after the hinted delay"
    assert elapsed >= 0.9


def test_client_errors_are_not_retried(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.status = ups[1].behaviour.status = 400
    gw = gateway_factory([deployment("a", ups[0], alias="chat"), deployment("b", ups[1], alias="chat")])
    status, _, _ = chat(gw)
    assert status == 400
    assert len(ups[0].requests) + len(ups[1].requests) == 1
    for state in deployments(gw).values():
        assert state["failures"] == 0 and state["in_flight"] == 0


def test_fallback_alias_answers_when_every_deployment_fails(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.status = 500
    gw = gateway_factory(
        [deployment("big", ups[0]), deployment("small", ups[1])],
        {"aliases": {"big": {"fallbacks": ["small"], "retries": 0}}},
    )
    status, _, body = chat(gw, "big")
    assert status == 200, body
    assert len(ups[1].requests) == 1


def test_priority_groups_use_the_backup_only_when_needed(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    primary, backup = ups[0], ups[1]
    gw = gateway_factory(
        [deployment("p", primary, alias="chat", priority=1), deployment("s", backup, alias="chat", priority=2)],
        {"failure_threshold": 2, "cooldown": 0.5},
    )
    assert [chat(gw)[0] for _ in range(5)] == [200] * 5
    assert len(backup.requests) == 0
    primary.behaviour.status = 500
    assert [chat(gw)[0] for _ in range(5)] == [200] * 5
    assert deployments(gw)["p"]["breaker"] == "open"
    primary.reset()
    time.sleep(0.6)  # cooldown over: the next request is a half-open probe to the primary
    backup_before = len(backup.requests)
    assert chat(gw)[0] == 200
    assert deployments(gw)["p"]["breaker"] == "closed"
    assert len(backup.requests) == backup_before


def test_started_stream_is_never_retried(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.drop = "mid_stream"
    gw = gateway_factory(
        [deployment("a", ups[0], alias="chat", priority=1), deployment("b", ups[1], alias="chat", priority=2)]
    )
    status, _, body = chat(gw, stream=True)
    assert status == 200
    assert b'"error"' in body.rstrip().split(b"\n\n")[-1]
    assert len(ups[0].requests) == 1 and len(ups[1].requests) == 0
    state = deployments(gw)
    assert state["a"]["failures"] == 1 and state["a"]["in_flight"] == 0


def test_stream_refused_before_it_starts_fails_over(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.status = 503
    gw = gateway_factory(
        [deployment("a", ups[0], alias="chat", priority=1), deployment("b", ups[1], alias="chat", priority=2)]
    )
    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key="x", max_retries=0)
    chunks = list(client.chat.completions.create(model="chat", messages=MSG, stream=True))  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    assert deployments(gw)["b"]["in_flight"] == 0


def test_models_lists_each_alias_once(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    gw = gateway_factory(
        [deployment("a", ups[0], alias="chat"), deployment("b", ups[1], alias="chat"), deployment("solo", ups[2])]
    )
    status, body = gw.request("GET", "/v1/models")
    assert status == 200
    assert sorted(m["id"] for m in body["data"]) == ["chat", "solo"]
    assert gw.request("GET", "/v1/models/chat")[0] == 200
    assert gw.request("GET", "/v1/models/a")[0] == 404


def test_no_available_deployment_is_503_with_retry_after(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.status = ups[1].behaviour.status = 500
    gw = gateway_factory(
        [deployment("a", ups[0], alias="chat"), deployment("b", ups[1], alias="chat")],
        {"failure_threshold": 1, "cooldown": 30, "default": {"retries": 1}},
    )
    assert chat(gw)[0] == 502
    status, headers, body = chat(gw)
    assert status == 503, body
    assert 1 <= int(headers["retry-after"]) <= 30


def test_the_only_deployment_is_never_ejected(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.status = 500
    gw = gateway_factory(
        [deployment("a", ups[0], alias="chat")],
        {"failure_threshold": 1, "cooldown": 30, "default": {"retries": 0}},
    )
    assert [chat(gw)[0] for _ in range(3)] == [502] * 3
    ups[0].reset()
    assert chat(gw)[0] == 200, "no cooldown of 503s for an alias with nowhere else to go"


def test_slow_deployment_times_out_and_fails_over(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.delay_ms = 3000
    gw = gateway_factory(
        [
            deployment("slow", ups[0], alias="chat", priority=1, timeout=0.3, first_token_timeout=0.3),
            deployment("fast", ups[1], alias="chat", priority=2),
        ]
    )
    started = time.monotonic()
    assert chat(gw)[0] == 200
    status, _, body = chat(gw, stream=True)
    assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
    assert time.monotonic() - started < 2.5, "each attempt was cut at 0.3 s"
    state = deployments(gw)
    assert state["slow"]["failures"] == 2 and state["fast"]["successes"] == 2


def test_request_deadline_header_bounds_the_whole_request(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.delay_ms = 3000
    gw = gateway_factory([deployment("a", ups[0], alias="chat")])
    started = time.monotonic()
    status, _, body = gw.request_full(
        "POST", "/v1/chat/completions", {"model": "chat", "messages": MSG},
        headers={"x-bastion-timeout": "0.4"},
    )
    assert status == 504, body
    assert time.monotonic() - started < 2
    status, _, body = gw.request_full(
        "POST", "/v1/chat/completions", {"model": "chat", "messages": MSG},
        headers={"x-bastion-timeout": "soon"},
    )
    assert status == 400 and body["error"]["param"] == "x-bastion-timeout"


def test_session_affinity_keeps_a_user_on_one_deployment(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    gw = gateway_factory(
        [deployment("a", ups[0], alias="chat"), deployment("b", ups[1], alias="chat"), deployment("c", ups[2], alias="chat")],
        {"default": {"strategy": "round_robin", "affinity": "user"}},
    )
    for user in ("alice", "bob", "carol", "dave"):
        for up in ups:
            up.reset()
        for _ in range(4):
            status, _, _ = gw.request_full(
                "POST", "/v1/chat/completions", {"model": "chat", "messages": MSG, "user": user}
            )
            assert status == 200
        assert sorted(len(up.requests) for up in ups) == [0, 0, 4], user


def test_header_affinity(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    gw = gateway_factory(
        [deployment("a", ups[0], alias="chat"), deployment("b", ups[1], alias="chat")],
        {"default": {"strategy": "round_robin", "affinity": "x-session-id"}},
    )
    for _ in range(4):
        gw.request_full(
            "POST", "/v1/chat/completions", {"model": "chat", "messages": MSG},
            headers={"x-session-id": "s-1"},
        )
    assert sorted(len(up.requests) for up in ups[:2]) == [0, 4]


def test_active_probes_eject_a_dead_upstream_and_readmit_it(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    gw = gateway_factory(
        [deployment("a", ups[0], alias="chat"), deployment("b", ups[1], alias="chat")],
        {"probe_interval": 0.2, "cooldown": 60},
    )
    port = ups[0].port
    ups[0].stop()

    def breaker() -> str:
        return str(deployments(gw)["a"]["breaker"])

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and breaker() != "open":
        time.sleep(0.05)
    assert breaker() == "open", "ejected by the probe, without any client traffic"
    revived = FakeUpstream(port=port).start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and breaker() != "closed":
            time.sleep(0.05)
        assert breaker() == "closed", "readmitted by the probe, long before the 60 s cooldown"
    finally:
        revived.stop()


def test_requests_wait_briefly_for_a_deployment_at_capacity(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ups[0].behaviour.delay_ms = ups[1].behaviour.delay_ms = 300
    models = [
        deployment("a", ups[0], alias="chat", max_concurrency=1),
        deployment("b", ups[1], alias="chat", max_concurrency=1),
    ]
    waiting = gateway_factory(models, {"default": {"queue_wait": 5.0}})
    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(lambda _: chat(waiting)[0], range(4))) == [200] * 4
    failing = gateway_factory(models, {"default": {"queue_wait": 0}})
    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(lambda _: chat(failing)[0], range(4)))
    assert 503 in statuses and 200 in statuses


def test_per_request_fallbacks_and_retries(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.status = 500
    gw = gateway_factory(
        [deployment("big", ups[0]), deployment("small", ups[1]), deployment("other", ups[2])],
        {"aliases": {"big": {"fallbacks": ["small"], "retries": 0}}},
    )

    def ask(**headers: str) -> tuple[int, Any]:
        status, _, body = gw.request_full(
            "POST", "/v1/chat/completions", {"model": "big", "messages": MSG}, headers=headers
        )
        return status, body

    assert ask(**{"x-bastion-fallbacks": "other"})[0] == 200
    assert len(ups[2].requests) == 1 and len(ups[1].requests) == 0
    assert ask(**{"x-bastion-fallbacks": ""})[0] == 502, "fallbacks switched off"
    status, body = ask(**{"x-bastion-fallbacks": "nope"})
    assert status == 404 and body["error"]["code"] == "model_not_found"
    before = len(ups[0].requests)
    assert ask(**{"x-bastion-fallbacks": "", "x-bastion-retries": "2"})[0] == 502
    assert len(ups[0].requests) - before == 3, "the single deployment, retried twice"
    status, body = ask(**{"x-bastion-retries": "many"})
    assert status == 400 and body["error"]["param"] == "x-bastion-retries"


def _queued(gw: RunningGateway) -> int:
    return int(deployments(gw)["a"]["queued"])


def test_busy_deployment_serves_waiters_by_priority_then_fair_share(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    up = ups[0]
    up.behaviour.delay_ms = 100
    gw = gateway_factory([deployment("a", up, alias="chat", max_concurrency=1)], {"default": {"queue_wait": 30}})

    def ask(label: str, **headers: str) -> int:
        body = {"model": "chat", "messages": [{"role": "user", "content": label}]}
        return gw.request_full("POST", "/v1/chat/completions", body, headers=headers)[0]

    plan: list[tuple[str, dict[str, str]]] = [
        *((f"noisy-{i}", {"x-bastion-tenant": "noisy"}) for i in range(4)),
        *((f"quiet-{i}", {"x-bastion-tenant": "quiet"}) for i in range(2)),
        ("urgent", {"x-bastion-tenant": "noisy", "x-bastion-priority": "0"}),
    ]
    with ThreadPoolExecutor(len(plan) + 1) as pool:
        futures = [pool.submit(ask, "blocker")]
        up.wait_for_requests(1)
        for i, (label, headers) in enumerate(plan):
            futures.append(pool.submit(ask, label, **headers))
            deadline = time.monotonic() + 5
            while _queued(gw) < i + 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert _queued(gw) == i + 1, "the request waits in the alias's queue"
        assert [f.result() for f in futures] == [200] * (len(plan) + 1)
    order = [r["json"]["messages"][0]["content"] for r in up.requests]
    assert order == [
        "blocker", "urgent",
        "noisy-0", "quiet-0", "noisy-1", "quiet-1", "noisy-2", "noisy-3",
    ], "priority first; the quiet tenant is not stuck behind the noisy one's burst"
    assert _queued(gw) == 0


def test_full_queue_and_tenant_cap_refuse_with_retry_after(gateway_factory: Any, ups: list[FakeUpstream]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    up = ups[0]
    up.behaviour.delay_ms = 400
    settings = load_settings(env={}, overrides={
        "server.port": 0,
        "models": [deployment("a", up, alias="chat", max_concurrency=1)],
        "routing": {"default": {"queue_wait": 30, "queue_size": 2}},
        "admission": {"tenants": {"capped": {"max_queued": 1}}},
    })
    gw = RunningGateway(settings).start()
    try:
        def ask(tenant: str) -> tuple[int, dict[str, str], Any]:
            body = {"model": "chat", "messages": MSG}
            return gw.request_full("POST", "/v1/chat/completions", body, headers={"x-bastion-tenant": tenant})

        with ThreadPoolExecutor(4) as pool:
            running = [pool.submit(ask, "x")]
            up.wait_for_requests(1)
            running.append(pool.submit(ask, "capped"))
            deadline = time.monotonic() + 5
            while _queued(gw) < 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            status, headers, body = ask("capped")
            assert status == 429 and body["error"]["type"] == "rate_limit_error"
            assert int(headers["retry-after"]) >= 1
            running.append(pool.submit(ask, "y"))
            while _queued(gw) < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            status, headers, body = ask("z")
            assert status == 503 and body["error"]["code"] == "overloaded"
            assert "busy" in body["error"]["message"] and int(headers["retry-after"]) >= 1
            assert [f.result()[0] for f in running] == [200, 200, 200], "those that queued are served"
        status, _, body = gw.request_full("POST", "/v1/chat/completions", {"model": "chat", "messages": MSG}, headers={"x-bastion-priority": "urgent"})
        assert status == 400 and body["error"]["param"] == "x-bastion-priority"
    finally:
        gw.stop()
