"""Per-key rate limits: the buckets' arithmetic, reservations and their settling."""

from __future__ import annotations

import pytest

from bastion.errors import RateLimited
from bastion.governance.keys import Principal
from bastion.governance.limits import Limiter, _duration

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def key(rpm: int | None = None, tpm: int | None = None, parallel: int | None = None,
        key_id: str = "key_1") -> Principal:
    return Principal(key_id=key_id, role="user", limits=(rpm, tpm, parallel))


def test_requests_per_minute_burst_then_refill() -> None:
    limiter, k = Limiter(), key(rpm=3)
    tickets = [limiter.admit(k, BODY, 40, now=100.0) for _ in range(3)]
    assert [dict(t.headers)[b"x-ratelimit-remaining-requests"] for t in tickets if t] == [
        b"2", b"1", b"0"]
    with pytest.raises(RateLimited) as refused:
        limiter.admit(k, BODY, 40, now=100.0)
    assert refused.value.retry_after == pytest.approx(20.0)
    assert "requests per minute" in refused.value.message and "20s" in refused.value.message
    with pytest.raises(RateLimited):
        limiter.admit(k, BODY, 40, now=119.0)
    assert limiter.admit(k, BODY, 40, now=120.0) is not None, "one more after 60/3 s"
    other = key(rpm=3, key_id="key_2")
    assert limiter.admit(other, BODY, 40, now=120.0) is not None, "keys are separate"


def test_tokens_are_reserved_then_settled_to_what_was_used() -> None:
    limiter, k = Limiter(), key(tpm=1000)
    ticket = limiter.admit(k, {**BODY, "max_tokens": 500}, 400, now=0.0)  # 100 + 500
    assert ticket is not None and ticket.tokens == 600
    assert dict(ticket.headers)[b"x-ratelimit-remaining-tokens"] == b"400"
    with pytest.raises(RateLimited, match="tokens per minute"):
        limiter.admit(k, {**BODY, "max_tokens": 500}, 400, now=0.0)
    limiter.settle(ticket, {"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50})
    again = limiter.admit(k, {**BODY, "max_tokens": 500}, 400, now=0.0)
    assert again is not None, "550 of the 600 came back"
    limiter.settle(again, None)  # usage unknown: the reservation stands
    with pytest.raises(RateLimited) as info:
        limiter.admit(k, {**BODY, "max_tokens": 950}, 400, now=0.0)
    assert info.value.code == "tokens_exceed_limit", "1,050 tokens never fit in 1,000"


def test_requests_in_flight_are_bounded_and_freed_once() -> None:
    limiter, k = Limiter(), key(parallel=2)
    first, second = (limiter.admit(k, BODY, 40) for _ in range(2))
    with pytest.raises(RateLimited, match="in flight"):
        limiter.admit(k, BODY, 40)
    assert first is not None and second is not None
    limiter.settle(first, None)
    limiter.settle(first, None)  # twice: freed once
    assert limiter.in_flight("key_1") == 1
    assert limiter.admit(k, BODY, 40) is not None


def test_a_lowered_limit_keeps_what_was_used() -> None:
    limiter = Limiter()
    for _ in range(5):
        limiter.admit(key(rpm=10), BODY, 40, now=0.0)
    ticket = limiter.admit(key(rpm=6), BODY, 40, now=0.0)  # 5 used of 6
    assert ticket is not None
    with pytest.raises(RateLimited):
        limiter.admit(key(rpm=6), BODY, 40, now=0.0)


def test_keys_without_limits_pass_untouched() -> None:
    assert Limiter().admit(Principal(key_id="k", role="user"), BODY, 40) is None


@pytest.mark.parametrize(("seconds", "text"), [
    (0.25, b"250ms"), (1.0, b"1s"), (59.2, b"1m0s"), (61, b"1m1s"), (360, b"6m0s")])
def test_reset_durations_in_openai_format(seconds: float, text: bytes) -> None:
    assert _duration(seconds) == text
