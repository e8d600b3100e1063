"""Rate limits shared by every worker and replica, through Redis (``limits.redis_url``):
the keys', teams', users' and model aliases' RPM and TPM (which scopes apply to a request,
and that the master key's requests count too: :mod:`bastion.governance.limits`).

Each (scope, kind) is a sliding window in one sorted set, ``bastion:rl:{<key id>}:rpm``
and ``...:tpm`` for a key, ``bastion:rl:{team:<name>}:rpm`` for a team (``user:``,
``model:`` likewise): one member ``<id>:<count>`` per grant, scored with Redis's clock
(``TIME``, never a client's). One Lua script (EVALSHA) drops what left the window, sums the
rest and grants ``min(wanted, limit - used)``. A sliding window, not a token bucket: the
bound is what was admitted over any minute, and a bucket admits its whole burst plus the
refill. The braces put each scope's windows in one cluster slot; scopes are never in one
script together (they would be in different slots), so a request limited by several
scopes makes one call per scope that needs one.

Requests: a process takes a *lease* of slots per scope (at most ``lease_fraction`` of the
RPM, at least one) and admits from it without calling Redis until it is used up or lapses
(``lease_seconds``; a lapsed lease's unused slots are handed back). A lease counts in Redis
for the window plus ``lease_seconds``, so a slot used up to ``lease_seconds`` after its
grant is still in every window it falls in: what all the replicas admit never exceeds the
RPM over any window (under a sustained overload a scope gets about 60/61 of it).

Tokens: each request reserves its worst case (the prompt estimated from the body's size
plus ``max_tokens``, as in :mod:`bastion.governance.limits`) from a *token lease* of the
scope, which a process takes from Redis as requests do their slots: at least what the
request wants and at most ``lease_fraction`` of the TPM, counted in Redis as used for the
window plus ``lease_seconds`` from its grant. Requests reserve from it without calling
Redis while it has room and has not lapsed; when the answer's usage is known the
difference goes back to (or is taken from) the lease. A lease is closed when it lapses,
has no room for the next request, or has nothing reserved on it any more (so that what a
process does not use goes back to the others at once); once closed and with nothing in
flight, its member in Redis is replaced by what its requests used, once (in the
background, scored as the lease was). Several scopes with a TPM are asked concurrently.

All or nothing: when one scope refuses, what the others granted is given back (a request
slot to its lease, if the lease is still the one it came from; a reservation to its token
lease), so a refusal by a team's limit costs its keys nothing.

``max_parallel`` stays per process: requests in flight are counted here, not in Redis.

When Redis does not answer (an error, or ``timeout``): ``fail: open`` lets this process's
in-memory :class:`~bastion.governance.limits.Limiter` decide (the same scopes); ``fail:
closed`` answers 503 ``limits_unavailable``. Either way it is logged once per outage and
counted (``bastion_limit_backend_errors_total``); one request a second tries Redis again,
and shared limiting resumes by itself when it answers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bastion.errors import Overloaded, RateLimited
from bastion.governance.keys import Principal
from bastion.governance.limits import (
    SWEEP_MIN,
    InFlight,
    Limiter,
    Scope,
    ScopeRules,
    Ticket,
    estimate,
    limit_headers,
    refuse,
    refuse_parallel,
    too_big,
    used_tokens,
    whose,
)
from bastion.governance.outage import Outage

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from bastion.config_access import LimitSettings
    from bastion.governance._limitsc import Grant as GrantType

log = logging.getLogger("bastion.limits")

CLOSE_SECONDS = 1.0  # at shutdown, the leases' write-backs are waited for this long
Change = tuple[str, str, str]  # a window, a member, its replacement
SCOPE_FIELDS = frozenset({"teams", "users", "models"})  # changed in place on a reload
_DOWN = (OSError, TimeoutError, RedisError)  # Redis did not answer

# KEYS[1] the window; ARGV: ms an entry counts, limit, wanted, the least worth granting,
# member id. Grants min(wanted, room) when that is at least the least, else nothing.
# Returns {granted, used (with the grant), ms until room for the least (refused) or until
# the window is empty again (granted)}.
GRANT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - keep)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local counts = {}
local used = 0
for i = 1, #entries, 2 do
  local n = tonumber(string.match(entries[i], ':(%-?[%d.]+)$')) or 0
  counts[i] = n
  used = used + n
end
local least = math.max(tonumber(ARGV[4]), 1)
local granted = math.min(wanted, limit - used)
if granted < least then granted = 0 end
local wait = keep
if granted > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. granted)
else
  local need, freed = used + least - limit, 0
  for i = 1, #entries, 2 do
    freed = freed + counts[i]
    if freed >= need then
      wait = tonumber(entries[i + 1]) + keep - now
      break
    end
  end
end
redis.call('PEXPIRE', KEYS[1], keep + 1000)
return {granted, used + granted, wait}
"""

