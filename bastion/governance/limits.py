"""Per-key rate limits, in memory: requests per minute, tokens per minute, requests at once.

Requests and tokens are token buckets (capacity: the per-minute limit; refilled at a
sixtieth of it per second), so a key may burst to its limit and then goes at its rate.
Tokens are reserved before the call, as OpenAI counts them: the prompt (estimated from
the body's size, about 4 bytes a token, which errs high) plus ``max_tokens`` (or
``max_completion_tokens``); when the answer's usage is known, the difference is given back
or taken (a bucket may go into debt, which the next requests wait out). Refusals are
429 ``rate_limit_exceeded`` with ``Retry-After``; every answer to a limited key carries
OpenAI's ``x-ratelimit-*`` headers (a refusal those of the limit it hit).

This is one process's view: with several workers or replicas each enforces the whole
limit on what it serves, unless ``limits.redis_url`` shares them
(:mod:`bastion.governance.shared_limits`).
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
        return b"%dms" % -(-seconds * 1000 // 1) if seconds > 0 else b"0ms"
    whole = -(-seconds // 1)
    if whole < 60:
        return b"%ds" % whole
    return b"%dm%ds" % divmod(whole, 60)


class LimitReached(RateLimited):
    """A 429 for a spent limit, with its ``x-ratelimit-*`` headers (none left), as OpenAI's."""

    def __init__(self, message: str, *, kind: bytes, limit: int, wait: float) -> None:
        super().__init__(message, retry_after=wait)
        self.limit_headers = [(b"x-ratelimit-limit-" + kind, b"%d" % limit),
                              (b"x-ratelimit-remaining-" + kind, b"0"),
                              (b"x-ratelimit-reset-" + kind, _duration(wait))]

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [*super().headers(), *self.limit_headers]


def refuse(kind: bytes, limit: int, wait: float) -> None:
    """Raises the 429 for a spent RPM (``kind`` requests) or TPM (tokens)."""
    what = "requests per minute (RPM)" if kind == b"requests" else "tokens per minute (TPM)"
    raise LimitReached(f"Rate limit reached on {what}: limit {limit}. Please try again in "
                       f"{_duration(wait).decode()}.", kind=kind, limit=limit, wait=wait)


class _KeyState:
    """One key's buckets (levels refilled together) and requests in flight."""

    __slots__ = ("inflight", "limits", "requests", "stamp", "tokens")

    def __init__(self, limits: tuple[int | None, int | None, int | None], now: float) -> None:
        self.limits = limits
        self.requests = float(limits[0] or 0)
        self.tokens = float(limits[1] or 0)
        self.stamp = now
        self.inflight = 0

    def refill(self, limits: tuple[int | None, int | None, int | None], now: float) -> None:
        if limits is not self.limits and limits != self.limits:  # changed: keep what was used
            old = self.limits
            self.requests += (limits[0] or 0) - (old[0] or 0)
            self.tokens += (limits[1] or 0) - (old[1] or 0)
            self.limits = limits
        elapsed = now - self.stamp
        if elapsed > 0:
            self.stamp = now
            rpm, tpm, _ = limits
            if rpm:
                self.requests = min(float(rpm), self.requests + elapsed * rpm / 60)
            if tpm:
                self.tokens = min(float(tpm), self.tokens + elapsed * tpm / 60)


def wanted_tokens(body: dict[str, Any], body_bytes: int, tpm: int) -> float:
    """The tokens a request reserves: its prompt (estimated from the body's size) plus its
    max output; RateLimited when that alone is over the key's TPM."""
    wanted = body_bytes / TOKEN_BYTES + (
        body.get("max_tokens") or body.get("max_completion_tokens") or 0)
    if wanted > tpm:
        raise RateLimited(
            f"This request needs about {math.ceil(wanted)} tokens (prompt and max_tokens), "
            f"more than the key's limit of {tpm} tokens per minute (TPM): lower max_tokens "
            "or send less", code="tokens_exceed_limit")
    return float(wanted)


class Limiter:
    def __init__(self) -> None:
        self._keys: dict[str, _KeyState] = {}

    def admit(self, principal: Principal, body: dict[str, Any], body_bytes: int,
              now: float | None = None) -> Ticket | None:
        """Admits a request of a limited key or raises RateLimited; None: no limits."""
        limits = principal.limits
        key_id = principal.key_id
        if limits is None or key_id is None:
            return None
        now = time.monotonic() if now is None else now
        state = self._keys.get(key_id)
        if state is None:
            state = self._keys[key_id] = _KeyState(limits, now)
        else:
            state.refill(limits, now)
        rpm, tpm, parallel = limits
        wanted = 0.0
        if rpm and state.requests < 1:
            refuse(b"requests", rpm, (1 - state.requests) * 60 / rpm)
        if tpm:
            wanted = wanted_tokens(body, body_bytes, tpm)
            if state.tokens < wanted:
                refuse(b"tokens", tpm, (wanted - state.tokens) * 60 / tpm)
        if parallel and state.inflight >= parallel:
            raise RateLimited(f"This key already has {parallel} requests in flight, its "
                              "limit: retry when one has finished", retry_after=1)
        headers: list[tuple[bytes, bytes]] = []
        if rpm:
            left = state.requests = state.requests - 1
            headers += ((b"x-ratelimit-limit-requests", b"%d" % rpm),
                        (b"x-ratelimit-remaining-requests", b"%d" % left if left > 0 else b"0"),
                        (b"x-ratelimit-reset-requests", _duration((rpm - left) * 60 / rpm)))
        if tpm:
            left = state.tokens = state.tokens - wanted
            headers += ((b"x-ratelimit-limit-tokens", b"%d" % tpm),
                        (b"x-ratelimit-remaining-tokens", b"%d" % left if left > 0 else b"0"),
                        (b"x-ratelimit-reset-tokens", _duration((tpm - left) * 60 / tpm)))
        if parallel:
            state.inflight += 1
        return Ticket(key_id, wanted, bool(parallel), headers)

    def settle(self, ticket: Ticket, usage: dict[str, Any] | None) -> None:
        """The request ended: its place in ``max_parallel`` is freed and its reserved
        tokens replaced by what it used (kept as reserved when usage is unknown)."""
        if ticket.done:
            return
        ticket.done = True
        state = self._keys.get(ticket.key_id)
        if state is None:
            return
        if ticket.parallel and state.inflight > 0:
            state.inflight -= 1
        if not ticket.tokens or not usage:
            return
        used = usage.get("total_tokens")
        if not isinstance(used, int | float):
            used = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
        tpm = state.limits[1] or 0
        state.tokens = min(float(tpm), state.tokens + ticket.tokens - used)

    def in_flight(self, key_id: str) -> int:
        state = self._keys.get(key_id)
        return state.inflight if state is not None else 0
