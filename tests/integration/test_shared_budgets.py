"""Budgets shared through Redis: three gateway processes (one Postgres store, one Redis)
hold a key to its budget under 50 concurrent slow requests spread over them, the shared
spend being the sum of the traces' costs; and Redis stopped mid-test (fail closed: 503
budgets_unavailable; fail open: served) then back empty (reseeded from the store)."""

from __future__ import annotations

import http.client
import json
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from bastion.cli import main
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, traced_gateway
from tests.integration.test_lifecycle import (
    bastion_processes,
)
from tests.redis_helpers import ThrowawayRedis, backend_errors
from tests.store_helpers import fresh_database

PRICING = {"input": 1000.0, "output": 2000.0}  # per 1M tokens: cents a request
MAX_TOKENS = 20
BODY = {"model": "chat", "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": "tell me a story"}]}
# the worst case of one request, as the gateway reserves it (the body's bytes / 4 in)
RESERVATION = (len(json.dumps(BODY, separators=(",", ":"))) / 4 * PRICING["input"]
               + MAX_TOKENS * PRICING["output"]) / 1e6


def call(port: int, method: str, path: str, body: Any = None, key: str = MASTER_KEY,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None,
                     {"authorization": f"Bearer {key}", "content-type": "application/json",
                      **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(raw)
    finally:
        conn.close()


def budget_of(port: int, key_id: str) -> dict[str, Any]:
    status, _, listed = call(port, "GET", "/api/budgets?scope=key")
    assert status == 200, listed
    (found,) = [b for b in listed["data"] if b["name"] == key_id]
    return dict(found)


def traces_of(port: int, key_id: str, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The key's chat traces, once there are ``n`` of them (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = call(port, "GET", f"/api/traces?limit=500&key_id={key_id}")
        assert status == 200, body
        chats = [t for t in body["data"] if t["endpoint"] == "/v1/chat/completions"]
        if len(chats) >= n or time.monotonic() > deadline:
            return chats
        time.sleep(0.1)


@pytest.fixture(scope="module")
def three_gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """Three `bastion serve` processes, each with a home of its own, sharing a Postgres
    store (keys and traces) and a throwaway Redis (the limits', which budgets then use)."""
    tmp = tmp_path_factory.mktemp("shared-budgets")
    server = ThrowawayRedis().start()
    try:
        with fresh_database("postgres", tmp) as url, FakeUpstream().start() as up:
            config = {
                "server": {"master_key": MASTER_KEY},
                "store": {"url": url, "encryption_key": secrets.token_hex(24)},
                "tracing": {"flush_interval": 0.05},
                "limits": {"redis_url": server.url},  # budgets.redis_url unset: this one
                "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url,
                            "pricing": PRICING}]}
            with bastion_processes(tmp, config, 3, own_homes=True) as ports:
                yield ports
    finally:
        server.stop()


def test_three_processes_hold_a_key_to_its_budget(three_gateways: list[int]) -> None:
    ports = three_gateways
    limit = 0.3
    status, _, key = call(ports[0], "POST", "/api/keys",
                          {"name": "shared-budget", "budget": {"limit": limit,
                                                               "period": "daily"}})
    assert status == 201, key
    deadline = time.monotonic() + 15
    while not all(call(p, "GET", "/v1/models", key=key["key"])[0] == 200 for p in ports):
        assert time.monotonic() < deadline, "the key reached every gateway"
        time.sleep(0.1)

    def ask(i: int) -> tuple[int, dict[str, str], Any]:
        return call(ports[i % 3], "POST", "/v1/chat/completions", BODY, key["key"],
                    {"x-fake-delay-ms": "300"})

    answered = refused = 0
    per_port = [0, 0, 0]
    with ThreadPoolExecutor(50) as pool:
        for _ in range(40):  # rounds of 50 slow requests at once, until all are refused
            results = list(pool.map(ask, range(50)))
            ok = 0
            for i, (status, _, body) in enumerate(results):
                if status == 200:
                    ok += 1
                    per_port[i % 3] += 1
                else:
                    assert status == 402, body
                    assert body["error"]["code"] == "budget_exceeded", body
                    refused += 1
            answered += ok
            if ok == 0:
                break
    assert refused and answered > 3 and all(per_port), per_port
    print(f"shared budget {limit}: {answered} answered over {per_port}, {refused} refused, "
          f"reservation {RESERVATION:.4f}")

    deadline = time.monotonic() + 10
    while (seen := [budget_of(p, key["id"]) for p in ports])[0]["reserved"] > 0:
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
    assert all(b["shared"] for b in seen)
    assert len({b["spent"] for b in seen}) == 1, "every replica shows the shared spend"
    spent = seen[0]["spent"]
    assert limit <= spent <= limit + RESERVATION, (spent, RESERVATION)
    assert seen[0]["exceeded"] and seen[0]["reserved"] == 0.0

    traces = traces_of(ports[1], key["id"], answered + refused)
    assert len([t for t in traces if t["status"] == 200]) == answered
    assert sum(t["cost"] or 0.0 for t in traces) == pytest.approx(spent, abs=1e-9)

    out = CliRunner().invoke(main, ["budgets", "--url", f"http://127.0.0.1:{ports[2]}",
                                    "--key", MASTER_KEY, "list", "--json", "--scope", "key"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines() if line]
    (row,) = [r for r in rows if r["name"] == key["id"]]
    assert row["shared"] and row["spent"] == spent


def redis_spent(server: ThrowawayRedis, key_id: str) -> float | None:
    client = redis.Redis.from_url(server.url, socket_timeout=1)
    try:
        for name in client.scan_iter(match=f"bastion:budget:{{key:{key_id}}}:daily:*"):
            if not name.endswith((b":holds", b":done")):
                value = client.hget(name, "spent")
                return None if value is None else float(value)
        return None
    finally:
        client.close()


@pytest.mark.parametrize("fail", ["open", "closed"])
def test_redis_stopped_mid_test_then_back_empty(tmp_path: Path, fail: str) -> None:
    server = ThrowawayRedis().start()
    try:
        with FakeUpstream().start() as up:
            sections: dict[str, Any] = {
                "server.master_key": MASTER_KEY,
                "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url,
                            "pricing": PRICING}],
                "budgets": {"redis_url": server.url, "fail": fail, "timeout": 0.2}}
            gw = traced_gateway(up, tmp_path, **sections)
            try:
                status, made = gw.request("POST", "/api/keys", {"budget": {"limit": 5.0,
                                                                           "period": "daily"}})
                assert status == 201, made
                token, ident = made["key"], made["id"]

                def ask() -> tuple[int, dict[str, str], Any]:
                    return gw.request_full("POST", "/v1/chat/completions", BODY, key=token)

                assert [ask()[0] for _ in range(2)] == [200, 200]
                deadline = time.monotonic() + 5  # settled in the background
                while not redis_spent(server, ident):
                    assert time.monotonic() < deadline, "budgeted through Redis"
                    time.sleep(0.02)

                server.stop()
                answers = [ask() for _ in range(6)]
                statuses = [status for status, _, _ in answers]
                if fail == "open":  # this process's ledger decides
                    assert statuses == [200] * 6, answers
                else:
                    assert statuses == [503] * 6, statuses
                    error = answers[0][2]["error"]
                    assert error["code"] == "budgets_unavailable", error
                    assert answers[0][1]["retry-after"] == "1"
                assert backend_errors(gw, "budget", fail) >= 6
                status, listed = gw.request("GET", "/api/budgets")
                assert status == 200 and not listed["data"][0]["shared"], listed

                server.start()  # the same port, empty: reseeded from the store, shared again
                deadline = time.monotonic() + 15
                while redis_spent(server, ident) is None:
                    assert time.monotonic() < deadline, "budgets went back to Redis"
                    assert ask()[0] in (200, 503)
                    time.sleep(0.2)
                assert ask()[0] == 200
                deadline = time.monotonic() + 15
                while True:  # every request's cost in the shared spend, once
                    status, listed = gw.request("GET", f"/api/traces?limit=500&key_id={ident}")
                    costs = sum(t["cost"] or 0.0 for t in listed["data"])
                    shared = gw.request("GET", "/api/budgets")[1]["data"][0]
                    if shared["shared"] and shared["spent"] == pytest.approx(costs, abs=1e-9):
                        break
                    assert time.monotonic() < deadline, (shared["spent"], shared["shared"], costs, len(listed["data"]))
                    time.sleep(0.1)
                assert backend_errors(gw, "budget", "lost") == 0
                assert gw.error is None
            finally:
                gw.stop()
    finally:
        server.stop()
