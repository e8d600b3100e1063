"""Budgets shared by every worker and replica, through Redis (``budgets.redis_url``, else
``limits.redis_url``): the same reservations as :mod:`bastion.governance.budgets`, held
where every process sees them.

Per account (a key's, a team's or a user's budget) and period, three keys in one cluster
slot (the braces: hash-tagged by the account):

- ``bastion:budget:{<scope>:<name>}:<period>:<start>``, a hash: ``spent`` (the settled
  cost), ``held`` (the sum of the live reservations), ``soft`` and ``exceeded`` (the
  period's events, once claimed);
- ``...:holds``, a sorted set of the reservations in flight, members ``<id>:<amount>``
  scored by when they stop counting: Redis's clock (``TIME``, never a client's) plus
  ``budgets.hold_seconds``, so the holds of a process that died lapse by themselves;
- ``...:done``, the settlements of the last two minutes, so that a settle retried after a
  timeout (which Redis may have run) is counted once.

They expire an hour (plus ``hold_seconds``) after the period ends.

Reserve is one round trip: one script per account, each dropping the lapsed holds and
admitting iff spent + held < limit (adding its hold), and a read of the seeding marker, in
one pipeline with the other reservations of this process that wait for Redis then (one
connection however many requests are in flight). A refusal on one account takes the hold
back from the others (all or nothing), as does a request cancelled meanwhile: the admitted
worst cases of every replica exceed a limit by at most one reservation. Settle is
queued and sent in the background (many requests' settlements in one pipeline), retried
when Redis does not answer; a settlement that fails every try is logged and counted lost.
A settle that brings the spend to the soft limit or the limit claims the period's event
(``HSETNX``): the process that claims it sends it (audit log, webhook, metric), no other.

Leases: a process reserves for a set of accounts (a key's, its team's, its user's) not
one request's worst case but a *lease* of ``budgets.lease_fraction`` of the smallest of
their limits (at least the request's worst case), one hold like any other; the next
requests with the same accounts reserve their worst cases from it without calling Redis,
while it has room and for ``LEASE_SECONDS``. Their costs are settled into ``spent`` as
before but summed: the costs of one lease's requests that wait for the sender go as one
settlement (its own id, no hold). What a request cost counts against the lease too, so
a lease admits at most its size in worst cases and costs. The lease's hold is released
once it is closed (lapsed, out of room) with nothing pending, or as soon as nothing is
reserved on it, and at shutdown. While a lease is open its hold and
the costs settled under it both count (a process is refused early by at most one lease;
never late): the admitted worst cases of every process exceed a limit by at most one
lease each. A process killed with a lease open leaves its hold for ``hold_seconds``.

Seeding: the current periods' spend is read from the stored traces at start and each
account's ``spent`` is raised to it where Redis has less (``max``, a generalized SET NX:
Redis, which counts a settlement before its trace is stored, normally has more, so a replica
that starts later counts nothing twice, and a settlement Redis never got is made up for),
then the marker ``bastion:budget:seeded`` is set. A reserve that finds no marker (Redis
restarted empty, or was flushed) has the process reseed from the store and reserve again
(:class:`bastion.gateway.spend.Spend`, which holds the store).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from bastion.governance.budgets import Account, Budgets, Hold
from bastion.governance.outage import Outage, redacted

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from bastion.config_access import BudgetSettings

log = logging.getLogger("bastion.budgets")

PREFIX = "bastion:budget:"
DOWN = (OSError, TimeoutError, RedisError)  # Redis did not answer
EXPIRE_AFTER = 3600  # seconds a period's keys outlive it (plus hold_seconds)
DONE_MS = 120_000  # a settlement is remembered this long (its retries are well within it)
SETTLE_DELAYS = (0.5, 1.0, 2.0, 4.0)  # between the tries of a settlement: then it is lost
SETTLE_BATCH = 200  # settlements sent in one pipeline
QUEUE_BOUND = 100_000  # settlements waiting for Redis at most (the oldest are lost)
CLOSE_SECONDS = 3.0  # at shutdown, the queue is sent for this long at most
LOST_LOG_SECONDS = 10.0  # lost settlements are logged at most this often
SCAN_LIMIT = 10_000  # accounts a listing finds by scanning Redis at most
PERIODS = ("daily", "weekly", "monthly", "total")
LEASE_SECONDS = 1.0  # a lease is reserved from this long at most

_LIB = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function amount(member)
  return tonumber(string.match(member, ':([^:]+)$')) or 0
end
-- members left KEYS[2]: their amounts leave `held` (exactly 0 once no hold is left)
local function unhold(members)
  if redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('HDEL', KEYS[1], 'held')
    return
  end
  local sum = 0
  for _, m in ipairs(members) do sum = sum + amount(m) end
  if sum ~= 0 then
    redis.call('HINCRBYFLOAT', KEYS[1], 'held', string.format('%.17g', -sum))
  end
end
local function prune(now)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    unhold(gone)
  end
end
local function expire(at)
  if at > 0 then
    for _, k in ipairs(KEYS) do redis.call('EXPIREAT', k, at) end
  end
end
"""

