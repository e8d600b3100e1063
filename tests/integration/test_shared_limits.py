"""Rate limits shared through Redis: the sliding window, leases, token reservations settled
to their usage, three gateway processes holding one key to its limit, and Redis going away
mid-test (fail open, fail closed, shared again when it is back)."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bastion.config_access import LimitSettings
from bastion.errors import Overloaded, RateLimited
from bastion.governance.keys import Principal
from bastion.governance.outage import redacted
from bastion.governance.shared_limits import SharedLimiter, window_key
from tests.fakes.upstream import DEFAULT_CONTENT, FakeUpstream, _count_tokens
from tests.gateway_harness import MASTER_KEY, RunningGateway, traced_gateway
from tests.integration.test_lifecycle import (
    bastion_processes,
    free_port,
)
from tests.redis_helpers import REDIS, ThrowawayRedis, backend_errors, shared_redis_client
from tests.store_helpers import skip_or_fail

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture()
def shared_redis() -> Iterator[redis.Redis]:
    yield from shared_redis_client()


@pytest.fixture()
def key_id(shared_redis: redis.Redis) -> Iterator[str]:
    """A key id of this test's own; its windows are deleted afterwards."""
    ident = f"test_{uuid.uuid4().hex}"
    yield ident
    shared_redis.delete(window_key(ident, "rpm"), window_key(ident, "tpm"))


def principal(key_id: str, rpm: int | None = None, tpm: int | None = None,
              parallel: int | None = None) -> Principal:
    return Principal(key_id=key_id, role="user", limits=(rpm, tpm, parallel))


def limiter(url: str = REDIS, **settings: Any) -> SharedLimiter:
    return SharedLimiter(LimitSettings(redis_url=url, **{"window_seconds": 2, **settings}))


# ------------------------------------------------------------------ the limiter itself
def test_leases_of_two_processes_admit_exactly_the_limit(key_id: str) -> None:
    async def run() -> tuple[int, list[RateLimited], list[dict[bytes, bytes]]]:
        a, b = limiter(lease_fraction=0.1), limiter(lease_fraction=0.1)  # leases of 2
        k = principal(key_id, rpm=20)
        admitted, refused, headers = 0, [], []
        for _ in range(20):
            for lim in (a, b):
                try:
                    ticket = await lim.admit(k, BODY, 40)
                except RateLimited as exc:
                    refused.append(exc)
                else:
                    assert ticket is not None
                    admitted += 1
                    headers.append(dict(ticket.headers))
        await a.close()
        await b.close()
        return admitted, refused, headers

    admitted, refused, headers = asyncio.run(run())
    assert admitted == 20 and len(refused) == 20
    assert all(r.retry_after is not None and 0 < r.retry_after <= 3 for r in refused)
    assert "requests per minute (RPM)" in refused[0].message
    assert headers[0][b"x-ratelimit-limit-requests"] == b"20"
    assert headers[-1][b"x-ratelimit-remaining-requests"] == b"0"


def test_the_window_slides_and_unused_lease_slots_are_handed_back(
        key_id: str, shared_redis: redis.Redis) -> None:
    async def run() -> None:
        a, b = limiter(lease_fraction=0.1, lease_seconds=0.2), limiter(lease_fraction=0.1)
        k = principal(key_id, rpm=20)
        assert await a.admit(k, BODY, 40) is not None  # a holds a lease of 2, uses 1
        await asyncio.sleep(0.3)  # a's lease lapsed with a slot left
        assert await a.admit(k, BODY, 40) is not None  # a new lease; the old slot back
        await asyncio.sleep(0.1)
        for _ in range(17):  # 20 less a's 1 + 2
            assert await b.admit(k, BODY, 40) is not None, "the handed-back slot is usable"
        with pytest.raises(RateLimited):
            await b.admit(k, BODY, 40)
        await asyncio.sleep(3.3)  # the window (2 s) plus the lease time: empty again
        assert await b.admit(k, BODY, 40) is not None
        await a.close()
        await b.close()

    asyncio.run(run())
    assert shared_redis.pttl(window_key(key_id, "rpm")) > 0, "the window expires by itself"


