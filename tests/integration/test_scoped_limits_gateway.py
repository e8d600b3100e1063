"""Rate limits per team, user and model alias: through a real gateway (a team's RPM over
two of its keys, a user's limit on the master key, the tightest scope's headers, a reload
that keeps what was used, a bad limit refused at reload and at start), and shared through
Redis (two gateway processes holding a team to its limit; a request one scope refuses
gives back what the others granted; Redis down: the same scopes in memory)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from bastion.config import Settings, load_settings
from bastion.config_access import LimitSettings
from bastion.errors import Overloaded, RateLimited
from bastion.governance.keys import MASTER, Principal
from bastion.governance.shared_limits import SharedLimiter, window_key
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway
from tests.integration.test_lifecycle import (
    bastion_processes,
    free_port,
)
from tests.integration.test_shared_limits import call
from tests.redis_helpers import shared_redis_client

REDIS = "redis://127.0.0.1:6379/0"
BODY: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def chat(gw: RunningGateway, key: str = MASTER_KEY, **extra: Any
         ) -> tuple[int, dict[str, str], Any]:
    return gw.request_full("POST", "/v1/chat/completions", {**BODY, **extra}, key=key)


def make_key(gw: RunningGateway, **body: Any) -> str:
    status, made = gw.request("POST", "/api/keys", body)
    assert status == 201, made
    return str(made["key"])


# ------------------------------------------------------------------ one gateway, in memory
class Configured:
    """A gateway whose configuration file the test rewrites and reloads."""

    def __init__(self, path: Path, up: FakeUpstream, limits: dict[str, Any]) -> None:
        self.path, self.up = path, up
        self.write(limits)
        self.gw = RunningGateway(self.load(), loader=self.load).start()

    def load(self) -> Settings:
        return load_settings(self.path, env={})

    def write(self, limits: dict[str, Any]) -> None:
        self.path.write_text(yaml.safe_dump({
            "home": str(self.path.parent / "home"),
            "server": {"port": 0, "master_key": MASTER_KEY}, "tracing": {"enabled": False},
            "limits": limits,
            "models": [{"name": "chat", "backend": "openai", "base_url": self.up.base_url}]}))

    def reload(self, limits: dict[str, Any]) -> tuple[int, Any]:
        self.write(limits)
        return self.gw.request("POST", "/api/config/reload")


def test_team_user_and_model_limits_through_a_gateway(tmp_path: Path) -> None:
    limits = {"teams": {"alpha": {"rpm": 3}}, "users": {"*": {"rpm": 2}},
              "models": {"chat": {"rpm": 8}}}
    with FakeUpstream().start() as up:
        live = Configured(tmp_path / "bastion.yaml", up, limits)
        gw = live.gw
        try:
            a1, a2 = make_key(gw, team="alpha"), make_key(gw, team="alpha")
            b1 = make_key(gw, team="beta", limits={"rpm": 100})
            remaining = []
            for token in (a1, a2, a1):  # the team's 3 a minute, over both keys
                status, headers, body = chat(gw, token)
                assert status == 200, body
                assert headers["x-ratelimit-limit-requests"] == "3", "the team's: tightest"
                remaining.append(headers["x-ratelimit-remaining-requests"])
            assert remaining == ["2", "1", "0"]
            status, headers, body = chat(gw, a2)
            assert status == 429, body
            assert body["error"]["code"] == "rate_limit_exceeded"
            assert body["error"]["message"].startswith(
                "Rate limit reached for team 'alpha' on requests per minute (RPM): limit 3."), body
            assert int(headers["retry-after"]) >= 1
            assert headers["x-ratelimit-limit-requests"] == "3"
            assert headers["x-ratelimit-remaining-requests"] == "0"

            status, headers, _ = chat(gw, b1)  # beta has no team limit; its key and the model
            assert status == 200
            assert headers["x-ratelimit-limit-requests"] == "8", "the model's 8 is tightest"
            assert headers["x-ratelimit-remaining-requests"] == "4", \
                "the refused request took nothing from the model"

            # the master key: no key or team limits, but the user's and the model's apply
            assert [chat(gw, user="u1")[0] for _ in range(2)] == [200, 200]
            status, _, body = chat(gw, user="u1")
            assert status == 429 and "for user 'u1' on requests" in body["error"]["message"]
            assert chat(gw, user="u2")[0] == 200

            status, body = live.reload({**limits, "teams": {"alpha": {"rpm": 4}}})
            assert status == 200 and body["applied"], body
            assert chat(gw, a1)[0] == 200, "4 a minute now: 3 were used, one is left"
            status, _, body = chat(gw, a2)
            assert status == 429 and "team 'alpha'" in body["error"]["message"]

            status, body = live.reload({"teams": {"x": {}}})
            assert status == 400 and body["error"]["code"] == "invalid_config", body
            assert "limits.teams.x" in body["error"]["message"]
            assert "at least one of rpm, tpm, max_parallel" in body["error"]["message"]
            status, _, body = chat(gw, a2)  # the old limits still hold
            assert status == 429 and "team 'alpha'" in body["error"]["message"]
            assert gw.error is None
        finally:
            gw.stop()


def test_a_team_limit_on_requests_in_flight(tmp_path: Path) -> None:
    with FakeUpstream().start() as up:
        up.behaviour.delay_ms = 400
        live = Configured(tmp_path / "bastion.yaml", up, {"teams": {"*": {"max_parallel": 1}}})
        gw = live.gw
        try:
            first, second = make_key(gw, team="t"), make_key(gw, team="t")
            other = make_key(gw, team="u")
            results: list[int] = []
            slow = threading.Thread(target=lambda: results.append(chat(gw, first)[0]))
            slow.start()
            time.sleep(0.15)
            status, _, body = chat(gw, second)
            assert status == 429, body
            assert body["error"]["message"].startswith("Team 't' already has 1 requests in "
                                                       "flight"), body
            assert chat(gw, other)[0] == 200, "each team its own ('*')"
            slow.join()
            assert results == [200]
            assert chat(gw, second)[0] == 200, "freed when the first finished"
        finally:
            gw.stop()


def test_a_bad_scope_limit_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text(yaml.safe_dump({"limits": {"teams": {"x": {}}}, "models": [
        {"name": "chat", "backend": "openai", "base_url": "http://127.0.0.1:9"}]}))
    done = subprocess.run([sys.executable, "-m", "bastion", "serve", "--config", str(path),
                           "--port", str(free_port())], capture_output=True, timeout=60,
                          env={**{k: v for k, v in os.environ.items()
                                  if not k.startswith("BASTION_")},
                               "BASTION_HOME": str(tmp_path / "home")})
    assert done.returncode == 2, done
    err = done.stderr.decode()
    assert "limits.teams.x" in err and "at least one of rpm, tpm, max_parallel" in err, err


# ------------------------------------------------------------------ through Redis
@pytest.fixture()
def shared_redis() -> Iterator[redis.Redis]:
    yield from shared_redis_client()


@pytest.fixture()
def names(shared_redis: redis.Redis) -> Iterator[tuple[str, str]]:
    """A key id and a team name of this test's own; their windows are deleted afterwards."""
    ident = uuid.uuid4().hex
    key_id, team = f"test_{ident}", f"team-{ident}"
    yield key_id, team
    shared_redis.delete(*(window_key(scope, kind) for scope in (key_id, f"team:{team}")
                          for kind in ("rpm", "tpm")))