# KEYS: hash, holds. ARGV: limit, member (<id>:<amount>), ms it counts, expire-at (0: never).
# Returns {admitted 1/0, spent, held (with the new hold)}, amounts as strings (exact).
RESERVE = _LIB + """
local now = now_ms()
prune(now)
local got = redis.call('HMGET', KEYS[1], 'spent', 'held')
local spent, held = got[1] or '0', got[2] or '0'
if tonumber(spent) + tonumber(held) >= tonumber(ARGV[1]) then
  return {0, spent, held}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
held = redis.call('HINCRBYFLOAT', KEYS[1], 'held', string.match(ARGV[2], ':([^:]+)$'))
expire(tonumber(ARGV[4]))
return {1, spent, held}
"""

# KEYS: hash, holds. ARGV: member. A refused request's hold on the accounts that admitted it.
RELEASE = _LIB + """
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then unhold({ARGV[1]}) end
return 1
"""

# KEYS: hash, holds, done. ARGV: member, cost, limit, soft ('' none), expire-at.
# Returns {spent, events claimed (soft, exceeded)...}.
SETTLE = _LIB + """
local now = now_ms()
local id = string.match(ARGV[1], '^([^:]+)')
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZADD', KEYS[3], 'NX', now + DONE_MS, id) == 0 then
  return {redis.call('HGET', KEYS[1], 'spent') or '0'}
end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then unhold({ARGV[1]}) end
local spent = redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[2])
local s = tonumber(spent)
local reply = {spent}
if ARGV[4] ~= '' and s >= tonumber(ARGV[4]) and redis.call('HSETNX', KEYS[1], 'soft', '1') == 1 then
  table.insert(reply, 'soft')
end
if s >= tonumber(ARGV[3]) and redis.call('HSETNX', KEYS[1], 'exceeded', '1') == 1 then
  table.insert(reply, 'exceeded')
end
expire(tonumber(ARGV[5]))
return reply
""".replace("DONE_MS", str(DONE_MS))

# KEYS: hash. ARGV: spent per the store, expire-at. Raises spent to it (never lowers it).
SEED = _LIB + """
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
if tonumber(ARGV[1]) > spent then
  redis.call('HSET', KEYS[1], 'spent', ARGV[1])
  expire(tonumber(ARGV[2]))
  return 1
end
return 0
"""

# KEYS: hash, holds. Returns {spent, held} (the lapsed holds dropped first).
READ = _LIB + """
prune(now_ms())
local got = redis.call('HMGET', KEYS[1], 'spent', 'held')
return {got[1] or '0', got[2] or '0'}
"""

_SCRIPTS = {"reserve": RESERVE, "release": RELEASE, "settle": SETTLE, "seed": SEED,
            "read": READ}


class Unseeded(Exception):
    """Redis has no seeding marker (it restarted empty or was flushed): the spend must be
    read from the store into it before it can decide."""


class Slot(NamedTuple):
    """Where one account's current period lives in Redis."""

    hash: str
    holds: str
    done: str
    start: float
    expire_at: int  # unix seconds (0: a total budget, never)


@dataclass(slots=True)
class SharedHold(Hold):
    """A reservation made in Redis (``shared``), or by this process's ledger while Redis
    did not answer (``amount`` is then reserved in that ledger, and only the settlement
    goes to Redis)."""

    slots: tuple[Slot, ...] = ()  # the periods reserved in: a settlement goes there
    member: str = ""  # <id>:<worst case>, in each account's holds
    shared: bool = True
    lease: _Lease | None = None  # reserved from a lease (its member: <id>:0, no hold)
    leased: float = 0.0  # the worst case it reserved there


