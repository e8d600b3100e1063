"""Per-deployment live state: in-flight count, latency EWMA, and a circuit breaker.

Breaker (passive health)::

    closed ──(failure_threshold consecutive failures)──► open
    open ──(cooldown elapsed)──► half_open: one probe request is let through
    half_open ──(probe succeeds)──► closed     half_open ──(probe fails)──► open

All of it lives in memory and is touched only from the event loop: no locks, no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bastion.backends.base import Backend

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(slots=True)
class BreakerPolicy:
    failure_threshold: int = 5
    cooldown: float = 10.0


@dataclass(slots=True, eq=False)
class Deployment:
    """One backend serving a public model name (its alias), with its routing state."""

    name: str
    alias: str
    backend: Backend
    weight: float = 1.0
    priority: int = 1
    max_concurrency: int | None = None
    price: float = 0.0  # per 1M tokens (input + output), for cost-aware routing
    timeout: float | None = None  # whole call, seconds
    first_token_timeout: float | None = None  # until a stream's first event
    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    in_flight: int = 0
    ewma_latency: float = 0.0  # seconds; 0 until the first success
    consecutive_failures: int = 0
    state: str = CLOSED
    opened_at: float = 0.0
    probing: bool = False
    successes: int = 0
    failures: int = 0
    on_free: Callable[[], None] | None = None  # a request ended here (its route's queue)

    def available(self, now: float, breaker: bool = True) -> bool:
        """May a request be sent here now? (Moves open → half-open after the cooldown.)

        ``breaker=False``: the breaker's state is ignored (it still records failures)."""
        if not self.backend.ready:
            return False
        if self.max_concurrency is not None and self.in_flight >= self.max_concurrency:
            return False
        if not breaker:
            return True
        if self.state == OPEN:
            if now - self.opened_at < self.policy.cooldown:
                return False
            self.state = HALF_OPEN
            self.probing = False
        if self.state == HALF_OPEN:
            return not self.probing
        return True

    def would_admit(self, now: float, breaker: bool = True) -> bool:
        """``available`` without its side effect (for reports and the queue's pump)."""
        if not self.backend.ready:
            return False
        if self.max_concurrency is not None and self.in_flight >= self.max_concurrency:
            return False
        if not breaker:
            return True
        if self.state == OPEN:
            return now - self.opened_at >= self.policy.cooldown
        return self.state == CLOSED or not self.probing

    def cooldown_left(self, now: float) -> float:
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.policy.cooldown - (now - self.opened_at))

    def begin(self) -> float:
        self.in_flight += 1
        if self.state == HALF_OPEN:
            self.probing = True
        return time.perf_counter()

    def succeeded(self, started: float) -> None:
        self.in_flight -= 1
        self.successes += 1
        latency = time.perf_counter() - started
        self.ewma_latency = latency if self.ewma_latency == 0 else (
            0.8 * self.ewma_latency + 0.2 * latency
        )
        self.consecutive_failures = 0
        self.state = CLOSED
        self.probing = False
        if self.on_free is not None:
            self.on_free()

    def failed(self, now: float) -> None:
        self.in_flight -= 1
        self.failures += 1
        self.consecutive_failures += 1
        if self.state == HALF_OPEN or self.consecutive_failures >= self.policy.failure_threshold:
            self.state = OPEN
            self.opened_at = now
        self.probing = False
        if self.on_free is not None:
            self.on_free()

    def released(self) -> None:
        """The request ended without a verdict on this deployment's health (e.g. a 400)."""
        self.in_flight -= 1
        self.probing = False
        if self.on_free is not None:
            self.on_free()

    def probed(self, ok: bool, now: float) -> None:
        """An active probe's verdict: a failure ejects at once, a success readmits at once
        (no waiting out the cooldown after an upstream came back)."""
        if ok:
            if self.state != CLOSED:
                self.state = CLOSED
                self.consecutive_failures = 0
                self.probing = False
                if self.on_free is not None:
                    self.on_free()
        elif self.state != OPEN:
            self.state = OPEN
            self.opened_at = now
        else:
            self.opened_at = now  # still down: restart the cooldown

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "kind": self.backend.kind,
            "ready": self.backend.ready,
            "available": self.would_admit(now),
            "breaker": self.state,
            "cooldown_left_s": round(self.cooldown_left(now), 3),
            "in_flight": self.in_flight,
            "ewma_latency_ms": round(self.ewma_latency * 1000, 3),
            "consecutive_failures": self.consecutive_failures,
            "successes": self.successes,
            "failures": self.failures,
            "weight": self.weight,
            "timeout": self.timeout,
            "first_token_timeout": self.first_token_timeout,
            "priority": self.priority,
        }
