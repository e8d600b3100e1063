"""The rate limiter's request path in C (bastion/governance/_limitsc.c) against Python's
(Limiter(fast=False)): for any sequence of admissions and settlements both admit and
refuse alike (same headers, same 429s) and leave every scope's buckets exactly alike."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.errors import RateLimited
from bastion.governance import limits as lim
from bastion.governance.keys import Principal

pytestmark = pytest.mark.skipif(
    lim._cadmit is None and os.environ.get("CI") != "true",
    reason="the C limiter is not built (pip install -e . builds it)",
)


def test_the_c_limiter_is_built_where_the_suite_runs_in_ci() -> None:
    assert lim._cadmit is not None, "setup.py's extension did not build"


def test_a_limited_request_is_admitted_in_c_once_its_state_exists() -> None:
    limiter = lim.Limiter()
    key = Principal(key_id="key_c", role="user", limits=(100, 10_000, 4))
    body = {"model": "m", "max_tokens": 10}
    first = limiter.admit(key, body, 40, now=1.0)
    assert type(first) is lim.Ticket, "a new scope: Python makes its state"
    second = limiter.admit(key, body, 40, now=1.0)
    assert lim.Grant is not None and type(second) is lim.Grant
    assert dict(second.headers) == {
        b"x-ratelimit-limit-requests": b"100", b"x-ratelimit-remaining-requests": b"98",
        b"x-ratelimit-reset-requests": b"2s", b"x-ratelimit-limit-tokens": b"10000",
        b"x-ratelimit-remaining-tokens": b"9960", b"x-ratelimit-reset-tokens": b"240ms"}
    assert limiter.in_flight("key_c") == 2
    limiter.settle(second, {"total_tokens": 5})
    limiter.settle(second, {"total_tokens": 5})  # twice: once
    assert limiter.in_flight("key_c") == 1 and second.done


def test_garbage_usage_from_an_upstream_counts_nothing_in_both() -> None:
    for fast in (True, False):
        limiter = lim.Limiter(fast=fast)
        key = Principal(key_id="k", role="user", limits=(None, 1000, None))
        limiter.admit(key, {"model": "m", "max_tokens": 90}, 40, now=1.0)
        ticket = limiter.admit(key, {"model": "m", "max_tokens": 90}, 40, now=1.0)
        assert ticket is not None
        limiter.settle(ticket, {"total_tokens": "12", "prompt_tokens": -3,
                                "completion_tokens": True})
        state = limiter._states["k"]
        assert state.tokens == pytest.approx(1000 - 100 - 0), fast


LIMITS = st.tuples(st.none() | st.integers(1, 30), st.none() | st.integers(50, 3000),
                   st.none() | st.integers(1, 4))
SCOPE_IDS = ["key_a", "key_b", "team:t", "user:u", "model:m"]
OP = st.one_of(
    st.tuples(st.just("admit"), st.lists(st.sampled_from(SCOPE_IDS), min_size=1,
                                         max_size=4, unique=True),
              st.lists(LIMITS, min_size=4, max_size=4),
              st.floats(0, 30), st.integers(0, 4000),
              st.none() | st.integers(0, 2000) | st.just(True) | st.just(1.5),
              st.booleans()),
    st.tuples(st.just("settle"), st.integers(0, 50),
              st.none() | st.just({}) | st.fixed_dictionaries({}, optional={
                  "total_tokens": st.integers(0, 3000) | st.just("x") | st.floats(0, 99),
                  "prompt_tokens": st.integers(0, 3000),
                  "completion_tokens": st.integers(0, 3000) | st.none()})),
)


def outcome(limiter: lim.Limiter, scopes: list[lim.Scope], body: dict[str, Any],
            size: int, now: float, parallel: bool) -> tuple[Any, Any]:
    try:
        ticket = limiter.admit_scopes(scopes, body, size, now, parallel)
    except RateLimited as exc:
        return None, (exc.message, exc.retry_after, exc.code, exc.headers())
    return ticket, (ticket.tokens, ticket.headers)


def states(limiter: lim.Limiter) -> dict[str, tuple[Any, ...]]:
    return {ident: (s.limits, s.requests, s.tokens, s.stamp, s.inflight)
            for ident, s in limiter._states.items()}


@settings(max_examples=int(os.environ.get("LIMITSC_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OP, min_size=1, max_size=40))
def test_c_and_python_limiters_agree(ops: list[tuple[Any, ...]]) -> None:
    c, python = lim.Limiter(), lim.Limiter(fast=False)
    tickets: list[tuple[Any, Any]] = []
    now = 0.0
    for op in ops:
        if op[0] == "admit":
            _, idents, triples, step, size, max_tokens, parallel = op
            now += step
            scopes = [(ident, ident.split(":")[0] if ":" in ident else "key", ident,
                       triples[i]) for i, ident in enumerate(idents)]
            body: dict[str, Any] = {"model": "m"}
            if max_tokens is not None:
                body["max_tokens"] = max_tokens
            ours, our_view = outcome(c, scopes, body, size, now, parallel)
            theirs, their_view = outcome(python, scopes, body, size, now, parallel)
            assert our_view == their_view
            if ours is not None:
                tickets.append((ours, theirs))
        elif tickets:
            _, index, usage = op
            ours, theirs = tickets[index % len(tickets)]
            c.settle(ours, usage)
            python.settle(theirs, usage)
            assert ours.done and theirs.done
        assert states(c) == states(python)