class _Lease:
    """A hold of a set of accounts that requests reserve their worst cases from."""

    __slots__ = ("charged", "expires", "key", "member", "open", "pending", "size", "slots")

    def __init__(self, key: tuple[Any, ...], slots: tuple[Slot, ...], member: str,
                 size: float, expires: float) -> None:
        self.key, self.slots, self.member, self.size = key, slots, member, size
        self.expires = expires  # monotonic time it lapses
        self.charged = 0.0  # the worst cases in flight plus the costs settled
        self.pending = 0  # requests not settled yet
        self.open = True

    def fits(self, amount: float, now: float) -> bool:
        return (self.open and now < self.expires  # (sums of floats: 1e-9 of slack)
                and self.charged + amount <= self.size * (1 + 1e-9))


_Call = tuple[str, list[str], list[str]]  # script, keys, args


@dataclass(slots=True)
class _Waiter:
    calls: list[_Call]
    marker: bool  # the seeding marker is read with them
    future: asyncio.Future[list[Any]] | None  # None: nobody waits (a release)


@dataclass(slots=True)
class _Settlement:
    hold: SharedHold
    cost: float
    tries: int = 0


def _releases(calls: list[_Call], replies: list[Any]) -> list[_Call]:
    """What takes back the holds that the reserve ``calls`` made (``replies``)."""
    return [("release", keys, [args[1]]) for (name, keys, args), reply
            in zip(calls, replies, strict=True) if name == "reserve" and int(reply[0]) == 1]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_key(key: str, prefix: str = PREFIX) -> tuple[str, str, str, float] | None:
    """(scope, name, period, start) of an account's hash key; None for another key."""
    if not key.startswith(prefix + "{"):
        return None
    account, closed, rest = key[len(prefix) + 1:].rpartition("}:")
    period, _, start = rest.partition(":")
    scope, colon, name = account.partition(":")
    if not closed or not colon or period not in PERIODS or not start.isdigit():
        return None
    return scope, name, period, float(start)