def counted(client: redis.Redis, window: str) -> int:
    """What a window holds: the sum of its members' counts."""
    members: list[bytes] = client.zrange(window, 0, -1)  # type: ignore[assignment]
    return sum(int(member.rsplit(b":", 1)[1]) for member in members)


def test_two_gateway_processes_hold_a_team_to_its_limit(
        tmp_path: Path, shared_redis: redis.Redis, names: tuple[str, str]) -> None:
    _, team = names
    with FakeUpstream().start() as up:
        config = {"server": {"master_key": MASTER_KEY}, "tracing": {"enabled": False},
                  "limits": {"redis_url": REDIS, "window_seconds": 10,
                             "teams": {team: {"rpm": 20}}},
                  "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}]}
        with bastion_processes(tmp_path, config, 2) as ports:
            tokens = []
            for port in ports:  # one key of the team made on each gateway
                status, made = call(port, "POST", "/api/keys", {"team": team})
                assert status == 201, made
                tokens.append(made["key"])
            deadline = time.monotonic() + 10
            while not all(call(p, "GET", "/v1/models", key=t)[0] == 200
                          for p in ports for t in tokens):
                assert time.monotonic() < deadline, "both keys reached both gateways"
                time.sleep(0.1)
            answers = []
            for i in range(30):  # key 0 to gateway 0, key 1 to gateway 1, in turn
                conn_port, token = ports[i % 2], tokens[i % 2]
                answers.append(call_full(conn_port, token))
    statuses = [status for status, _, _ in answers]
    assert statuses.count(200) == 20 and statuses[:20] == [200] * 20, statuses
    assert all(h["x-ratelimit-limit-requests"] == "20" for _, h, _ in answers)
    assert [h["x-ratelimit-remaining-requests"] for _, h, _ in answers[:20]] == [
        str(19 - i) for i in range(20)], "one count over both processes"
    for status, headers, body in answers[20:]:
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert body["error"]["message"].startswith(
            f"Rate limit reached for team '{team}' on requests per minute (RPM)"), body
    assert counted(shared_redis, window_key(f"team:{team}", "rpm")) == 20


def call_full(port: int, token: str) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(BODY), {
            "authorization": f"Bearer {token}", "content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(resp.read())
    finally:
        conn.close()


def settings(url: str = REDIS, **extra: Any) -> LimitSettings:
    return LimitSettings(redis_url=url, **{"window_seconds": 2, **extra})


def test_a_refused_request_gives_back_the_other_scopes_grants_in_redis(
        shared_redis: redis.Redis, names: tuple[str, str]) -> None:
    key_id, team = names
    big = {**BODY, "max_tokens": 50}  # 10 + 50 tokens

    async def tokens() -> None:
        # leases no larger than a request's reservation: each request is one grant
        lim = SharedLimiter(settings(lease_fraction=0.001, teams={team: {"tpm": 100}}))
        k = Principal(key_id=key_id, role="user", team=team, limits=(None, 10_000, None))
        first = await lim.admit(k, big, 40, team)
        assert first is not None and first.tokens == 60
        with pytest.raises(RateLimited) as info:
            await lim.admit(k, big, 40, team)
        assert info.value.message.startswith(f"Rate limit reached for team '{team}' on "
                                             "tokens per minute (TPM)")
        await asyncio.gather(*lim._tasks)
        assert counted(shared_redis, window_key(key_id, "tpm")) == 60, "the key's 60 back"
        lim.settle(first, {"total_tokens": 10})
        await asyncio.gather(*lim._tasks)
        assert counted(shared_redis, window_key(key_id, "tpm")) == 10
        assert counted(shared_redis, window_key(f"team:{team}", "tpm")) == 10
        await lim.close()

    async def requests() -> None:
        lim = SharedLimiter(settings(lease_fraction=0.1, teams={team: {"rpm": 1}}))
        k = Principal(key_id=key_id, role="user", team=team, limits=(2, None, None))
        assert await lim.admit(k, BODY, 40, team) is not None  # a lease of 1 on each
        with pytest.raises(RateLimited, match=f"team '{team}'"):
            await lim.admit(k, BODY, 40, team)  # the key's second lease: its slot kept
        assert counted(shared_redis, window_key(key_id, "rpm")) == 2
        assert lim.serves(settings(lease_fraction=0.1)), "kept when only scopes change"
        assert not lim.serves(settings(lease_fraction=0.1, timeout=1))
        lim.configure(settings(lease_fraction=0.1))  # no team limit now
        assert await lim.admit(k, BODY, 40, team) is not None, "the given-back slot"
        with pytest.raises(RateLimited, match="for this key"):
            await lim.admit(k, BODY, 40, team)
        assert counted(shared_redis, window_key(key_id, "rpm")) == 2
        await lim.close()

    asyncio.run(tokens())
    shared_redis.delete(window_key(key_id, "tpm"), window_key(f"team:{team}", "tpm"))
    asyncio.run(requests())


def test_scopes_without_redis_fail_open_to_memory_or_closed() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    errors: list[str] = []

    async def run() -> None:
        lim = SharedLimiter(settings(dead, timeout=0.2, teams={"t": {"rpm": 2}},
                                     models={"chat": {"max_parallel": 1}}), errors.append)
        a, b = (Principal(key_id=f"key_{n}", role="user", team="t") for n in "ab")
        first = await lim.admit(a, BODY, 40, "t")
        assert first is not None and dict(first.headers)[b"x-ratelimit-limit-requests"] == b"2"
        with pytest.raises(RateLimited, match="Model 'chat' already has 1 requests"):
            await lim.admit(MASTER, BODY, 40)  # in flight: counted here, Redis or not
        lim.settle(first, None)
        second = await lim.admit(b, BODY, 40, "t")
        assert second is not None
        lim.settle(second, None)
        with pytest.raises(RateLimited, match="for team 't' on requests"):
            await lim.admit(a, BODY, 40, "t")  # the team's 2, held in memory meanwhile
        closed = SharedLimiter(settings(dead, fail="closed", teams={
            "t": {"rpm": 2, "max_parallel": 1}}), errors.append)
        with pytest.raises(Overloaded) as info:
            await closed.admit(a, BODY, 40, "t")
        assert info.value.code == "limits_unavailable"
        assert closed._states["team:t"].inflight == 0, "its place is given back"
        await lim.close()
        await closed.close()

    asyncio.run(run())
    assert errors == ["open"] * 3 + ["closed"]
