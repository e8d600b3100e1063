"""Per-key rate limits, in memory: requests per minute, tokens per minute, requests at once.

Requests and tokens are token buckets (capacity: the per-minute limit; refilled at a
sixtieth of it per second), so a key may burst to its limit and then goes at its rate.
Tokens are reserved before the call, as OpenAI counts them: the prompt (estimated from
the body's size, about 4 bytes a token, which errs high) plus ``max_tokens`` (or
``max_completion_tokens``); when the answer's usage is known, the difference is given back
or taken (a bucket may go into debt, which the next requests wait out). Refusals are
429 ``rate_limit_exceeded`` with ``Retry-After``; every answer to a limited key carries
OpenAI's ``x-ratelimit-*`` headers.

This is one process's view: with several workers or replicas each enforces the whole
limit on what it serves (shared limits through Redis come with the scale-out work).
Costs: a dict read and a few float operations per bucket.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from bastion.errors import RateLimited
from bastion.governance.keys import Principal

TOKEN_BYTES = 4  # bytes of a request body per prompt token, for the reservation


@dataclass(slots=True)
class Bucket:
    capacity: float
    level: float
    stamp: float

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.capacity / 60)
            self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0: now)."""
        short = amount - self.level
        return 0.0 if short <= 0 else short * 60 / self.capacity

    def until_full(self) -> float:
        return max(0.0, (self.capacity - self.level) * 60 / self.capacity)


@dataclass(slots=True)
class Ticket:
    """What one admitted request holds: its reservation and its place in ``max_parallel``."""

    key_id: str
    tokens: float
    parallel: bool
    headers: list[tuple[bytes, bytes]]
    done: bool = False


def _duration(seconds: float) -> bytes:
    """OpenAI's reset format: ``1s``, ``250ms``, ``6m0s``."""
    if seconds < 1:
        return b"%dms" % max(0, math.ceil(seconds * 1000))
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return b"%dm%ds" % (minutes, secs) if minutes else b"%ds" % secs


class Limiter:
    def __init__(self) -> None:
        self._requests: dict[str, Bucket] = {}
        self._tokens: dict[str, Bucket] = {}
        self._inflight: dict[str, int] = {}

    @staticmethod
    def _bucket(table: dict[str, Bucket], key_id: str, limit: int, now: float) -> Bucket:
        bucket = table.get(key_id)
        if bucket is None:
            bucket = table[key_id] = Bucket(float(limit), float(limit), now)
        elif bucket.capacity != limit:  # the key's limit changed: keep what was used
            bucket.level += limit - bucket.capacity
            bucket.capacity = float(limit)
        bucket.refill(now)
        return bucket

    def admit(self, principal: Principal, body: dict[str, Any], body_bytes: int,
              now: float | None = None) -> Ticket | None:
        """Admits a request of a limited key or raises RateLimited; None: no limits."""
        limits = principal.limits
        if limits is None or principal.key_id is None:
            return None
        key_id = principal.key_id
        now = time.monotonic() if now is None else now
        headers: list[tuple[bytes, bytes]] = []
        rpm, tpm, parallel = limits
        requests = tokens = None
        wanted = 0.0
        if rpm:
            requests = self._bucket(self._requests, key_id, rpm, now)
            if requests.level < 1:
                self._refuse("requests per minute (RPM)", rpm, requests.wait_for(1))
        if tpm:
            tokens = self._bucket(self._tokens, key_id, tpm, now)
            out = body.get("max_tokens") or body.get("max_completion_tokens") or 0
            wanted = body_bytes / TOKEN_BYTES + out
            if wanted > tpm:
                raise RateLimited(
                    f"This request needs about {math.ceil(wanted)} tokens (prompt and "
                    f"max_tokens), more than the key's limit of {tpm} tokens per minute "
                    "(TPM): lower max_tokens or send less", code="tokens_exceed_limit")
            if tokens.level < wanted:
                self._refuse("tokens per minute (TPM)", tpm, tokens.wait_for(wanted))
        if parallel and self._inflight.get(key_id, 0) >= parallel:
            raise RateLimited(f"This key already has {parallel} requests in flight, its "
                              "limit: retry when one has finished", retry_after=1)
        if requests is not None:
            requests.level -= 1
            headers += [(b"x-ratelimit-limit-requests", b"%d" % (rpm or 0)),
                        (b"x-ratelimit-remaining-requests", b"%d" % max(0, requests.level)),
                        (b"x-ratelimit-reset-requests", _duration(requests.until_full()))]
        if tokens is not None:
            tokens.level -= wanted
            headers += [(b"x-ratelimit-limit-tokens", b"%d" % (tpm or 0)),
                        (b"x-ratelimit-remaining-tokens", b"%d" % max(0, tokens.level)),
                        (b"x-ratelimit-reset-tokens", _duration(tokens.until_full()))]
        if parallel:
            self._inflight[key_id] = self._inflight.get(key_id, 0) + 1
        return Ticket(key_id, wanted, bool(parallel), headers)

    @staticmethod
    def _refuse(what: str, limit: int, wait: float) -> None:
        raise RateLimited(
            f"Rate limit reached on {what}: limit {limit}. Please try again in "
            f"{_duration(wait).decode()}.", retry_after=wait)

    def settle(self, ticket: Ticket, usage: dict[str, Any] | None) -> None:
        """The request ended: its place in ``max_parallel`` is freed and its reserved
        tokens replaced by what it used (kept as reserved when usage is unknown)."""
        if ticket.done:
            return
        ticket.done = True
        if ticket.parallel:
            left = self._inflight.get(ticket.key_id, 1) - 1
            if left > 0:
                self._inflight[ticket.key_id] = left
            else:
                self._inflight.pop(ticket.key_id, None)
        bucket = self._tokens.get(ticket.key_id)
        if bucket is None or not usage:
            return
        used = usage.get("total_tokens")
        if not isinstance(used, int | float):
            used = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
        bucket.level = min(bucket.capacity, bucket.level + ticket.tokens - float(used))

    def in_flight(self, key_id: str) -> int:
        return self._inflight.get(key_id, 0)
