"""Rate limits per team, user and model alias, in memory: which scopes apply to a request,
all-or-nothing admission, the tightest scope's headers, parallel places freed on every
scope, a reload that keeps what was used, and the configuration's checks."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.config import load_settings
from bastion.config_access import LimitSettings
from bastion.errors import ConfigError, RateLimited
from bastion.governance.keys import MASTER, Principal
from bastion.governance.limits import Limiter, Ticket

BODY: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def key(key_id: str, team: str | None = None, rpm: int | None = None, tpm: int | None = None,
        parallel: int | None = None) -> Principal:
    limits = (rpm, tpm, parallel) if rpm or tpm or parallel else None
    return Principal(key_id=key_id, role="user", team=team, limits=limits)


def limiter(**scopes: Any) -> Limiter:
    made = Limiter()
    made.configure(LimitSettings(**scopes))
    return made


def admitted(lim: Limiter, who: Principal, body: dict[str, Any] | None = None, size: int = 40,
             team: str | None = None, user: str | None = None, now: float = 0.0) -> Ticket:
    ticket = lim.admit(who, body or BODY, size, team if team is not None else who.team, user,
                       now=now)
    assert ticket is not None
    return ticket


def refused(lim: Limiter, who: Principal, body: dict[str, Any] | None = None, size: int = 40,
            team: str | None = None, user: str | None = None, now: float = 0.0
            ) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        lim.admit(who, body or BODY, size, team if team is not None else who.team, user,
                  now=now)
    return info.value


def test_a_team_limit_is_shared_by_the_teams_keys() -> None:
    lim = limiter(teams={"support": {"rpm": 3}})
    a, b = key("key_a", "support"), key("key_b", "support")
    admitted(lim, a)
    admitted(lim, b)
    admitted(lim, a)
    error = refused(lim, b)
    assert error.message.startswith("Rate limit reached for team 'support' on requests per "
                                    "minute (RPM): limit 3."), error.message
    assert error.retry_after == pytest.approx(20.0)
    assert (b"x-ratelimit-remaining-requests", b"0") in error.headers()
    assert lim.admit(key("key_c", "sales"), BODY, 40, "sales", None) is None, "not limited"
    assert admitted(lim, a, now=20.0) is not None, "refilled a third of a minute later"


def test_the_star_gives_each_team_or_user_its_own_bucket() -> None:
    lim = limiter(teams={"*": {"rpm": 1}, "big": {"rpm": 2}},
                  users={"*": {"rpm": 2}})
    admitted(lim, key("key_a", "t1"))
    assert "team 't1'" in refused(lim, key("key_b", "t1")).message
    admitted(lim, key("key_c", "t2"))  # t2 has a bucket of its own
    admitted(lim, key("key_d", "big"))
    admitted(lim, key("key_d", "big"))  # big's own entry, not the star
    user = key("key_e")  # no team: only the user's limit
    admitted(lim, user, user="alice")
    admitted(lim, user, user="alice")
    error = refused(lim, user, user="alice")
    assert "user 'alice'" in error.message and "RPM" in error.message
    admitted(lim, user, user="bob")
    assert lim.admit(key("key_f"), BODY, 40) is None, "no team, no user, no key limit"


def test_a_model_limit_counts_every_caller_the_master_key_too() -> None:
    lim = limiter(models={"chat": {"tpm": 1000}})
    first = admitted(lim, MASTER, {**BODY, "max_tokens": 500}, 400)  # 100 + 500
    assert first.tokens == 600
    error = refused(lim, key("key_a", "t"), {**BODY, "max_tokens": 500}, 400)
    assert "model 'chat'" in error.message and "tokens per minute" in error.message
    assert lim.admit(key("key_a"), {**BODY, "model": "other"}, 40) is None
    lim.settle(first, {"total_tokens": 50})
    assert admitted(lim, key("key_a"), {**BODY, "max_tokens": 500}, 400).tokens == 600
    too_big = refused(lim, MASTER, {**BODY, "max_tokens": 5000}, 400)
    assert too_big.code == "tokens_exceed_limit" and "model 'chat'" in too_big.message


def test_a_refusal_by_one_scope_takes_nothing_from_the_others() -> None:
    lim = limiter(teams={"t": {"rpm": 100, "tpm": 10_000}}, users={"*": {"rpm": 1}})
    k = key("key_a", "t", rpm=10, tpm=5000, parallel=5)
    admitted(lim, k, user="u")
    for _ in range(20):  # the user's limit refuses each: the key and team keep theirs
        assert "user 'u'" in refused(lim, k, user="u").message
    assert lim.in_flight("key_a") == 1
    ticket = admitted(lim, k, user="v")
    headers = dict(ticket.headers)
    assert headers[b"x-ratelimit-remaining-requests"] == b"0", "v's own: 1 - 1"
    assert headers[b"x-ratelimit-remaining-tokens"] == b"4980", "the key's, 2 taken of 5000"
    assert lim.in_flight("key_a") == 2 and lim.in_flight("team:t") == 0


def test_a_later_scope_refusing_leaves_earlier_buckets_untouched() -> None:
    lim = limiter(models={"chat": {"max_parallel": 1}})
    k = key("key_a", rpm=2)
    held = admitted(lim, k)
    error = refused(lim, k)
    assert "Model 'chat' already has 1 requests in flight" in error.message
    lim.settle(held, None)
    admitted(lim, k)  # the refused request did not use the key's second request
    assert "this key" in refused(lim, k).message


def test_parallel_places_are_freed_on_every_scope_once() -> None:
    lim = limiter(teams={"t": {"max_parallel": 2}}, users={"u": {"max_parallel": 1}},
                  models={"chat": {"max_parallel": 3}})
    k = key("key_a", "t", parallel=5)
    first = admitted(lim, k, user="u")
    assert [lim.in_flight(s) for s in ("key_a", "team:t", "user:u", "model:chat")] == [
        1, 1, 1, 1]
    assert "User 'u' already has 1" in refused(lim, k, user="u").message
    second = admitted(lim, k, user="w")
    assert "Team 't' already has 2" in refused(lim, k, user="x").message
    lim.settle(first, None)
    lim.settle(first, None)  # twice: freed once
    assert [lim.in_flight(s) for s in ("key_a", "team:t", "user:u", "model:chat")] == [
        1, 1, 0, 1]
    lim.settle(second, {"total_tokens": 3})
    assert [lim.in_flight(s) for s in ("key_a", "team:t", "user:w", "model:chat")] == [
        0, 0, 0, 0]


def test_headers_are_the_tightest_scopes_per_kind() -> None:
    lim = limiter(teams={"t": {"rpm": 5, "tpm": 100_000}}, models={"chat": {"tpm": 2000}})
    k = key("key_a", "t", rpm=100, tpm=50_000)
    headers = dict(admitted(lim, k, {**BODY, "max_tokens": 90}, 40).headers)
    assert headers[b"x-ratelimit-limit-requests"] == b"5", "the team's RPM: 4 left"
    assert headers[b"x-ratelimit-remaining-requests"] == b"4"
    assert headers[b"x-ratelimit-reset-requests"] == b"12s"
    assert headers[b"x-ratelimit-limit-tokens"] == b"2000", "the model's TPM: 1900 left"
    assert headers[b"x-ratelimit-remaining-tokens"] == b"1900"
    assert headers[b"x-ratelimit-reset-tokens"] == b"3s"
    error = refused(lim, k, {**BODY, "max_tokens": 1990}, 40)  # the refusal: the model's
    assert dict(error.headers())[b"x-ratelimit-limit-tokens"] == b"2000"
    assert b"x-ratelimit-limit-requests" not in dict(error.headers())


def test_tokens_settle_on_every_scope() -> None:
    lim = limiter(teams={"t": {"tpm": 1000}})
    k = key("key_a", "t", tpm=1000)
    ticket = admitted(lim, k, {**BODY, "max_tokens": 500}, 400)  # 600 on both
    assert ticket.tokens == 600 and len(ticket.reserved) == 2
    lim.settle(ticket, {"prompt_tokens": 20, "completion_tokens": 30})
    assert dict(admitted(lim, k).headers)[b"x-ratelimit-remaining-tokens"] == b"940"


def test_a_reload_keeps_what_each_scope_used() -> None:
    lim = limiter(teams={"t": {"rpm": 10}})
    k = key("key_a", "t")
    for _ in range(5):
        admitted(lim, k)
    lim.configure(LimitSettings(teams={"t": {"rpm": 6}}))
    admitted(lim, k)  # 5 used of 6
    assert "team 't'" in refused(lim, k).message
    lim.configure(LimitSettings(teams={"*": {"rpm": 8}}))  # now the star's, same bucket
    admitted(lim, k)
    admitted(lim, k)
    refused(lim, k)
    lim.configure(LimitSettings())
    assert not lim.scoped and lim.admit(k, BODY, 40) is None


def test_idle_scopes_are_forgotten_once_the_table_grows() -> None:
    lim = limiter(users={"*": {"rpm": 60}})
    lim._sweep_at = 8
    for i in range(8):
        admitted(lim, MASTER, user=f"u{i}", now=0.0)
    held = admitted(lim, MASTER, user="u0", now=0.5)  # u0 is not full again
    admitted(lim, MASTER, user="fresh", now=1.5)  # the ninth: u1..u7 are full, forgotten
    assert set(lim._states) == {"user:u0", "user:fresh"}
    lim.settle(held, None)


def test_requests_without_any_limit_are_not_looked_at() -> None:
    lim = Limiter()
    assert not lim.scoped
    assert lim.resolve(key("key_a", "t"), "t", "u", "chat") is None
    lim.configure(LimitSettings(models={"chat": {"rpm": 1}}))
    assert lim.scoped and lim.resolve(key("key_a", "t"), "t", "u", "other") is None
    assert lim.resolve(MASTER, None, None, "chat") == [
        ("model:chat", "model", "chat", (1, None, None))]


@pytest.mark.parametrize(("scopes", "where"), [
    ({"teams": {"x": {}}}, "limits.teams.x: Value error, a limit needs at least one of rpm"),
    ({"users": {"*": {"rpm": 0}}}, "limits.users.*.rpm: Input should be greater than 0"),
    ({"models": {"chat": {"rpm": True}}}, "limits.models.chat.rpm: Input should be a valid"),
    ({"teams": {"x": {"rps": 3}}}, "limits.teams.x.rps: Extra inputs are not permitted"),
    ({"teams": {" x": {"rpm": 3}}}, "limits.teams: Value error, the name ' x' is empty"),
])
def test_bad_scope_limits_are_refused_at_load(scopes: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, overrides={"limits": scopes})
    assert where in str(info.value), str(info.value)
