"""Per-key rate limits shared by every worker and replica, through Redis (``limits.redis_url``).

Each (key, kind) is a sliding window in one sorted set, ``bastion:rl:{<key id>}:rpm`` and
``...:tpm``: one member ``<id>:<count>`` per grant, scored with Redis's clock (``TIME``, never
a client's). One Lua script (EVALSHA) drops what left the window, sums the rest and grants
``min(wanted, limit - used)``. A sliding window, not a token bucket: the bound is what was
admitted over any minute, and a bucket admits its whole burst plus the refill.

Requests: a process takes a *lease* of slots (at most ``lease_fraction`` of the RPM, at
least one) and admits from it without calling Redis until it is used up or lapses
(``lease_seconds``; a lapsed lease's unused slots are handed back). A lease counts in Redis
for the window plus ``lease_seconds``, so a slot used up to ``lease_seconds`` after its
grant is still in every window it falls in: what all the replicas admit never exceeds the
RPM over any window (under a sustained overload a key gets about 60/61 of it).

Tokens: each request's reservation (the prompt estimated from the body's size plus
``max_tokens``, as in :mod:`bastion.governance.limits`) is one all-or-nothing grant; when
the answer's usage is known its member is replaced by what was used (in the background,
scored as the reservation was, so it leaves the window when the reservation would have).

``max_parallel`` stays per process: requests in flight are counted here, not in Redis.

When Redis does not answer (an error, or ``timeout``): ``fail: open`` lets this process's
in-memory :class:`~bastion.governance.limits.Limiter` decide; ``fail: closed`` answers 503
``limits_unavailable``. Either way it is logged once per outage and counted
(``bastion_limit_backend_errors_total``); one request a second tries Redis again, and shared
limiting resumes by itself when it answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bastion.errors import Overloaded, RateLimited
from bastion.governance.keys import Principal
from bastion.governance.limits import (
    Limiter,
    Ticket,
    _duration,
    refuse,
    wanted_tokens,
)

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from bastion.config_access import LimitSettings

log = logging.getLogger("bastion.limits")

RETRY_SECONDS = 1.0  # after a failure, Redis is asked again (by one request) this much later

# KEYS[1] the window; ARGV: ms an entry counts, limit, wanted, all-or-nothing (1/0), member id.
# Returns {granted, used (with the grant), ms until room for `wanted` (refused) or until
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
local granted = math.min(wanted, limit - used)
if granted < 0 or (ARGV[4] == '1' and granted < wanted) then granted = 0 end
local wait = keep
if granted > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. granted)
else
  local need, freed = used + wanted - limit, 0
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
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], score, ARGV[2])
return 1
"""


def window_key(key_id: str, kind: str) -> str:
    return f"bastion:rl:{{{key_id}}}:{kind}"  # the braces: one cluster slot per key


