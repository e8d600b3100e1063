"""Rate limits, in memory: requests per minute, tokens per minute, requests at once, per
key, team, user and model alias.

A request is checked against every *scope* that applies to it: its key's own limits (a
virtual key's ``limits``), its team's (``limits.teams``), its user's (``limits.users``: the
request's ``user`` field, else the key's user, as budgets take it) and its model alias's
(``limits.models``, the request's ``model``: the total of every caller). ``"*"`` in
``teams``, ``users`` or ``models`` stands for each one without an entry of its own (each
has its own bucket). The team, user and model limits apply to every request, the master
key's too (it has no team, so only the user and model limits can apply to it); a key's
own limits need a key. Admission is all-or-nothing: when one scope refuses, nothing is
taken from the others (what the scopes before it gave is given back before the refusal is
raised; one thread, so no other request sees it).

Requests and tokens are token buckets (capacity: the per-minute limit; refilled at a
sixtieth of it per second), so a scope may burst to its limit and then goes at its rate.
Tokens are reserved before the call, as OpenAI counts them: the prompt (estimated from
the body's size, about 4 bytes a token, which errs high) plus ``max_tokens`` (or
``max_completion_tokens``), on every scope with a TPM; when the answer's usage is known,
the difference is given back or taken (a bucket may go into debt, which the next requests
wait out). Refusals are 429 ``rate_limit_exceeded`` with ``Retry-After``, naming the scope
whose limit was hit (never another scope's usage); every answer to a limited request
carries OpenAI's ``x-ratelimit-*`` headers: on success those of the tightest scope (per
kind, the one with the least remaining), on a refusal those of the limit it hit.

The common case of :meth:`Limiter.admit` (every scope's state known, none refusing) and
a ticket's settle run in C when ``setup.py`` built ``_limitsc.c``: the same states (its
``State`` is :class:`_State`'s twin) and the same arithmetic; anything else comes here.

This is one process's view: with several workers or replicas each enforces the whole
limit on what it serves, unless ``limits.redis_url`` shares them
(:mod:`bastion.governance.shared_limits`). Costs: a request to which no limit applies is
one or two attribute reads in the pipeline (:attr:`ScopeRules.scoped`); one that is
limited pays a dict read per configured scope kind and a few float operations per bucket.
A scope's bucket that is full again and idle is forgotten (the same as a new one), so
names that come and go (users) do not grow the table for good.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.errors import RateLimited
from bastion.governance.keys import Principal

if TYPE_CHECKING:
    from bastion.config_access import LimitSettings
    from bastion.governance._limitsc import Grant as GrantType

_CState: Any
_cadmit: Callable[..., GrantType | None] | None
Grant: type[GrantType] | None
try:  # the request path in C (setup.py builds it; optional)
    from bastion.governance._limitsc import Grant
    from bastion.governance._limitsc import State as _CState
    from bastion.governance._limitsc import admit as _cadmit
except ImportError:  # pragma: no cover - where it did not compile
    Grant = _CState = _cadmit = None

TOKEN_BYTES = 4  # bytes of a request body per prompt token, for the reservation
SWEEP_MIN = 4096  # scopes' states held before idle ones are forgotten

Triple = tuple[int | None, int | None, int | None]  # rpm, tpm, max_parallel
# one scope of a request: its state's id ("key_…" for a key, "team:<name>", "user:<name>",
# "model:<alias>"), its kind, its name and its limits
Scope = tuple[str, str, str, Triple]


class InFlight:
    """What ``max_parallel`` counts: one scope's requests in flight in this process."""

    __slots__ = ("inflight",)

    def __init__(self) -> None:
        self.inflight = 0


@dataclass(slots=True)
class Ticket:
    """What one admitted request holds: its token reservation (on each scope in
    ``reserved``) and its places in ``max_parallel`` (one in each of ``held``)."""

    tokens: float
    headers: list[tuple[bytes, bytes]]
    held: Sequence[InFlight] = ()
    reserved: Sequence[_State] = ()
    done: bool = False