def test_tokens_are_reserved_across_processes_then_settled_to_their_usage(key_id: str) -> None:
    async def run() -> None:
        a, b = limiter(), limiter()
        k = principal(key_id, tpm=1000)
        big = {**BODY, "max_tokens": 500}
        ticket = await a.admit(k, big, 400)  # 100 + 500 reserved
        assert ticket is not None and ticket.tokens == 600
        assert dict(ticket.headers)[b"x-ratelimit-remaining-tokens"] == b"400"
        with pytest.raises(RateLimited, match="tokens per minute"):
            await b.admit(k, big, 400)
        a.settle(ticket, {"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50})
        a.settle(ticket, {"total_tokens": 1})  # twice: settled once
        await asyncio.gather(*a._tasks)
        again = await b.admit(k, big, 400)
        assert again is not None, "550 of the 600 came back"
        b.settle(again, None)  # usage unknown: the reservation stands
        with pytest.raises(RateLimited):
            await a.admit(k, {**BODY, "max_tokens": 300}, 400)
        with pytest.raises(RateLimited) as info:
            await a.admit(k, {**BODY, "max_tokens": 950}, 400)
        assert info.value.code == "tokens_exceed_limit"
        await a.close()
        await b.close()

    asyncio.run(run())


def test_a_token_lease_serves_many_requests_and_gives_back_what_was_unused(
        key_id: str, shared_redis: redis.Redis) -> None:
    """Requests reserve from their process's token lease (one grant, not one Redis call
    each); when nothing is reserved on it any more its member becomes what was used, so
    the other processes get the rest at once."""
    window = window_key(key_id, "tpm")

    def members() -> list[bytes]:
        return shared_redis.zrange(window, 0, -1)  # type: ignore[return-value]

    async def run() -> None:
        a, b = limiter(lease_fraction=0.1), limiter(lease_fraction=0.1)
        k = principal(key_id, tpm=10_000)
        small = {**BODY, "max_tokens": 90}  # 10 + 90 reserved
        scopes = a.resolve(k, None, None, "m")
        assert scopes is not None and a.admit_leased(scopes, small, 40) is None, "no lease"
        tickets: list[Any] = [await a.admit(k, small, 40)]
        tickets += [a.admit_leased(scopes, small, 40) for _ in range(9)]  # no await
        assert all(t is not None and t.tokens == 100 for t in tickets)
        assert [m.rsplit(b":", 1)[1] for m in members()] == [b"1000"], "one lease of 1,000"
        assert dict(tickets[-1].headers)[b"x-ratelimit-remaining-tokens"] == b"9000"
        with pytest.raises(RateLimited):  # what a's lease holds is not b's
            await b.admit(k, {**BODY, "max_tokens": 9_500}, 40)
        for ticket in tickets[:-1]:
            a.settle(ticket, {"total_tokens": 30})
        await asyncio.gather(*a._tasks)
        assert len(members()) == 1 and members()[0].endswith(b":1000"), "one still reserved"
        a.settle(tickets[-1], None)  # usage unknown: its 100 stay counted
        await asyncio.gather(*a._tasks)
        assert [m.rsplit(b":", 1)[1] for m in members()] == [b"370"]  # 9 x 30 + 100
        assert await b.admit(k, {**BODY, "max_tokens": 9_500}, 40) is not None
        await a.close()
        await b.close()

    asyncio.run(run())


def test_requests_in_flight_stay_per_process(key_id: str) -> None:
    async def run() -> None:
        a, b = limiter(), limiter()
        k = principal(key_id, rpm=100, parallel=1)
        first = await a.admit(k, BODY, 40)
        assert first is not None
        with pytest.raises(RateLimited, match="in flight"):
            await a.admit(k, BODY, 40)
        assert await b.admit(k, BODY, 40) is not None, "another process counts its own"
        a.settle(first, None)
        assert await a.admit(k, BODY, 40) is not None
        await a.close()
        await b.close()

    asyncio.run(run())


def test_unreachable_redis_fails_open_to_local_limits_or_closed() -> None:
    dead = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"
    errors: list[str] = []

    async def run() -> None:
        open_ = SharedLimiter(LimitSettings(redis_url=dead, timeout=0.2), errors.append)
        k = principal("key_open", rpm=2)
        assert [await open_.admit(k, BODY, 40) is not None for _ in range(2)] == [True, True]
        with pytest.raises(RateLimited):  # this process's own limit still applies
            await open_.admit(k, BODY, 40)
        closed = SharedLimiter(LimitSettings(redis_url=dead, fail="closed"), errors.append)
        with pytest.raises(Overloaded) as info:
            await closed.admit(k, BODY, 40)
        assert info.value.code == "limits_unavailable" and info.value.status == 503
        assert info.value.retry_after == 1
        unlimited = Principal(key_id="key_x", role="user", limits=(None, None, 3))
        assert await closed.admit(unlimited, BODY, 40) is not None, "parallel: no Redis"
        await open_.close()
        await closed.close()

    asyncio.run(run())
    assert errors == ["open"] * 3 + ["closed"]
    assert "s3cret" not in redacted(dead) and "***" in redacted(dead)


@pytest.mark.parametrize("url", ["", " ", "http://127.0.0.1:6379", "redis://:@127.0.0.1:6379",
                                 "redis://: @h:1", "redis://:changeme@h:1"])
def test_bad_redis_urls_are_refused_at_load(url: str) -> None:
    with pytest.raises(ValueError, match=r"limits\.redis_url"):
        LimitSettings(redis_url=url)


# ------------------------------------------------------------------ three processes
def hammer(ports: list[int], token: str, seconds: float, body: dict[str, Any],
           threads: int = 6) -> list[tuple[int, dict[str, str], Any]]:
    """Clients sending ``body`` to the ports in turn for ``seconds``: each answer."""
    results: list[tuple[int, dict[str, str], Any]] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds
    raw = json.dumps(body).encode()

    def client(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < end:
            conn.request("POST", "/v1/chat/completions", raw, {
                "authorization": f"Bearer {token}", "content-type": "application/json"})
            resp = conn.getresponse()
            answer = (resp.status, {k.lower(): v for k, v in resp.getheaders()},
                      json.loads(resp.read()))
            with lock:
                results.append(answer)
        conn.close()

    workers = [threading.Thread(target=client, args=(ports[i % len(ports)],))
               for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def call(port: int, method: str, path: str, body: Any = None, key: str = MASTER_KEY
         ) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None,
                     {"authorization": f"Bearer {key}", "content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


WINDOW = 10.0  # limits.window_seconds in these tests (60 in service)


@pytest.fixture(scope="module")
def three_gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """Three `bastion serve` processes sharing a home (SQLite: the keys) and Redis."""
    client = redis.Redis.from_url(REDIS, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis is not reachable at {REDIS}: {exc}")
    tmp = tmp_path_factory.mktemp("shared-limits")
    with FakeUpstream().start() as up:
        config = {"server": {"master_key": MASTER_KEY}, "tracing": {"enabled": False},
                  "limits": {"redis_url": REDIS, "window_seconds": WINDOW},
                  "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}]}
        try:
            with bastion_processes(tmp, config, 3) as ports:
                yield ports
        finally:
            client.close()


def shared_key(ports: list[int], limits: dict[str, int]) -> str:
    """A new key with ``limits``, made on one gateway, once the others know it."""
    status, made = call(ports[0], "POST", "/api/keys", {"limits": limits})
    assert status == 201, made
    deadline = time.monotonic() + 10
    while not all(call(p, "GET", "/v1/models", key=made["key"])[0] == 200 for p in ports):
        assert time.monotonic() < deadline, "the key reached every gateway"
        time.sleep(0.1)
    return str(made["key"])


def check_refusals(results: list[tuple[int, dict[str, str], Any]], kind: str) -> None:
    statuses = {status for status, _, _ in results}
    assert statuses <= {200, 429}, statuses
    for status, headers, body in results:
        assert f"x-ratelimit-limit-{kind}" in headers, headers
        if status == 429:
            assert body["error"]["code"] == "rate_limit_exceeded", body
            assert int(headers["retry-after"]) >= 1
            assert headers[f"x-ratelimit-remaining-{kind}"] == "0", headers


def test_three_processes_hold_a_key_to_600_requests_per_window(three_gateways: list[int]
                                                               ) -> None:
    token = shared_key(three_gateways, {"rpm": 600})
    # the whole load inside the key's first window: what Redis granted bounds it exactly
    results = hammer(three_gateways, token, WINDOW - 1.5, BODY | {"model": "chat"})
    accepted = sum(1 for status, _, _ in results if status == 200)
    print(f"RPM: accepted {accepted} of limit 600 ({len(results)} requests)")
    check_refusals(results, "requests")
    assert len(results) > 700, "the load went over the limit"
    assert 594 <= accepted <= 600, accepted  # within max(1 request, 1 %)


def test_three_processes_hold_a_key_to_its_tokens_per_window(three_gateways: list[int]
                                                             ) -> None:
    tpm = 60000
    token = shared_key(three_gateways, {"tpm": tpm})
    body = {"model": "chat", "messages": [{"role": "user", "content": "abc " * 300}],
            "max_tokens": _count_tokens(DEFAULT_CONTENT)}  # reserved a little over used
    results = hammer(three_gateways, token, WINDOW - 1.5, body)
    used = sum(b["usage"]["total_tokens"] for status, _, b in results if status == 200)
    print(f"TPM: accepted {used} tokens of limit {tpm} ({len(results)} requests)")
    check_refusals(results, "tokens")
    assert tpm * 0.99 <= used <= tpm, used


# ------------------------------------------------------------------ Redis goes away
def ask(gw: RunningGateway, token: str) -> tuple[int, dict[str, str], Any]:
    return gw.request_full("POST", "/v1/chat/completions", {
        "model": "chat", "messages": [{"role": "user", "content": "hi"}]}, key=token)


@pytest.mark.parametrize("fail", ["open", "closed"])
def test_redis_stopped_mid_test_then_back(tmp_path: Path, fail: str) -> None:
    server = ThrowawayRedis().start()
    try:
        with FakeUpstream().start() as up:
            gw = traced_gateway(up, tmp_path, **{
                "server.master_key": MASTER_KEY, "tracing": {"enabled": False},
                "limits": {"redis_url": server.url, "fail": fail, "timeout": 0.2}})
            try:
                status, made = gw.request("POST", "/api/keys", {"limits": {"rpm": 5}})
                assert status == 201, made
                token, ident = made["key"], made["id"]
                assert [ask(gw, token)[0] for _ in range(2)] == [200, 200]
                assert server.has_window(ident), "limited through Redis"

                server.stop()
                answers = [ask(gw, token) for _ in range(8)]
                statuses = [status for status, _, _ in answers]
                if fail == "open":  # this process's own limit (5 a minute) decides
                    assert statuses == [200] * 5 + [429] * 3, statuses
                else:
                    assert statuses == [503] * 8, statuses
                    body = answers[0][2]
                    assert body["error"]["code"] == "limits_unavailable", body
                    assert answers[0][1]["retry-after"] == "1"
                assert backend_errors(gw, "limit", fail) >= 8

                server.start()  # the same port, empty: shared limiting resumes by itself
                deadline = time.monotonic() + 15
                while not server.has_window(ident):
                    assert time.monotonic() < deadline, "limits went back to Redis"
                    status = ask(gw, token)[0]
                    assert status in (200, 429, 503), status
                    time.sleep(0.2)
                assert ask(gw, token)[0] == 200
                assert gw.error is None
            finally:
                gw.stop()
    finally:
        server.stop()
