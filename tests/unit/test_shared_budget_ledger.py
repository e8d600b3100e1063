"""The shared budget ledger's Lua against a real Redis (the shared 127.0.0.1:6379, under a
key prefix of each test's own): reservations from many tasks and several "processes", a
dead process's hold lapsing, all-or-nothing refusals, events once per period, seeding that
never counts twice, settlements retried then lost."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis

from bastion.config_access import Budget, BudgetSettings
from bastion.errors import BudgetExceeded
from bastion.governance import shared_budgets
from bastion.governance.budgets import Account, window
from bastion.governance.shared_budgets import (
    EXPIRE_AFTER,
    SharedHold,
    SharedLedger,
    Unseeded,
    parse_key,
)
from tests.store_helpers import skip_or_fail

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture()
def prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are deleted after."""
    client = redis.Redis.from_url(REDIS, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis is not reachable at {REDIS}: {exc}")
    mine = f"bastion:test:{uuid.uuid4().hex}:budget:"
    yield mine
    for key in client.scan_iter(match=mine + "*", count=1000):
        client.delete(key)
    client.close()


class Ledgers:
    """Ledgers ("processes") sharing one prefix, with the events they sent."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.events: list[tuple[str, str, str]] = []
        self.lost: list[int] = []
        self.made: list[SharedLedger] = []

    def __call__(self, url: str = REDIS, **settings: Any) -> SharedLedger:
        ledger = SharedLedger(BudgetSettings(**settings), url, on_event=self._event,
                              on_lost=self.lost.append, prefix=self.prefix)
        self.made.append(ledger)
        return ledger

    def _event(self, event: str, account: Account) -> None:
        self.events.append((event, account.name, str(account.start)))


@pytest.fixture()
async def ledgers(prefix: str) -> AsyncIterator[Ledgers]:
    made = Ledgers(prefix)
    yield made
    for ledger in made.made:
        await ledger.close()


def account(name: str, limit: float, soft: float | None = None, scope: str = "key",
            period: str = "daily", now: float | None = None) -> Account:
    start, end = window(period, time.time() if now is None else now)
    return Account(scope, name, Budget(limit=limit, soft=soft, period=period), start, end)


async def seeded(ledger: SharedLedger) -> SharedLedger:
    await ledger.seed([])  # the marker: this Redis has the store's spend
    return ledger


async def try_reserve(ledger: SharedLedger, accounts: list[Account], amount: float
                      ) -> SharedHold | None:
    try:
        return await ledger.reserve(accounts, amount)
    except BudgetExceeded:
        return None


async def rounds_until_refused(
        procs: list[SharedLedger], views: list[Account],
        reserve: Callable[[SharedLedger, list[Account], float], Awaitable[SharedHold | None]],
        amount: float, each: int, slow: float) -> int:
    """Rounds of ``each`` concurrent requests over the processes, each taking up to
    ``slow`` seconds and settling at its worst case, until a round gets none; how many
    were answered."""
    answered = 0
    while True:
        async def request(i: int) -> bool:
            p, view = procs[i % len(procs)], views[i % len(procs)]
            hold = await reserve(p, [view], amount)
            if hold is None:
                return False
            await asyncio.sleep(random.uniform(0, slow))
            p.settle(hold, amount)
            return True

        ok = sum(await asyncio.gather(*(request(i) for i in range(each))))
        for p in procs:
            await p.drained()
        answered += ok
        if ok == 0:
            return answered


async def test_many_tasks_on_three_processes_overshoot_by_at_most_one_reservation(
        ledgers: Ledgers) -> None:
    procs = [await seeded(ledgers()) for _ in range(3)]
    amount, limit = 0.07, 1.0
    # everything in flight at once: admitted while spent + held < limit
    views = [account("k1", limit) for _ in procs]  # each process's own Account object
    holds = await asyncio.gather(*(try_reserve(procs[i % 3], [views[i % 3]], amount)
                                   for i in range(200)))
    admitted = [h for h in holds if h is not None]
    assert len(admitted) == 15  # 15 * 0.07 >= 1.0 > 14 * 0.07
    for i, hold in enumerate(admitted):
        procs[i % 3].settle(hold, 0.05)
    for p in procs:
        await p.drained()
    ((spent, held),) = await procs[0].read([views[0]])
    assert spent == pytest.approx(0.75) and held == 0.0
    pool = procs[0]._client().connection_pool
    made = len(pool._available_connections) + len(pool._in_use_connections)
    assert made <= 3, "the reservations of a process go in batches, not a connection each"

    answered = await rounds_until_refused(procs, views, try_reserve, amount, 50, 0.02)
    ((spent, held),) = await procs[1].read([views[1]])
    assert held == 0.0
    assert limit <= spent <= limit + amount, spent
    assert spent == pytest.approx(0.75 + answered * amount)


async def test_the_hold_of_a_process_that_died_stops_counting(ledgers: Ledgers) -> None:
    dead, alive = await seeded(ledgers(hold_seconds=0.4)), ledgers(hold_seconds=0.4)
    a = account("k2", 1.0)
    assert await dead.reserve([a], 0.6) is not None
    assert await alive.reserve([a], 0.5) is not None  # 0.6 held: still under 1.0
    with pytest.raises(BudgetExceeded):
        await alive.reserve([a], 0.3)
    await asyncio.sleep(0.5)  # neither settled: both lapsed
    hold = await alive.reserve([a], 0.9)
    ((spent, held),) = await alive.read([a])
    assert spent == 0.0 and held == pytest.approx(0.9)
    alive.settle(hold, 0.2)
    await alive.drained()
    ((spent, held),) = await alive.read([a])
    assert spent == pytest.approx(0.2) and held == 0.0  # exactly no hold left


async def test_a_refusal_on_one_account_takes_the_holds_back_from_the_others(
        ledgers: Ledgers) -> None:
    ledger = await seeded(ledgers())
    key, team = account("k3", 10.0), account("t3", 1.0, scope="team")
    user = account("u3", 10.0, scope="user")
    await ledger.seed([(team, 1.0)])
    with pytest.raises(BudgetExceeded) as info:
        await ledger.reserve([key, team, user], 0.5)
    assert "the team budget 't3' (daily) is spent" in info.value.message
    assert await ledger.read([key, team, user]) == [(0.0, 0.0), (1.0, 0.0), (0.0, 0.0)]
    assert team.spent == 1.0  # the process's view is Redis's
    hold = await ledger.reserve([key, user], 0.5)
    assert [h for _, h in await ledger.read([key, user])] == [0.5, 0.5]
    ledger.settle(hold, 0.25)
    await ledger.drained()
    assert await ledger.read([key, user]) == [(0.25, 0.0), (0.25, 0.0)]


async def test_a_request_cancelled_while_reserving_leaves_no_hold(ledgers: Ledgers) -> None:
    ledger = await seeded(ledgers())
    a, b = account("k8", 1.0), account("t8", 1.0, scope="team")
    for in_flight in (False, True):
        task = asyncio.create_task(ledger.reserve([a, b], 0.5))
        await asyncio.sleep(0)  # it waits for the next batch
        assert ledger._waiting
        while in_flight and ledger._waiting:  # the batch is sent: its answer not in yet
            await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        while ledger._sender is not None and not ledger._sender.done():
            await asyncio.sleep(0.001)
        assert await ledger.read([a, b]) == [(0.0, 0.0), (0.0, 0.0)], in_flight


async def test_soft_and_hard_events_fire_once_a_period_across_processes(
        ledgers: Ledgers) -> None:
    procs = [await seeded(ledgers()) for _ in range(3)]
    today = [account("t4", 1.0, soft=0.5, scope="team") for _ in procs]
    holds = await asyncio.gather(*(procs[i % 3].reserve([today[i % 3]], 0.01)
                                   for i in range(60)))
    for i, hold in enumerate(holds):
        procs[i % 3].settle(hold, 0.05)  # 3.0 in all: past both, many times
    for p in procs:
        await p.drained()
    start = str(today[0].start)
    assert sorted(ledgers.events) == [("budget.exceeded", "t4", start),
                                      ("budget.soft", "t4", start)]
    assert max(a.spent for a in today) == pytest.approx(3.0)
    # the next day is a new period: its events fire again (once)
    tomorrow = account("t4", 1.0, soft=0.5, scope="team", now=time.time() + 86400)
    for p in procs:
        p.settle(SharedHold((tomorrow,), 0.0, slots=(p.slot(tomorrow),),
                            member=f"{uuid.uuid4().hex}:0", shared=False), 2.0)
        await p.drained()
    assert [e[0] for e in ledgers.events[2:]] == ["budget.soft", "budget.exceeded"]


async def test_seeding_raises_the_spend_never_lowers_it_nor_counts_twice(
        ledgers: Ledgers, prefix: str) -> None:
    first, later = ledgers(), ledgers()
    a = account("k5", 100.0)
    await first.seed([(a, 5.0)])
    await later.seed([(a, 3.0)])  # a replica starting later, its store read older
    assert await first.read([a]) == [(5.0, 0.0)]
    hold = await first.reserve([a], 1.0)
    first.settle(hold, 2.0)
    await first.drained()
    await later.seed([(a, 5.0)])  # the store has not the 2.0 yet: nothing twice
    assert await later.read([a]) == [(7.0, 0.0)]
    await later.seed([(a, 9.5)])  # a settlement Redis never got is in the store
    assert await later.read([a]) == [(9.5, 0.0)]

    client = redis.Redis.from_url(REDIS)
    try:
        ttl = client.ttl(first.slot(a).hash)
        expected = a.end + first.settings.hold_seconds + EXPIRE_AFTER - time.time()
        assert abs(ttl - expected) < 5, (ttl, expected)
        client.delete(prefix + "seeded")  # Redis lost its data (the marker with it)
    finally:
        client.close()
    with pytest.raises(Unseeded):
        await first.reserve([a], 1.0)
    assert await first.read([a]) == [(9.5, 0.0)], "the refused attempt held nothing"
    assert await first.reserve([a], 1.0, check=False) is not None


async def test_a_total_budget_never_expires_and_a_retried_settlement_counts_once(
        ledgers: Ledgers) -> None:
    ledger = await seeded(ledgers())
    a = account("k6", 10.0, period="total")
    assert a.start == 0.0
    hold = await ledger.reserve([a], 1.0)
    ledger.settle(hold, 0.4)
    ledger.settle(hold, 0.4)  # the same settlement again (a retry after a timeout)
    await ledger.drained()
    assert await ledger.read([a]) == [(0.4, 0.0)]
    client = redis.Redis.from_url(REDIS)
    try:
        assert client.ttl(ledger.slot(a).hash) == -1
    finally:
        client.close()


async def test_settlements_are_retried_then_lost_and_counted(
        ledgers: Ledgers, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setattr(shared_budgets, "SETTLE_DELAYS", (0.01, 0.02))
    taken = socket.socket()  # bound, never listening: refused, and no one else gets it
    taken.bind(("127.0.0.1", 0))
    request.addfinalizer(taken.close)
    dead = ledgers(f"redis://127.0.0.1:{taken.getsockname()[1]}/0", timeout=0.2)
    a = account("k7", 1.0)
    assert dead.try_now()
    with pytest.raises(shared_budgets.DOWN):
        await dead.reserve([a], 0.1)
    assert dead.down and not dead.try_now(), "the next request does not wait for Redis"
    for _ in range(3):
        dead.settle(SharedHold((a,), 0.1, slots=(dead.slot(a),), member="x:0.1",
                               shared=False), 0.05)
    assert dead.pending == 3
    await dead.drained()
    assert ledgers.lost == [3] and dead.pending == 0


async def test_a_listing_finds_the_accounts_another_process_made(ledgers: Ledgers) -> None:
    one, other = await seeded(ledgers()), ledgers()
    odd = "a}:daily:5 ü"
    await one.reserve([account(odd, 1.0, scope="team")], 0.1)
    await one.reserve([account("plain", 1.0, scope="user", period="monthly")], 0.1)
    found = sorted(await other.scan(["team", "user"]))
    start_day, _ = window("daily", time.time())
    start_month, _ = window("monthly", time.time())
    assert found == [("team", odd, "daily", start_day),
                     ("user", "plain", "monthly", start_month)]


def test_keys_parse_back_and_other_keys_do_not() -> None:
    ledger = SharedLedger(BudgetSettings(), REDIS)
    for name in ("k", "x:y", "a}:b", "{t}", "ü"):
        slot = ledger.slot(account(name, 1.0, scope="user", period="weekly"))
        assert parse_key(slot.hash) == ("user", name, "weekly", slot.start)
        assert parse_key(slot.holds) is None and parse_key(slot.done) is None
    assert parse_key("bastion:budget:seeded") is None
    assert parse_key("bastion:rl:{k}:rpm") is None
    assert parse_key("bastion:budget:{nocolon}:daily:1") is None


@pytest.mark.parametrize("url", ["", " ", "http://127.0.0.1:6379", "redis://:@127.0.0.1:6379",
                                 "redis://:changeme@h:1"])
def test_bad_redis_urls_are_refused_at_load_naming_budgets(url: str) -> None:
    with pytest.raises(ValueError, match=r"budgets\.redis_url"):
        BudgetSettings(redis_url=url)


async def lease_or_none(ledger: SharedLedger, accounts: list[Account], amount: float
                        ) -> SharedHold | None:
    hold = ledger.reserve_leased(accounts, amount)
    if hold is not None:
        return hold
    try:
        return await ledger.lease(accounts, amount)
    except BudgetExceeded:
        return None


async def test_leases_serve_requests_without_redis_and_hold_to_the_limit(
        ledgers: Ledgers) -> None:
    """A lease (lease_fraction of the limit) serves the next requests of its accounts
    with no Redis call; each request's cost is settled into the spend; the lease's hold
    goes once nothing is pending on it; several processes overshoot by at most one lease
    each, and the spend is exactly the sum of the costs."""
    procs = [await seeded(ledgers(lease_fraction=0.1)) for _ in range(3)]
    limit, amount = 10.0, 0.2  # leases of 1.0: five worst cases each
    views = [account("k-lease", limit) for _ in procs]
    first = await procs[0].lease([views[0]], amount)
    assert first.lease is not None and first.member.endswith(":0")
    ((_, held),) = await procs[0].read([views[0]])
    assert held == pytest.approx(1.0), "the lease is one hold of 1.0"
    more = [procs[0].reserve_leased([views[0]], amount) for _ in range(5)]
    assert all(h is not None for h in more[:4]) and more[4] is None, "room for five"
    for hold in [first, *more[:4]]:
        assert hold is not None
        procs[0].settle(hold, 0.1)
    await procs[0].drained()
    await asyncio.sleep(0.05)  # the lease's release goes with the next batch
    ((spent, held),) = await procs[0].read([views[0]])
    assert spent == pytest.approx(0.5) and held == 0.0, "costs in, the lease's hold out"

    # concurrent load from three processes, each request settling at its worst case
    answered = await rounds_until_refused(procs, views, lease_or_none, amount, 60, 0.01)
    costs = 0.5 + answered * amount
    await asyncio.sleep(0.05)
    ((spent, held),) = await procs[1].read([views[1]])
    assert held == 0.0, "every lease released"
    assert spent == pytest.approx(costs)
    assert limit - 3 * 1.0 <= spent <= limit + 3 * 1.0, spent


async def test_a_closed_ledger_releases_its_leases(ledgers: Ledgers) -> None:
    ledger = await seeded(ledgers(lease_fraction=0.1))
    view = account("k-close", 10.0)
    hold = await ledger.lease([view], 0.2)
    reader = await seeded(ledgers())
    ((_, held),) = await reader.read([view])
    assert held == pytest.approx(1.0)
    await ledger.close()  # its request's cost would settle on its own; the lease goes
    ((_, held),) = await reader.read([view])
    assert held == 0.0 and hold.lease is not None and not hold.lease.open