def _duration(seconds: float) -> bytes:
    """OpenAI's reset format: ``1s``, ``250ms``, ``6m0s``."""
    if seconds < 1:
        return b"%dms" % -(-seconds * 1000 // 1) if seconds > 0 else b"0ms"
    whole = -(-seconds // 1)
    if whole < 60:
        return b"%ds" % whole
    return b"%dm%ds" % divmod(whole, 60)


def whose(kind: str, name: str) -> str:
    """The scope as a refusal names it: ``this key``, ``team 'support'``."""
    return "this key" if kind == "key" else f"{kind} '{name[:128]}'"


class LimitReached(RateLimited):
    """A 429 for a spent limit, with its ``x-ratelimit-*`` headers (none left), as OpenAI's."""

    def __init__(self, message: str, *, kind: bytes, limit: int, wait: float) -> None:
        super().__init__(message, retry_after=wait)
        self.limit_headers = [(b"x-ratelimit-limit-" + kind, b"%d" % limit),
                              (b"x-ratelimit-remaining-" + kind, b"0"),
                              (b"x-ratelimit-reset-" + kind, _duration(wait))]

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [*super().headers(), *self.limit_headers]


def refuse(kind: bytes, limit: int, wait: float, scope: str = "this key") -> None:
    """Raises the 429 for a spent RPM (``kind`` requests) or TPM (tokens) of ``scope``."""
    what = "requests per minute (RPM)" if kind == b"requests" else "tokens per minute (TPM)"
    raise LimitReached(f"Rate limit reached for {scope} on {what}: limit {limit}. Please "
                       f"try again in {_duration(wait).decode()}.",
                       kind=kind, limit=limit, wait=wait)


def refuse_parallel(limit: int, scope: str = "this key") -> None:
    raise RateLimited(f"{scope[0].upper()}{scope[1:]} already has {limit} requests in "
                      "flight, its limit: retry when one has finished", retry_after=1)


def estimate(body: dict[str, Any], body_bytes: int) -> float:
    """The tokens a request reserves: its prompt (estimated from the body's size) plus its
    max output."""
    return float(body_bytes / TOKEN_BYTES + (
        body.get("max_tokens") or body.get("max_completion_tokens") or 0))


def too_big(wanted: float, tpm: int, scope: str = "this key") -> None:
    """Raises the 429 for a request that alone needs more than ``scope``'s whole TPM."""
    raise RateLimited(
        f"This request needs about {math.ceil(wanted)} tokens (prompt and max_tokens), more "
        f"than the limit of {scope}, {tpm} tokens per minute (TPM): lower max_tokens or "
        "send less", code="tokens_exceed_limit")


def _count(value: Any) -> float:
    """A usage count: a number that is not a bool and not below 0, else -1."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        try:
            return float(value)
        except OverflowError:  # an int beyond a double: not a count
            return -1.0
    return -1.0


def used_tokens(usage: dict[str, Any]) -> float:
    """The tokens an answer used: ``total_tokens``, else prompt + completion; a value
    that is not a count (an upstream's string, a negative) counts 0."""
    used = _count(usage.get("total_tokens"))
    if used >= 0:
        return used
    return max(_count(usage.get("prompt_tokens")), 0.0) + max(
        _count(usage.get("completion_tokens")), 0.0)


def _triples(rules: dict[str, Any], old: dict[str, Triple]) -> dict[str, Triple]:
    """name -> (rpm, tpm, max_parallel); an unchanged limit keeps its tuple (the buckets
    compare by identity first)."""
    out: dict[str, Triple] = {}
    for name, rule in rules.items():
        triple = (rule.rpm, rule.tpm, rule.max_parallel)
        out[name] = old[name] if old.get(name) == triple else triple
    return out


class ScopeRules:
    """The configured team, user and model limits, and which scopes apply to a request."""

    def __init__(self) -> None:
        self._teams: dict[str, Triple] = {}
        self._users: dict[str, Triple] = {}
        self._models: dict[str, Triple] = {}
        self.scoped = False  # any team, user or model limit: every request is looked at

    def configure(self, settings: LimitSettings) -> None:
        """New team, user and model limits (at start, on a reload); the buckets keep what
        was used (a changed limit: :meth:`_State.refill`)."""
        self._teams = _triples(settings.teams, self._teams)
        self._users = _triples(settings.users, self._users)
        self._models = _triples(settings.models, self._models)
        self.scoped = bool(self._teams or self._users or self._models)

    def resolve(self, principal: Principal, team: str | None, user: str | None,
                model: Any) -> list[Scope] | None:
        """The scopes of a request, key first; None when no limit applies to it."""
        found: list[Scope] | None = None
        limits, key_id = principal.limits, principal.key_id
        if limits is not None and key_id is not None:
            found = [(key_id, "key", key_id, limits)]
        if not self.scoped:
            return found
        for kind, rules, name in (("team", self._teams, team), ("user", self._users, user),
                                  ("model", self._models, model)):
            if rules and isinstance(name, str):
                rule = rules.get(name)
                if rule is None:
                    rule = rules.get("*")
                if rule is not None:
                    scope = (f"{kind}:{name}", kind, name, rule)
                    if found is None:
                        found = [scope]
                    else:
                        found.append(scope)
        return found


class _State(InFlight):
    """One scope's buckets (levels refilled together) and requests in flight."""

    __slots__ = ("limits", "requests", "stamp", "tokens")

    def __init__(self, limits: Triple, now: float) -> None:
        super().__init__()
        self.limits = limits
        self.requests = float(limits[0] or 0)
        self.tokens = float(limits[1] or 0)
        self.stamp = now

    def refill(self, limits: Triple, now: float) -> None:
        if limits is not self.limits:
            if limits != self.limits:  # changed: keep what was used
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

    def idle(self) -> bool:
        """Full and nothing in flight: the same as a new state."""
        rpm, tpm, _ = self.limits
        return (not self.inflight and (not rpm or self.requests >= rpm)
                and (not tpm or self.tokens >= tpm))


_LIMIT_REQUESTS, _REMAINING_REQUESTS, _RESET_REQUESTS = (
    b"x-ratelimit-limit-requests", b"x-ratelimit-remaining-requests",
    b"x-ratelimit-reset-requests")
_LIMIT_TOKENS, _REMAINING_TOKENS, _RESET_TOKENS = (
    b"x-ratelimit-limit-tokens", b"x-ratelimit-remaining-tokens", b"x-ratelimit-reset-tokens")
_NAMES = {b"requests": (_LIMIT_REQUESTS, _REMAINING_REQUESTS, _RESET_REQUESTS),
          b"tokens": (_LIMIT_TOKENS, _REMAINING_TOKENS, _RESET_TOKENS)}
_LIMITS: dict[int, bytes] = {}  # a limit's header value, formatted once


def _limit_value(limit: int) -> bytes:
    if len(_LIMITS) >= 1024:  # limits come from the configuration and the keys: few
        _LIMITS.clear()
    value = _LIMITS[limit] = b"%d" % limit
    return value


def limit_headers(kind: bytes, limit: int, left: float, reset: float
                  ) -> tuple[tuple[bytes, bytes], ...]:
    """OpenAI's three ``x-ratelimit-*`` headers of one kind (requests or tokens)."""
    names = _NAMES[kind]
    return ((names[0], _LIMITS.get(limit) or _limit_value(limit)),
            (names[1], b"%d" % left if left > 0 else b"0"), (names[2], _duration(reset)))


class Limiter(ScopeRules):
    def __init__(self, fast: bool = True) -> None:
        """``fast``: the common case in C where it is built (False: all in Python, the
        reference the tests hold it to)."""
        super().__init__()
        self._states: dict[str, _State] = {}
        self._sweep_at = SWEEP_MIN
        self._fast = _cadmit if fast else None
        self._state: Any = _CState if fast and _CState is not None else _State

    def admit(self, principal: Principal, body: dict[str, Any], body_bytes: int,
              team: str | None = None, user: str | None = None, now: float | None = None
              ) -> Ticket | GrantType | None:
        """Admits a request or raises RateLimited; None: no limit applies to it."""
        if self.scoped:
            scopes = self.resolve(principal, team, user, body.get("model"))
            if scopes is None:
                return None
        else:  # resolve, inlined: a key's own limits only
            limits, key_id = principal.limits, principal.key_id
            if limits is None or key_id is None:
                return None
            scopes = [(key_id, "key", key_id, limits)]
        now = time.monotonic() if now is None else now
        if self._fast is not None:  # admit_scopes, inlined: every limited request
            grant = self._fast(self._states, scopes, body, body_bytes, now, True)
            if grant is not None:
                return grant
        return self._decide(scopes, body, body_bytes, now, True)

    def admit_scopes(self, scopes: list[Scope], body: dict[str, Any], body_bytes: int,
                     now: float | None = None, parallel: bool = True
                     ) -> Ticket | GrantType:
        """Admits a request on every one of ``scopes`` or on none (RateLimited naming the
        first that refuses). ``parallel=False``: ``max_parallel`` is counted elsewhere."""
        now = time.monotonic() if now is None else now
        if self._fast is not None:
            grant = self._fast(self._states, scopes, body, body_bytes, now, parallel)
            if grant is not None:
                return grant
        return self._decide(scopes, body, body_bytes, now, parallel)

    def _decide(self, scopes: list[Scope], body: dict[str, Any], body_bytes: int,
                now: float, parallel: bool) -> Ticket:
        """admit_scopes in Python: a new scope, a refusal, or no C part."""
        table = self._states
        held: list[InFlight] = []
        reserved: list[_State] = []
        wanted = -1.0  # the request's tokens, estimated once a scope has a TPM
        rpm_of = tpm_of = 0  # the tightest scope's limits, for the headers
        requests_left = tokens_left = math.inf
        current = ""  # the scope being looked at: those before it are undone if it refuses
        try:
            for ident, kind, name, limits in scopes:
                current = ident
                state = table.get(ident)
                if state is None:
                    if len(table) >= self._sweep_at:
                        self._sweep(now)
                    state = table[ident] = self._state(limits, now)
                else:
                    state.refill(limits, now)
                rpm, tpm, most = limits
                if rpm and state.requests < 1:
                    refuse(b"requests", rpm, (1 - state.requests) * 60 / rpm,
                           whose(kind, name))
                if tpm:
                    if wanted < 0:
                        wanted = estimate(body, body_bytes)
                    if wanted > tpm:
                        too_big(wanted, tpm, whose(kind, name))
                    if state.tokens < wanted:
                        refuse(b"tokens", tpm, (wanted - state.tokens) * 60 / tpm,
                               whose(kind, name))
                if parallel and most and state.inflight >= most:
                    refuse_parallel(most, whose(kind, name))
                if rpm:
                    left = state.requests = state.requests - 1
                    if left < requests_left:
                        rpm_of, requests_left = rpm, left
                if tpm:
                    left = state.tokens = state.tokens - wanted
                    reserved.append(state)
                    if left < tokens_left:
                        tpm_of, tokens_left = tpm, left
                if parallel and most:
                    state.inflight += 1
                    held.append(state)
        except RateLimited:  # one thread: nobody saw what the earlier scopes gave
            for ident, _, _, (rpm, tpm, _) in scopes:
                if ident == current:
                    break
                state = table.get(ident)
                if state is None:  # forgotten meanwhile: it had nothing taken
                    continue
                if rpm:
                    state.requests += 1
                if tpm:
                    state.tokens += wanted
            for place in held:
                place.inflight -= 1
            raise
        headers: list[tuple[bytes, bytes]] = []
        if rpm_of:  # limit_headers, inlined: this is every limited request's cost
            headers += ((_LIMIT_REQUESTS, _LIMITS.get(rpm_of) or _limit_value(rpm_of)),
                        (_REMAINING_REQUESTS, b"%d" % requests_left if requests_left > 0
                         else b"0"),
                        (_RESET_REQUESTS, _duration((rpm_of - requests_left) * 60 / rpm_of)))
        if tpm_of:
            headers += ((_LIMIT_TOKENS, _LIMITS.get(tpm_of) or _limit_value(tpm_of)),
                        (_REMAINING_TOKENS, b"%d" % tokens_left if tokens_left > 0
                         else b"0"),
                        (_RESET_TOKENS, _duration((tpm_of - tokens_left) * 60 / tpm_of)))
        return Ticket(wanted if reserved else 0.0, headers, held, reserved)

    def _sweep(self, now: float) -> None:
        """Forgets the states that are full again with nothing in flight (the same as new
        ones): a table of names that come and go (users) stays the size of the recent ones."""
        table = self._states
        for ident, state in list(table.items()):
            state.refill(state.limits, now)
            if state.idle():
                del table[ident]
        self._sweep_at = max(SWEEP_MIN, 2 * len(table))

    def settle(self, ticket: Ticket | GrantType, usage: dict[str, Any] | None) -> None:
        """The request ended: its places in ``max_parallel`` are freed and its reserved
        tokens replaced by what it used (kept as reserved when usage is unknown)."""
        if type(ticket) is Grant:
            ticket.settle(usage)
            return
        if ticket.done:
            return
        ticket.done = True
        if type(ticket) is not Ticket:  # the shared limiter's (limits.redis_url changed)
            return
        for state in ticket.held:
            if state.inflight > 0:
                state.inflight -= 1
        if not ticket.reserved or not isinstance(usage, dict) or not usage:
            return
        back = ticket.tokens - used_tokens(usage)
        for state in ticket.reserved:
            state.tokens = min(float(state.limits[1] or 0), state.tokens + back)

    def in_flight(self, ident: str) -> int:
        """Requests in flight of a scope: a key's id, ``team:<name>``..."""
        state = self._states.get(ident)
        return state.inflight if state is not None else 0