class SharedLedger:
    """The budgets' reservations and spend over every process sharing ``url``."""

    def __init__(self, settings: BudgetSettings, url: str,
                 on_event: Callable[[str, Account], None] | None = None,
                 on_lost: Callable[[int], None] | None = None,
                 prefix: str = PREFIX) -> None:
        self.settings = settings
        self.url = url
        self.prefix = prefix
        self.marker = prefix + "seeded"
        self.on_event = on_event
        self.on_lost = on_lost
        self._hold_ms = str(round(settings.hold_seconds * 1000))
        self._redis: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._queue: collections.deque[_Settlement] = collections.deque()
        self._flusher: asyncio.Task[None] | None = None
        self._sending: list[_Settlement] = []  # the batch being sent
        self._wake = asyncio.Event()  # Redis answers again: the queue is sent now
        self._waiting: list[_Waiter] = []  # reservations for the next batch
        self._sender: asyncio.Task[None] | None = None
        self.outage = Outage(log, "budgets", url)
        self._lost = 0  # lost settlements not logged yet
        self._lost_logged_at = -math.inf
        self._leases: dict[tuple[Any, ...], _Lease] = {}  # by the accounts' periods
        self._summing: dict[tuple[Any, ...], _Settlement] = {}  # queued, not sent yet
        self._ids = itertools.count()
        self._id_prefix = uuid.uuid4().hex[:20]  # with a count: a settlement's id

    # ------------------------------------------------------------------ keys
    def slot(self, account: Account) -> Slot:
        base = (f"{self.prefix}{{{account.scope}:{account.name}}}:{account.rule.period}:"
                f"{int(account.start)}")
        end = account.end
        expire_at = 0 if math.isinf(end) else int(end + self.settings.hold_seconds) + EXPIRE_AFTER
        return Slot(base, base + ":holds", base + ":done", account.start, expire_at)

    # ------------------------------------------------------------------ reserve
    async def reserve(self, accounts: Sequence[Account], amount: float, check: bool = True
                      ) -> SharedHold:
        """Holds ``amount`` on every account or none; raises BudgetExceeded naming the first
        account that is spent, Unseeded (``check``) when Redis lost its data, a Redis or
        OS error when Redis does not answer. The accounts' ``spent`` become Redis's."""
        slots = tuple(self.slot(a) for a in accounts)
        member = f"{uuid.uuid4().hex}:{amount!r}"
        calls: list[_Call] = [
            ("reserve", [s.hash, s.holds],
             [repr(a.rule.limit), member, self._hold_ms, str(s.expire_at)])
            for a, s in zip(accounts, slots, strict=True)]
        replies = await self._submit(calls, check)
        seeded = replies.pop(0) is not None if check else True
        admitted = [int(r[0]) == 1 for r in replies]
        for account, reply in zip(accounts, replies, strict=True):
            account.spent = float(_text(reply[1]))
        if not seeded or not all(admitted):
            undo = _releases(calls, replies)
            if undo:
                await self._submit(undo, False)
            if not seeded:
                raise Unseeded
            Budgets.refuse(accounts[admitted.index(False)])
        return SharedHold(tuple(accounts), 0.0, slots=slots, member=member)

    def reserve_leased(self, accounts: Sequence[Account], amount: float
                       ) -> SharedHold | None:
        """The common case, without Redis: ``amount`` reserved from the open lease of
        these accounts. None when there is none with room (:meth:`lease` asks Redis)."""
        if self.down:
            return None
        lease = self._leases.get(tuple((a.scope, a.name, a.start) for a in accounts))
        if lease is None or not lease.fits(amount, time.monotonic()):
            return None
        for account in accounts:
            if account.spent >= account.rule.limit:  # as Redis last said: it decides
                return None
        return self._from(lease, accounts, amount)

    def _from(self, lease: _Lease, accounts: Sequence[Account], amount: float
              ) -> SharedHold:
        lease.charged += amount
        lease.pending += 1
        return SharedHold(tuple(accounts), 0.0, slots=lease.slots,
                          member=f"{self._id_prefix}{next(self._ids)}:0", lease=lease,
                          leased=amount)

    async def lease(self, accounts: Sequence[Account], amount: float, check: bool = True
                    ) -> SharedHold:
        """Reserves ``amount`` from a new lease of these accounts (or, with
        ``lease_fraction`` 0 or a lease no larger than ``amount``, the request's own
        hold): raises as :meth:`reserve`."""
        size = self.settings.lease_fraction * min(a.rule.limit for a in accounts)
        if size <= amount:
            return await self.reserve(accounts, amount, check)
        held = await self.reserve(accounts, size, check)
        key = tuple((a.scope, a.name, a.start) for a in accounts)
        old = self._leases.get(key)
        if old is not None:
            self._close(old)
        lease = self._leases[key] = _Lease(key, held.slots, held.member, size,
                                           time.monotonic() + LEASE_SECONDS)
        return self._from(lease, accounts, amount)

    def _close(self, lease: _Lease) -> None:
        """No more reservations from ``lease``; its hold released once nothing is
        pending on it."""
        lease.open = False
        if self._leases.get(lease.key) is lease:
            del self._leases[lease.key]
        if lease.pending <= 0 and lease.member:
            calls: list[_Call] = [("release", [s.hash, s.holds], [lease.member])
                                  for s in lease.slots]
            lease.member = ""  # released once
            self._waiting.append(_Waiter(calls, False, None))
            with contextlib.suppress(RuntimeError):  # no loop: the hold lapses by itself
                if self._sender is None or self._sender.done():
                    self._sender = asyncio.get_running_loop().create_task(self._send())

    # Reservations are sent in batches: the requests that arrive while one pipeline is out
    # go together in the next, so a process keeps one connection for them however many
    # requests are in flight, and each waits at most two round trips.
    async def _submit(self, calls: list[_Call], marker: bool) -> list[Any]:
        waiter = _Waiter(calls, marker, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())
        assert waiter.future is not None
        return await waiter.future

    async def _send(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            marker = any(w.marker for w in batch)
            calls = [call for w in batch for call in w.calls]
            try:
                replies = await self._run(calls, self.marker if marker else None)
            except Exception as exc:  # noqa: BLE001 - each waiter gets it (Redis down: its own)
                for w in batch:
                    if w.future is not None and not w.future.done():
                        w.future.set_exception(exc)
                continue
            except asyncio.CancelledError:  # closed
                for w in batch + self._waiting:
                    if w.future is not None:
                        w.future.cancel()
                raise
            seen = replies.pop(0) if marker else None
            at = 0
            for w in batch:
                mine, at = replies[at:at + len(w.calls)], at + len(w.calls)
                if w.future is None:
                    continue
                if w.future.done():  # its request was cancelled: nobody settles its holds
                    if undo := _releases(w.calls, mine):
                        self._waiting.append(_Waiter(undo, False, None))
                else:
                    w.future.set_result([seen, *mine] if w.marker else mine)

    def hold_without_redis(self, local: Hold) -> SharedHold:
        """The hold this process's ledger made (Redis did not answer): only its settlement
        goes to Redis."""
        return SharedHold(local.accounts, local.amount,
                          slots=tuple(self.slot(a) for a in local.accounts),
                          member=f"{uuid.uuid4().hex}:0", shared=False)

    # ------------------------------------------------------------------ settle
    def settle(self, hold: SharedHold, cost: float) -> None:
        """Queues the request's settlement (its hold removed, its cost added) for the
        background sender; without a running loop (a direct call) there is none to send
        it, and it is counted lost."""
        lease = hold.lease
        if lease is not None:  # its cost counts against the lease too
            lease.charged += cost - hold.leased
            lease.pending -= 1
            if lease.pending <= 0:  # nothing reserved on it: its room goes back at once
                self._close(lease)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._lose(1, "no event loop")
            return
        if lease is not None:  # the costs of a lease's requests go to Redis summed
            if (queued := self._summing.get(lease.key)) is not None:
                queued.cost += cost
                return
            queued = self._summing[lease.key] = _Settlement(hold, cost)
            self._queue.append(queued)
        else:
            self._queue.append(_Settlement(hold, cost))
        if len(self._queue) > QUEUE_BOUND:
            self._unsum(self._queue.popleft())
            self._lose(1, "too many settlements waiting for Redis")
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())

    async def _flush(self) -> None:
        failures = 0
        while self._queue:
            if failures:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):  # or at once when Redis is back
                    await asyncio.wait_for(
                        self._wake.wait(), SETTLE_DELAYS[min(failures, len(SETTLE_DELAYS)) - 1])
            batch = self._sending = [
                self._queue.popleft() for _ in range(min(SETTLE_BATCH, len(self._queue)))]
            for item in batch:  # sent as they are: later costs make new ones
                self._unsum(item)
            calls = [("settle", [s.hash, s.holds, s.done],
                      [item.hold.member, repr(item.cost), repr(a.rule.limit),
                       "" if a.rule.soft is None else repr(a.rule.soft), str(s.expire_at)])
                     for item in batch
                     for a, s in zip(item.hold.accounts, item.hold.slots, strict=True)]
            try:
                replies = await self._run(calls)
            except DOWN as exc:
                self._sending = []
                failures += 1
                for item in batch:
                    item.tries += 1
                kept = [item for item in batch if item.tries <= len(SETTLE_DELAYS)]
                if len(kept) < len(batch):
                    self._lose(len(batch) - len(kept), type(exc).__name__)
                self._queue.extendleft(reversed(kept))
                continue
            self._sending = []
            failures = 0
            it = iter(replies)
            for item in batch:
                for account, slot in zip(item.hold.accounts, item.hold.slots, strict=True):
                    self._settled(account, slot, next(it))

    def _unsum(self, item: _Settlement) -> None:
        lease = item.hold.lease
        if lease is not None and self._summing.get(lease.key) is item:
            del self._summing[lease.key]

    def _settled(self, account: Account, slot: Slot, reply: Any) -> None:
        if account.start == slot.start:  # the period it was reserved in is still current
            account.spent = float(_text(reply[0]))
            for event in reply[1:]:
                account.notified.add(_text(event))
                if self.on_event is not None:
                    self.on_event(f"budget.{_text(event)}", account)

    def _lose(self, count: int, why: str) -> None:
        """Counts settlements given up on; logged at most every LOST_LOG_SECONDS."""
        self._lost += count
        if time.monotonic() >= self._lost_logged_at + LOST_LOG_SECONDS:
            self._lost_logged_at = time.monotonic()
            log.warning("budgets: %d settlement(s) did not reach Redis at %s (last: %s): "
                        "their cost is not in the shared spend", self._lost,
                        redacted(self.url), why)
            self._lost = 0
        if self.on_lost is not None:
            self.on_lost(count)

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._sending)

    async def drained(self) -> None:
        """Returns once every settlement queued so far is sent or lost."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    # ------------------------------------------------------------------ seed, read, scan
    async def seed(self, found: Iterable[tuple[Account, float]], mark: bool = True) -> None:
        """Raises each account's spent in Redis to ``amount`` where Redis has less, then
        (``mark``) sets the seeding marker."""
        calls: list[_Call] = []
        for account, amount in found:
            if amount > 0:
                s = self.slot(account)
                calls.append(("seed", [s.hash], [repr(amount), str(s.expire_at)]))
        for i in range(0, len(calls), SETTLE_BATCH):
            await self._run(calls[i:i + SETTLE_BATCH])
        if mark:
            try:
                await asyncio.wait_for(self._client().set(self.marker, str(time.time())),
                                       self.settings.timeout)
            except DOWN as exc:
                self.failed(exc)
                raise

    async def read(self, accounts: Sequence[Account]) -> list[tuple[float, float]]:
        """Each account's (spent, held) in Redis."""
        calls: list[_Call] = []
        for account in accounts:
            s = self.slot(account)
            calls.append(("read", [s.hash, s.holds], []))
        replies = []
        for i in range(0, len(calls), SETTLE_BATCH):
            replies += await self._run(calls[i:i + SETTLE_BATCH])
        return [(float(_text(r[0])), max(0.0, float(_text(r[1])))) for r in replies]

    async def scan(self, scopes: Iterable[str]) -> list[tuple[str, str, str, float]]:
        """The accounts Redis holds in ``scopes`` (another replica may have made them)."""
        found: list[tuple[str, str, str, float]] = []
        client = self._client()
        for scope in scopes:
            async for raw in client.scan_iter(match=f"{self.prefix}{{{scope}:*", count=1000):
                parsed = parse_key(_text(raw), self.prefix)
                if parsed is not None and parsed[0] == scope:
                    found.append(parsed)
                    if len(found) >= SCAN_LIMIT:
                        return found
        return found

    # ------------------------------------------------------------------ without Redis
    @property
    def down(self) -> bool:
        return self.outage.down

    def try_now(self) -> bool:
        """False while Redis was found down less than a second ago (:class:`Outage`)."""
        return self.outage.try_now()

    def failed(self, exc: BaseException) -> None:
        self.outage.failed(exc, "this process's in-memory ledger decides"
                           if self.settings.fail == "open"
                           else "budgeted requests get 503 budgets_unavailable")

    def answered(self) -> None:
        if self.outage.answered():
            self._wake.set()  # the settlements waiting for Redis go now

    # ------------------------------------------------------------------ Redis
    async def _run(self, calls: Sequence[_Call],
                   marker: str | None = None) -> list[Any]:
        """One round trip: the scripts (and a GET of ``marker``) in one pipeline; a script
        Redis does not know yet is loaded and its calls sent again. Whether Redis answered
        is noted (logged once per outage)."""
        try:
            replies = await self._pipeline(calls, marker)
        except DOWN as exc:
            self.failed(exc)
            raise
        self.answered()
        return replies

    async def _pipeline(self, calls: Sequence[_Call],
                        marker: str | None) -> list[Any]:
        client = self._client()
        pipe = client.pipeline(transaction=False)
        if marker is not None:
            pipe.get(marker)
        for name, keys, args in calls:
            pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)
        replies = await asyncio.wait_for(pipe.execute(raise_on_error=False),
                                         self.settings.timeout)
        offset = 0 if marker is None else 1
        missing = [i for i, r in enumerate(replies[offset:]) if isinstance(r, NoScriptError)]
        if missing:
            for name in {calls[i][0] for i in missing}:
                await asyncio.wait_for(client.script_load(_SCRIPTS[name]),
                                       self.settings.timeout)
            again = client.pipeline(transaction=False)
            for i in missing:
                name, keys, args = calls[i]
                again.evalsha(self._scripts[name].sha, len(keys), *keys, *args)
            redone = await asyncio.wait_for(again.execute(raise_on_error=False),
                                            self.settings.timeout)
            for i, reply in zip(missing, redone, strict=True):
                replies[offset + i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return list(replies)

    def _client(self) -> Redis:
        """The connection pool and scripts, made on first use (on the serving loop)."""
        if self._redis is None:
            timeout = self.settings.timeout
            self._redis = Redis.from_url(self.url, socket_timeout=timeout,
                                         socket_connect_timeout=timeout,
                                         retry=Retry(NoBackoff(), 0))
            self._scripts = {name: self._redis.register_script(source)
                             for name, source in _SCRIPTS.items()}
        return self._redis

    async def close(self) -> None:
        """Releases the leases, sends what is queued (for a few seconds at most), then
        closes the pool."""
        for lease in list(self._leases.values()):
            lease.pending = 0  # what is in flight settles its cost on its own
            self._close(lease)
        if self._sender is not None and not self._sender.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._sender), CLOSE_SECONDS)
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._flusher is not None and not self._flusher.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._flusher), CLOSE_SECONDS)
            except TimeoutError:
                self._flusher.cancel()
                await asyncio.gather(self._flusher, return_exceptions=True)
        left = len(self._queue) + len(self._sending)
        if left:
            self._lose(left, "the gateway stopped")
            self._queue.clear()
            self._summing.clear()
            self._sending = []
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
            self._scripts = {}