# KEYS[1] the window; ARGV: the member, its replacement (same score). 1: replaced, 0: gone.
REPLACE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
if ARGV[1] == ARGV[2] then return 1 end
-- added before the removal: the set never empties, so it keeps its expiry
redis.call('ZADD', KEYS[1], score, ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""


def window_key(ident: str, kind: str) -> str:
    """A scope's window: ``ident`` is a key's id or ``team:<name>``, ``user:``, ``model:``."""
    return f"bastion:rl:{{{ident}}}:{kind}"  # the braces: one cluster slot per scope


@dataclass(slots=True)
class SharedTicket(Ticket):
    leases: tuple[_TokenLease, ...] = ()  # the token lease of each scope with a TPM
    fallback: Ticket | GrantType | None = None  # decided in memory (Redis down, fail: open)


class _TokenLease:
    """Tokens of one scope's TPM taken from Redis at once, reserved from by requests."""

    __slots__ = ("charged", "expires", "key", "member", "open", "pending", "reset", "size",
                 "used")

    def __init__(self, key: str, member: str, size: int, used: int, reset: float,
                 expires: float) -> None:
        self.key, self.member, self.size = key, member, size  # its window, member, grant
        self.used, self.reset = used, reset  # the window's count (lease included), reset
        self.expires = expires  # monotonic time it lapses
        self.charged = 0  # reserved by requests in flight plus used by those that ended
        self.pending = 0  # requests whose reservation is not settled yet
        self.open = True  # reserved from; closed: written back once nothing is pending

    def fits(self, wanted: int, now: float) -> bool:
        return self.open and now < self.expires and self.size - self.charged >= wanted

    def left(self, tpm: int) -> int:
        """The tokens left to the scope, as this process knows it."""
        return max(0, tpm - self.used) + max(0, self.size - self.charged)

    def final(self) -> Change:
        """Its member replaced by what its requests used (closed, nothing pending)."""
        member = f"{self.member.split(':')[0]}:{max(0, self.charged)}"
        change = (self.key, self.member, member)
        self.member = member
        return change


class _ScopeState(InFlight):
    """One scope in this process: its leases of request slots and tokens, its requests in
    flight."""

    __slots__ = ("expires", "left", "lock", "member", "reset", "size", "tlock", "tokens",
                 "used")

    def __init__(self) -> None:
        super().__init__()
        self.left = 0  # slots of the lease not yet taken
        self.size = 0  # slots the lease had
        self.expires = 0.0  # monotonic time it lapses
        self.member = ""  # its member in the RPM window
        self.used = 0  # the window's count when it was granted (the lease included)
        self.reset = 0.0  # seconds until that window is empty again
        self.lock: asyncio.Lock | None = None
        self.tokens: _TokenLease | None = None  # the current token lease
        self.tlock: asyncio.Lock | None = None

    def slot(self, now: float) -> bool:
        return self.left > 0 and now < self.expires


class SharedLimiter(ScopeRules):
    """RPM and TPM of every scope over every process sharing ``settings.redis_url``."""

    def __init__(self, settings: LimitSettings,
                 on_backend_error: Callable[[str], None] | None = None) -> None:
        assert settings.redis_url is not None
        super().__init__()
        self.settings = settings
        self.url = settings.redis_url
        self.local = Limiter()  # fail: open, while Redis does not answer
        self.on_backend_error = on_backend_error
        self._states: dict[str, _ScopeState] = {}
        self._sweep_at = SWEEP_MIN
        self._redis: Redis | None = None
        self._grant: AsyncScript | None = None
        self._replace: AsyncScript | None = None
        self._outage = Outage(log, "rate limits", self.url)
        self._tasks: set[asyncio.Task[None]] = set()
        window = settings.window_seconds
        self._keep = str(round((window + settings.lease_seconds) * 1000))  # a lease's
        self.configure(settings)

    def configure(self, settings: LimitSettings) -> None:
        """New team, user and model limits (a reload that changed only those keeps this
        limiter: its leases, requests in flight and fallback buckets)."""
        super().configure(settings)
        self.local.configure(settings)
        self.settings = settings

    def serves(self, settings: LimitSettings) -> bool:
        """Whether ``settings`` differ from this limiter's in scopes' limits only."""
        return (settings.model_dump(exclude=set(SCOPE_FIELDS))
                == self.settings.model_dump(exclude=set(SCOPE_FIELDS)))

    # ------------------------------------------------------------------ admit
    async def admit(self, principal: Principal, body: dict[str, Any], body_bytes: int,
                    team: str | None = None, user: str | None = None) -> Ticket | None:
        """Admits a request or raises RateLimited (or, Redis down and ``fail: closed``,
        Overloaded); None: no limit applies to it."""
        scopes = self.resolve(principal, team, user, body.get("model"))
        if scopes is None:
            return None
        return (self.admit_leased(scopes, body, body_bytes)
                or await self.admit_scopes(scopes, body, body_bytes))

    def admit_leased(self, scopes: list[Scope], body: dict[str, Any], body_bytes: int
                     ) -> SharedTicket | None:
        """The common case, without a coroutine: every scope's leases have room, so no
        Redis call is needed. None when one is (a lease to take, a limit that may
        refuse, Redis found down): :meth:`admit_scopes` decides, and nothing was taken."""
        if self._outage.down or len(self._states) >= self._sweep_at:
            return None
        now, wanted = time.monotonic(), 0
        states: list[_ScopeState] = []
        for ident, _, _, (rpm, tpm, most) in scopes:
            state = self._states.get(ident)
            if state is None or (most and state.inflight >= most) or (
                    rpm and not state.slot(now)):
                return None
            if tpm:
                if not wanted:
                    wanted = math.ceil(estimate(body, body_bytes))
                if wanted > tpm or state.tokens is None or not state.tokens.fits(wanted, now):
                    return None
            states.append(state)
        held: list[_ScopeState] = []
        leases: list[_TokenLease] = []
        requests: tuple[int, int, float] | None = None
        tokens: tuple[int, int, float] | None = None
        for (_, _, _, (rpm, tpm, most)), state in zip(scopes, states, strict=True):
            if most:
                state.inflight += 1
                held.append(state)
            if rpm:
                state.left -= 1
                left = max(0, rpm - state.used) + state.left
                if requests is None or left < requests[1]:
                    requests = (rpm, left, state.reset)
            if tpm and (lease := state.tokens) is not None:
                lease.charged += wanted
                lease.pending += 1
                leases.append(lease)
                left = lease.left(tpm)
                if tokens is None or left < tokens[1]:
                    tokens = (tpm, left, lease.reset)
        headers = [*limit_headers(b"requests", *requests)] if requests is not None else []
        if tokens is not None:
            headers += limit_headers(b"tokens", *tokens)
        return SharedTicket(wanted if leases else 0, headers, tuple(held), leases=tuple(leases))

    async def admit_scopes(self, scopes: list[Scope], body: dict[str, Any], body_bytes: int
                           ) -> Ticket:
        """Admits a request on every one of ``scopes`` or on none."""
        if len(self._states) >= self._sweep_at:  # before: none of this request's goes
            self._sweep()
        states: list[_ScopeState] = []
        wanted, rated = 0, False
        for ident, kind, name, (rpm, tpm, most) in scopes:
            state = self._state(ident)
            if most and state.inflight >= most:
                refuse_parallel(most, whose(kind, name))
            if tpm:
                if not wanted:
                    wanted = math.ceil(estimate(body, body_bytes))
                if wanted > tpm:
                    too_big(wanted, tpm, whose(kind, name))
            rated = rated or bool(rpm or tpm)
            states.append(state)
        held = tuple(s for s, scope in zip(states, scopes, strict=True) if scope[3][2])
        for state in held:  # before any await: the others of this process see it taken
            state.inflight += 1
        try:
            if not rated:
                return SharedTicket(0, [], held)
            if not self._outage.try_now():  # found down a moment ago
                return self._without_redis(scopes, body, body_bytes, held)
            taken: list[tuple[_ScopeState, str]] = []
            granted: list[_TokenLease] = []
            try:
                headers = await self._take(scopes, states, wanted, taken, granted)
            except _DOWN as exc:
                self._give_back(taken, granted, wanted)
                self._outage.failed(exc, "this process's in-memory limits decide"
                                    if self.settings.fail == "open"
                                    else "limited requests get 503 limits_unavailable")
                return self._without_redis(scopes, body, body_bytes, held)
            except BaseException:
                self._give_back(taken, granted, wanted)
                raise
            self._outage.answered()
        except BaseException:
            for state in held:
                state.inflight -= 1
            raise
        return SharedTicket(wanted if granted else 0, headers, held, leases=tuple(granted))

    def _state(self, ident: str) -> _ScopeState:
        state = self._states.get(ident)
        if state is None:
            state = self._states[ident] = _ScopeState()
        return state

    def _sweep(self) -> None:
        """Forgets idle scopes (nothing in flight, no lease in use); a lapsed lease's
        unused slots are handed back first."""
        now, back = time.monotonic(), []
        for ident, state in list(self._states.items()):
            if state.inflight or state.slot(now) or (state.lock and state.lock.locked()) or (
                    state.tokens is not None and state.tokens.pending) or (
                    state.tlock and state.tlock.locked()):
                continue
            if state.left > 0:
                back.append(self._hand_back(ident, state))
            del self._states[ident]
        self._background(back)
        self._sweep_at = max(SWEEP_MIN, 2 * len(self._states))

    async def _take(self, scopes: list[Scope], states: list[_ScopeState], wanted: int,
                    taken: list[tuple[_ScopeState, str]], granted: list[_TokenLease]
                    ) -> list[tuple[bytes, bytes]]:
        """Takes a request slot and reserves the tokens on each scope, noting each in
        ``taken`` and ``granted`` as it goes (given back if another refuses); the
        headers of the tightest scope per kind."""
        headers: list[tuple[bytes, bytes]] = []
        requests: tuple[int, int, float] | None = None
        reserving: list[tuple[Scope, _ScopeState]] = []
        for scope, state in zip(scopes, states, strict=True):
            ident, kind, name, (rpm, tpm, _) = scope
            if rpm:
                left = await self._take_request(state, ident, rpm, kind, name)
                taken.append((state, state.member))
                if requests is None or left < requests[1]:
                    requests = (rpm, left, state.reset)
            if tpm:
                reserving.append((scope, state))
        if requests is not None:
            headers += limit_headers(b"requests", *requests)
        if not reserving:
            return headers
        if len(reserving) == 1:
            results: list[Any] = [await self._reserve(*reserving[0], wanted)]
        else:  # concurrently: one round trip for all
            results = await asyncio.gather(*(self._reserve(*r, wanted) for r in reserving),
                                           return_exceptions=True)
        refused: BaseException | None = None
        tokens: tuple[int, int, float] | None = None
        for result in results:
            if isinstance(result, BaseException):
                if refused is None or (isinstance(result, RateLimited)
                                       and not isinstance(refused, RateLimited)):
                    refused = result  # a refusal is the answer, before a Redis error
                continue
            lease, tpm = result
            granted.append(lease)
            left = lease.left(tpm)
            if tokens is None or left < tokens[1]:
                tokens = (tpm, left, lease.reset)
        if refused is not None:
            raise refused
        assert tokens is not None
        return [*headers, *limit_headers(b"tokens", *tokens)]

    async def _take_request(self, state: _ScopeState, ident: str, rpm: int, kind: str,
                            name: str) -> int:
        """Takes one slot of the scope's lease (a new lease when it is used up or
        lapsed); the requests left to the scope."""
        if not state.slot(time.monotonic()):
            if state.lock is None:
                state.lock = asyncio.Lock()
            async with state.lock:  # one lease call per scope and process at a time
                if not state.slot(time.monotonic()):
                    await self._new_lease(state, ident, rpm, kind, name)
        state.left -= 1
        return max(0, rpm - state.used) + state.left

    async def _new_lease(self, state: _ScopeState, ident: str, rpm: int, kind: str,
                         name: str) -> None:
        if state.left > 0:  # lapsed with slots left: handed back (they are never used)
            self._background([self._hand_back(ident, state)])
            state.left = 0
        size = max(1, int(rpm * self.settings.lease_fraction))
        lease = uuid.uuid4().hex
        granted, used, wait = await self._call("grant", window_key(ident, "rpm"),
                                               self._keep, str(rpm), str(size), "1", lease)
        if granted <= 0:
            refuse(b"requests", rpm, max(wait, 1) / 1000, whose(kind, name))
        state.left = state.size = granted
        state.member = f"{lease}:{granted}"
        state.expires = time.monotonic() + self.settings.lease_seconds
        state.used, state.reset = used, wait / 1000

    @staticmethod
    def _hand_back(ident: str, state: _ScopeState) -> Change:
        member = state.member
        return (window_key(ident, "rpm"), member,
                f"{member.split(':')[0]}:{state.size - state.left}")

    async def _reserve(self, scope: Scope, state: _ScopeState, wanted: int
                       ) -> tuple[_TokenLease, int]:
        """Reserves ``wanted`` tokens of one scope's token lease (a new lease when it has
        no room or lapsed): (the lease, the TPM)."""
        ident, kind, name, (_, tpm, _) = scope
        assert tpm is not None
        lease = state.tokens
        if lease is None or not lease.fits(wanted, time.monotonic()):
            if state.tlock is None:
                state.tlock = asyncio.Lock()
            async with state.tlock:  # one lease call per scope and process at a time
                lease = state.tokens
                if lease is None or not lease.fits(wanted, time.monotonic()):
                    lease = await self._new_token_lease(state, ident, tpm, kind, name, wanted)
        lease.charged += wanted
        lease.pending += 1
        return lease, tpm

    async def _new_token_lease(self, state: _ScopeState, ident: str, tpm: int, kind: str,
                               name: str, wanted: int) -> _TokenLease:
        old = state.tokens
        if old is not None and old.open:
            old.open = False
            if not old.pending:
                self._background([old.final()])
        size = max(wanted, int(tpm * self.settings.lease_fraction))
        key, lease = window_key(ident, "tpm"), uuid.uuid4().hex
        granted, used, wait = await self._call("grant", key, self._keep, str(tpm),
                                               str(size), str(wanted), lease)
        if granted <= 0:
            refuse(b"tokens", tpm, max(wait, 1) / 1000, whose(kind, name))
        state.tokens = _TokenLease(key, f"{lease}:{granted}", granted, used, wait / 1000,
                                   time.monotonic() + self.settings.lease_seconds)
        return state.tokens

    @staticmethod
    def _release(lease: _TokenLease, delta: int) -> Change | None:
        """One reservation of ``lease`` settled (``delta``: used minus reserved); the
        lease's write-back once it is closed with nothing pending. A lease nothing is
        reserved on any more is closed (its room goes back to the others)."""
        lease.charged += delta
        lease.pending -= 1
        if lease.pending > 0:
            return None
        lease.open = False
        return lease.final()

    def _give_back(self, taken: list[tuple[_ScopeState, str]], granted: list[_TokenLease],
                   wanted: int) -> None:
        """What a refused (or failed) request took: its slots back to their leases (a
        slot of a lease since replaced stays used: never more than was granted), its
        reservations back to their token leases."""
        for state, member in taken:
            if state.member == member:
                state.left += 1
        self._background([change for lease in granted
                          if (change := self._release(lease, -wanted)) is not None])

    # ------------------------------------------------------------------ without Redis
    def _without_redis(self, scopes: list[Scope], body: dict[str, Any], body_bytes: int,
                       held: tuple[_ScopeState, ...]) -> Ticket:
        """fail: open, the in-memory buckets of the same scopes (in flight is counted
        here already); fail: closed, 503."""
        if self.on_backend_error is not None:
            self.on_backend_error(self.settings.fail)
        if self.settings.fail == "closed":
            raise Overloaded("This request's rate limits cannot be checked now (their store "
                             "does not answer): retry shortly", code="limits_unavailable",
                             retry_after=1)
        local = self.local.admit_scopes(scopes, body, body_bytes, parallel=False)
        return SharedTicket(local.tokens, local.headers, held, fallback=local)

    # ------------------------------------------------------------------ settle
    def settle(self, ticket: Ticket | GrantType, usage: dict[str, Any] | None) -> None:
        """The request ended: its places in ``max_parallel`` are freed and its reserved
        tokens replaced (in Redis, in the background) by what it used."""
        if ticket.done:
            return
        ticket.done = True
        if not isinstance(ticket, SharedTicket):  # from the in-memory limiter (a reload)
            return
        for state in ticket.held:
            if state.inflight > 0:
                state.inflight -= 1
        if ticket.fallback is not None:
            self.local.settle(ticket.fallback, usage)
            return
        if not ticket.leases:
            return
        delta = 0  # usage unknown: the reservation stands
        if isinstance(usage, dict) and usage:
            delta = math.ceil(used_tokens(usage)) - math.ceil(ticket.tokens)
        self._background([change for lease in ticket.leases
                          if (change := self._release(lease, delta)) is not None])

    def _background(self, changes: list[Change]) -> None:
        """Makes ``changes`` (replacements of members) off the request path."""
        if not changes:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._change(changes))
        except RuntimeError:  # no loop (a test's direct call): nothing to adjust with
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _change(self, changes: list[Change]) -> None:
        for key, member, replacement in changes:
            try:
                await self._call("replace", key, member, replacement)
            except _DOWN as exc:  # the member stands (counted: never more than granted)
                log.debug("rate limits: an adjustment was not made: %s", type(exc).__name__)

    # ------------------------------------------------------------------ Redis
    async def _call(self, which: str, key: str, *args: str) -> list[int]:
        grant, replace = self._scripts()
        script = grant if which == "grant" else replace
        result = await asyncio.wait_for(script(keys=[key], args=list(args)),
                                        self.settings.timeout)
        return [int(v) for v in result] if isinstance(result, list) else [int(result)]

    def _scripts(self) -> tuple[AsyncScript, AsyncScript]:
        """The connection pool and scripts, made on first use (on the serving loop)."""
        if self._grant is None or self._replace is None:
            timeout = self.settings.timeout
            self._redis = Redis.from_url(self.url, socket_timeout=timeout,
                                         socket_connect_timeout=timeout,
                                         retry=Retry(NoBackoff(), 0))
            self._grant = self._redis.register_script(GRANT)
            self._replace = self._redis.register_script(REPLACE)
        return self._grant, self._replace

    async def close(self) -> None:
        """Writes back what the leases did not use (for a second at most: else it lapses
        with the window), then closes the pool."""
        back = []
        for ident, state in self._states.items():
            if state.left > 0 and state.member:
                back.append(self._hand_back(ident, state))
                state.left = 0
            lease = state.tokens
            if lease is not None and lease.open and not lease.pending:
                lease.open = False
                back.append(lease.final())
        self._background(back)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = self._grant = self._replace = None