def redacted(url: str) -> str:
    """The URL without its password (for logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def used_tokens(usage: dict[str, Any]) -> int:
    used = usage.get("total_tokens")
    if not isinstance(used, int | float):
        used = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
    return math.ceil(used)


@dataclass(slots=True)
class SharedTicket(Ticket):
    tpm_member: str | None = None  # the reservation's member in the key's TPM window
    fallback: Ticket | None = None  # decided in memory (Redis did not answer, fail: open)


class _KeyState:
    """One key in this process: its lease of request slots, its requests in flight."""

    __slots__ = ("expires", "inflight", "left", "lock", "member", "reset", "size", "used")

    def __init__(self) -> None:
        self.left = 0  # slots of the lease not yet taken
        self.size = 0  # slots the lease had
        self.expires = 0.0  # monotonic time it lapses
        self.member = ""  # its member in the RPM window
        self.used = 0  # the window's count when it was granted (the lease included)
        self.reset = 0.0  # seconds until that window is empty again
        self.inflight = 0
        self.lock: asyncio.Lock | None = None

    def slot(self, now: float) -> bool:
        return self.left > 0 and now < self.expires


class SharedLimiter:
    """The keys' RPM and TPM over every process sharing ``settings.redis_url``."""

    def __init__(self, settings: LimitSettings,
                 on_backend_error: Callable[[str], None] | None = None) -> None:
        assert settings.redis_url is not None
        self.settings = settings
        self.url = settings.redis_url
        self.local = Limiter()  # fail: open, while Redis does not answer
        self.on_backend_error = on_backend_error
        self._keys: dict[str, _KeyState] = {}
        self._redis: Redis | None = None
        self._grant: AsyncScript | None = None
        self._replace: AsyncScript | None = None
        self._down = False
        self._retry_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        window = settings.window_seconds
        self._rpm_keep = str(round((window + settings.lease_seconds) * 1000))
        self._tpm_keep = str(round(window * 1000))

    # ------------------------------------------------------------------ admit
    async def admit(self, principal: Principal, body: dict[str, Any], body_bytes: int
                    ) -> Ticket | None:
        """Admits a request of a limited key or raises RateLimited (or, Redis down and
        ``fail: closed``, Overloaded); None: the key has no limits."""
        limits, key_id = principal.limits, principal.key_id
        if limits is None or key_id is None:
            return None
        rpm, tpm, parallel = limits
        state = self._keys.get(key_id)
        if state is None:
            state = self._keys[key_id] = _KeyState()
        if parallel and state.inflight >= parallel:
            raise RateLimited(f"This key already has {parallel} requests in flight, its "
                              "limit: retry when one has finished", retry_after=1)
        wanted = math.ceil(wanted_tokens(body, body_bytes, tpm)) if tpm else 0
        headers: list[tuple[bytes, bytes]] = []
        member: str | None = None
        if rpm or tpm:
            if self._down and time.monotonic() < self._retry_at:  # asked a moment ago
                return self._without_redis(principal, body, body_bytes, state)
            self._retry_at = time.monotonic() + RETRY_SECONDS  # the others wait for this one
            try:
                if rpm:
                    headers += await self._take_request(state, key_id, rpm)
                if tpm:
                    try:
                        member, more = await self._reserve(key_id, tpm, wanted)
                    except RateLimited:
                        if rpm:
                            state.left += 1  # the request slot is not used after all
                        raise
                    headers += more
            except (OSError, TimeoutError, RedisError) as exc:
                self._failed(exc)
                return self._without_redis(principal, body, body_bytes, state)
            self._answered()
        if parallel:
            state.inflight += 1
        return SharedTicket(key_id, wanted, bool(parallel), headers, tpm_member=member)

    async def _take_request(self, state: _KeyState, key_id: str, rpm: int
                            ) -> list[tuple[bytes, bytes]]:
        if not state.slot(time.monotonic()):
            if state.lock is None:
                state.lock = asyncio.Lock()
            async with state.lock:  # one lease call per key and process at a time
                if not state.slot(time.monotonic()):
                    await self._new_lease(state, key_id, rpm)
        state.left -= 1
        left = max(0, rpm - state.used) + state.left
        return [(b"x-ratelimit-limit-requests", b"%d" % rpm),
                (b"x-ratelimit-remaining-requests", b"%d" % left),
                (b"x-ratelimit-reset-requests", _duration(state.reset))]

    async def _new_lease(self, state: _KeyState, key_id: str, rpm: int) -> None:
        key = window_key(key_id, "rpm")
        if state.left > 0:  # lapsed with slots left: handed back (they are never used)
            self._background(self._call("replace", key, state.member,
                                        f"{state.member.split(':')[0]}:{state.size - state.left}"))
            state.left = 0
        size = max(1, int(rpm * self.settings.lease_fraction))
        ident = uuid.uuid4().hex
        granted, used, wait = await self._call("grant", key, self._rpm_keep, str(rpm),
                                               str(size), "0", ident)
        if granted <= 0:
            refuse(b"requests", rpm, max(wait, 1) / 1000)
        state.left = state.size = granted
        state.member = f"{ident}:{granted}"
        state.expires = time.monotonic() + self.settings.lease_seconds
        state.used, state.reset = used, wait / 1000

    async def _reserve(self, key_id: str, tpm: int, wanted: int
                       ) -> tuple[str, list[tuple[bytes, bytes]]]:
        ident = uuid.uuid4().hex
        granted, used, wait = await self._call("grant", window_key(key_id, "tpm"),
                                               self._tpm_keep, str(tpm), str(wanted), "1",
                                               ident)
        if granted <= 0:
            refuse(b"tokens", tpm, max(wait, 1) / 1000)
        left = max(0, tpm - used)
        return f"{ident}:{granted}", [
            (b"x-ratelimit-limit-tokens", b"%d" % tpm),
            (b"x-ratelimit-remaining-tokens", b"%d" % left),
            (b"x-ratelimit-reset-tokens", _duration(wait / 1000))]

    # ------------------------------------------------------------------ without Redis
    def _failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if not self._down:
            self._down = True
            then = ("this process's in-memory limits decide" if self.settings.fail == "open"
                    else "limited keys get 503 limits_unavailable")
            log.warning("rate limits: Redis at %s does not answer (%s); until it does, %s",
                        redacted(self.url), type(exc).__name__, then)

    def _answered(self) -> None:
        if self._down:
            self._down = False
            log.warning("rate limits: Redis at %s answers again; limits are shared again",
                        redacted(self.url))
        self._retry_at = 0.0

    def _without_redis(self, principal: Principal, body: dict[str, Any], body_bytes: int,
                       state: _KeyState) -> Ticket:
        if self.on_backend_error is not None:
            self.on_backend_error(self.settings.fail)
        if self.settings.fail == "closed":
            raise Overloaded("This key's rate limits cannot be checked now (their store does "
                             "not answer): retry shortly", code="limits_unavailable",
                             retry_after=1)
        assert principal.limits is not None and principal.key_id is not None
        rpm, tpm, parallel = principal.limits
        local = self.local.admit(dataclasses.replace(principal, limits=(rpm, tpm, None)),
                                 body, body_bytes)
        assert local is not None
        if parallel:
            state.inflight += 1
        return SharedTicket(principal.key_id, local.tokens, bool(parallel), local.headers,
                            fallback=local)

    # ------------------------------------------------------------------ settle
    def settle(self, ticket: Ticket, usage: dict[str, Any] | None) -> None:
        """The request ended: its place in ``max_parallel`` is freed and its reserved
        tokens replaced (in Redis, in the background) by what it used."""
        if ticket.done:
            return
        ticket.done = True
        if not isinstance(ticket, SharedTicket):  # from the in-memory limiter (a reload)
            return
        state = self._keys.get(ticket.key_id)
        if ticket.parallel and state is not None and state.inflight > 0:
            state.inflight -= 1
        if ticket.fallback is not None:
            self.local.settle(ticket.fallback, usage)
            return
        if ticket.tpm_member is None or not usage:
            return  # usage unknown: the reservation stands
        used = used_tokens(usage)
        if used != ticket.tokens:
            ident = ticket.tpm_member.split(":")[0]
            self._background(self._call("replace", window_key(ticket.key_id, "tpm"),
                                        ticket.tpm_member, f"{ident}:{used}"))

    def _background(self, call: Any) -> None:
        async def run() -> None:
            try:
                await call
            except (OSError, TimeoutError, RedisError) as exc:  # the reservation stands
                log.debug("rate limits: an adjustment was not made: %s", type(exc).__name__)

        try:
            task = asyncio.get_running_loop().create_task(run())
        except RuntimeError:  # no loop (a test's direct call): nothing to adjust with
            call.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = self._grant = self._replace = None
