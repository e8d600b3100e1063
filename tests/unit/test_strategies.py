"""Load-balancing strategies order deployments as their names promise."""

from __future__ import annotations

import random
from collections import Counter

from bastion.backends.base import Backend
from bastion.routing.health import CLOSED, HALF_OPEN, OPEN, BreakerPolicy, Deployment
from bastion.routing.strategies import (
    RouteState,
    cost,
    latency,
    least_in_flight,
    round_robin,
    weighted,
)


def dep(name: str, **kw: object) -> Deployment:
    backend = Backend(name)
    backend.ready = True
    return Deployment(name=name, alias="m", backend=backend, **kw)  # type: ignore[arg-type]


def test_round_robin_rotates() -> None:
    deps = [dep("a"), dep("b"), dep("c")]
    state = RouteState()
    firsts = [round_robin(deps, state)[0].name for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]


def test_weighted_follows_weights() -> None:
    random.seed(1)
    deps = [dep("a", weight=3.0), dep("b", weight=1.0)]
    counts = Counter(weighted(deps, RouteState())[0].name for _ in range(4000))
    assert 0.70 < counts["a"] / 4000 < 0.80


def test_least_in_flight_prefers_idle_per_weight() -> None:
    a, b = dep("a"), dep("b", weight=2.0)
    a.in_flight, b.in_flight = 2, 3  # per weight: 2 vs 1.5
    assert least_in_flight([a, b], RouteState())[0] is b


def test_latency_prefers_the_faster_of_two() -> None:
    fast, slow = dep("fast"), dep("slow")
    fast.ewma_latency, slow.ewma_latency = 0.01, 0.5
    assert all(latency([fast, slow], RouteState())[0] is fast for _ in range(50))


def test_cost_prefers_the_cheapest() -> None:
    deps = [dep("dear", price=10.0), dep("cheap", price=0.5)]
    assert cost(deps, RouteState())[0].name == "cheap"


def test_breaker_opens_half_opens_and_closes() -> None:
    d = dep("a", policy=BreakerPolicy(failure_threshold=2, cooldown=5.0))
    for now in (0.0, 1.0):
        d.begin()
        d.failed(now)
    assert d.state == OPEN and not d.available(2.0)
    assert d.available(6.5) and d.state == HALF_OPEN
    started = d.begin()
    assert not d.available(6.6), "one probe at a time"
    d.succeeded(started)
    assert d.state == CLOSED and d.available(7.0)


def test_failed_probe_reopens() -> None:
    d = dep("a", policy=BreakerPolicy(failure_threshold=1, cooldown=1.0))
    d.begin()
    d.failed(0.0)
    assert d.available(2.0)
    d.begin()
    d.failed(2.0)
    assert d.state == OPEN and not d.available(2.5)


def test_max_concurrency_makes_a_deployment_unavailable() -> None:
    d = dep("a", max_concurrency=1)
    d.begin()
    assert not d.available(0.0)
    d.released()
    assert d.available(0.0)


def test_least_in_flight_breaks_ties_by_latency() -> None:
    fast, slow = dep("fast"), dep("slow")
    fast.ewma_latency, slow.ewma_latency = 0.005, 0.05
    assert all(least_in_flight([slow, fast], RouteState())[0] is fast for _ in range(20))
    fast.in_flight = 1
    assert least_in_flight([slow, fast], RouteState())[0] is slow, "load still comes first"
