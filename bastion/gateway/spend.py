"""The budget stage of the gateway: reserve before the call, settle when the request ends,
read the spend back at start, and tell people about breaches.

The ledger itself is :class:`bastion.governance.budgets.Budgets` (plain, in memory, no
I/O), or, with ``budgets.redis_url`` (else ``limits.redis_url``), the Redis one of
:mod:`bastion.governance.shared_budgets` that every worker and replica share, with the
in-memory ledger behind it for while Redis does not answer (``budgets.fail``). This module
connects them to the gateway: the prices and routes of the current configuration, the
trace store (the spend of the current periods, at start), the audit log, the metrics and
the webhook (``budgets.webhook``), all off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from bastion.errors import StoreUnavailableError
from bastion.governance.budgets import Account, Budgets, worst_prices
from bastion.governance.outage import redacted
from bastion.governance.shared_budgets import DOWN, SharedHold, SharedLedger, Unseeded
from bastion.observe.pricing import PriceBook
from bastion.observe.record import request_cost

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.config_access import Budget, BudgetSettings
    from bastion.context import RequestContext
    from bastion.gateway.app import Gateway
    from bastion.routing.router import Router

log = logging.getLogger("bastion.budgets")
LOAD_RETRY_SECONDS = 2.0
WEBHOOK_TIMEOUT = 5.0
DRAIN_SECONDS = 2.0  # a reseed first waits this long at most for the queued settlements
RESEED_AGAIN = 5.0  # seconds: a reseed is done once more when the last traces are stored
Sums = dict[tuple[str, float], list[tuple[Any, float]]]  # (column, since) -> (value, cost)


def _redis_part(b: BudgetSettings, url: str | None) -> tuple[Any, ...]:
    return (url, b.fail, b.hold_seconds, b.timeout)


class Spend:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.budgets = Budgets(on_event=self._event)
        self.shared: SharedLedger | None = None  # budgets held in Redis
        self._webhook: str | None = None
        self._client: Any = None  # an HTTPClient, made on the first webhook call
        self._reseeding: asyncio.Task[bool] | None = None
        self._reseed_after = 0.0  # monotonic: a failed reseed is not tried again before

    def configure(self, settings: Settings, router: Router) -> None:
        b = settings.budgets
        prices = PriceBook.from_settings(settings)
        deployments = {alias: [d.name for d in route.deployments]
                       for alias, route in router.routes.items()}
        fallbacks = {alias: route.settings.fallbacks for alias, route in router.routes.items()}
        self.budgets.configure(b.teams, b.users, prices,
                               worst_prices(prices, deployments, fallbacks),
                               b.assumed_max_tokens, b.currency)
        self._webhook = b.webhook
        url = b.redis_url or settings.limits.redis_url
        self._apply_shared(b, url)
        if url is None and settings.server.workers > 1 and (b.teams or b.users):
            log.warning("budgets are held per worker process: with server.workers=%d each "
                        "worker enforces the whole limit (set budgets.redis_url to share "
                        "them)", settings.server.workers)

    def _apply_shared(self, b: BudgetSettings, url: str | None) -> None:
        """The Redis ledger for ``url`` (None: in memory), kept when nothing of it changed
        (a reload keeps its queued settlements); a replaced one sends its queue first."""
        old = self.shared
        if old is not None and _redis_part(old.settings, old.url) == _redis_part(b, url):
            return
        if old is not None:
            with contextlib.suppress(RuntimeError):  # no loop: nothing was ever sent
                asyncio.get_running_loop()
                self._later(old.close())
        self.shared = None
        if url is not None:
            self.shared = SharedLedger(b, url, on_event=self._event, on_lost=lambda n: (
                self.gw.metrics.budget_backend_error("lost", n)))

    # ------------------------------------------------------------------ request path
    def reserve(self, ctx: RequestContext, body: dict[str, Any]
                ) -> Coroutine[Any, Any, None] | None:
        """Reserves the request's worst case (or raises 402). In memory it is done on
        return (None); shared, the coroutine to await does it (one Redis round trip)."""
        p = ctx.principal
        if p.budget is None and not self.budgets.configured:
            return None  # the common case: one attribute read and one bool
        if self.shared is None:
            ctx.budget = self.budgets.reserve(p.key_id, p.budget, ctx.team, ctx.user,
                                              body["model"], body, len(ctx.raw_body or b""))
            return None
        accounts = self.budgets.applicable(p.key_id, p.budget, ctx.team, ctx.user,
                                           time.time())
        if not accounts:
            return None
        amount = self.budgets.worst_case(body["model"], body, len(ctx.raw_body or b""))
        ctx.budget = self.shared.reserve_leased(accounts, amount)  # a lease with room
        return None if ctx.budget is not None else self._reserve_shared(ctx, body,
                                                                         accounts, amount)

    async def _reserve_shared(self, ctx: RequestContext, body: dict[str, Any],
                              accounts: tuple[Account, ...], amount: float) -> None:
        shared = self.shared
        assert shared is not None
        if not shared.try_now():  # Redis was found down a moment ago
            return self._without_redis(shared, ctx, body)
        try:
            try:
                ctx.budget = await shared.lease(accounts, amount)
            except Unseeded:  # Redis lost its data: the store's spend goes back first
                if not await self._reseed() and not self.budgets.loaded:
                    raise _not_loaded() from None
                ctx.budget = await shared.lease(accounts, amount, check=False)
        except DOWN:
            return self._without_redis(shared, ctx, body)
        return None

    def _without_redis(self, shared: SharedLedger, ctx: RequestContext,
                       body: dict[str, Any]) -> None:
        fail = shared.settings.fail
        self.gw.metrics.budget_backend_error(fail)
        if fail == "closed":
            raise StoreUnavailableError(
                "This request's budgets cannot be checked now (their store does not "
                "answer): retry shortly", code="budgets_unavailable", retry_after=1)
        p = ctx.principal
        local = self.budgets.reserve(p.key_id, p.budget, ctx.team, ctx.user, body["model"],
                                     body, len(ctx.raw_body or b""))
        if local is not None:
            ctx.budget = shared.hold_without_redis(local)

    def settle(self, ctx: RequestContext) -> None:
        """The request ended: its cost replaces its reservation (shared: in Redis, in the
        background; the local ledger counts it too, for while Redis does not answer)."""
        hold = ctx.budget
        if hold is None or hold.done:
            return
        cost = request_cost(ctx, self.budgets.prices)
        if not isinstance(hold, SharedHold):
            self.budgets.settle(hold, cost)
            return
        self.budgets.settle(hold, cost, notify=False)  # events: claimed in Redis
        if self.shared is not None:
            self.shared.settle(hold, cost)

    # ------------------------------------------------------------------ listing
    async def listing(self) -> tuple[list[dict[str, Any]], bool]:
        """The budgets and their spend this period, and whether the numbers are the
        shared ones (Redis) rather than this process's."""
        now = time.time()
        shared = self.shared
        if shared is None:
            return self.budgets.accounts(now), False
        accounts = {id(a): a for a in self.budgets.known()}
        for key_id, rule in self._key_budgets():
            if (account := self.budgets.account("key", key_id, rule, now)) is not None:
                accounts[id(account)] = account
        wild = [scope for scope, rules in (("team", self.budgets.teams),
                                           ("user", self.budgets.users)) if "*" in rules]
        try:
            for scope, name, period, start in (await shared.scan(wild)) if wild else []:
                account = self.budgets.account(scope, name, None, now)
                if account is not None and (account.rule.period, account.start) == (
                        period, start):
                    accounts[id(account)] = account
            listed = list(accounts.values())
            for account in listed:
                account.roll(now)
            numbers = await shared.read(listed)
        except DOWN:
            return self.budgets.accounts(now), False
        out = []
        for account, (spent, held) in zip(listed, numbers, strict=True):
            account.spent = spent
            row = account.describe(now)
            row.update(reserved=held, exceeded=spent >= account.rule.limit)
            out.append(row)
        return out, True

    # ------------------------------------------------------------------ start
    async def load_once(self) -> None:
        """Reads the spend once (raises StoreUnavailable when the store is down)."""
        if self.gw.keys.loaded:  # the keys' budgets are read with the keys
            await self._load()

    async def load_forever(self) -> None:
        """Reads the current periods' spend from the store; retried until it answers."""
        from bastion.store import StoreUnavailable

        while not self.budgets.loaded:
            if not self.gw.keys.loaded:  # the keys' budgets are read with the keys
                await asyncio.sleep(0.1)
                continue
            try:
                await self._load()
                return
            except StoreUnavailable as exc:
                log.warning("cannot read the budgets' spend from the store (retrying): %s",
                            exc)
            await asyncio.sleep(LOAD_RETRY_SECONDS)

    async def _load(self) -> None:
        now = time.time()
        keys = self._key_budgets()
        sums = await asyncio.to_thread(self._read_store, keys, now)
        found = self.budgets.load(lambda column, since: sums.get((column, since), []),
                                  keys, now)
        if self.shared is not None:
            try:  # raised where Redis has less; not now: the first reserve reseeds
                await self.shared.seed(found)
            except DOWN as exc:
                log.warning("budgets: the spend read from the store is not in Redis yet "
                            "(%s): it goes there once Redis answers", type(exc).__name__)

    def _key_budgets(self) -> list[tuple[str, Budget]]:
        return [(p.key_id, p.budget) for p in self.gw.keys.principals()
                if p.budget is not None and p.key_id is not None]

    def _read_store(self, keys: list[tuple[str, Budget]], now: float) -> Sums:
        """The sums the ledger's load asks for (in a thread: the store blocks)."""
        store = self.gw.store.get()
        until = time.time() + 1
        sums: Sums = {}
        for column, since in self.budgets.wanted(keys, now):
            groups = store.stats(since, until, None, [column]).get("groups", [])
            sums[(column, since)] = [(g["key"][column], float(g["cost"] or 0.0))
                                     for g in groups]
        return sums

    async def _reseed(self) -> bool:
        """Redis answered without its seeding marker (it lost its data): its spend is
        raised to the store's, once for every request that finds it so. True when the
        store answered (and the marker is set again)."""
        task = self._reseeding
        if task is None or task.done():
            if time.monotonic() < self._reseed_after:
                return False  # the store failed a moment ago
            task = self._reseeding = asyncio.get_running_loop().create_task(self._reseed_now())
        return await asyncio.shield(task)

    async def _reseed_now(self, again: bool = True) -> bool:
        """Raises Redis's spend to the store's (never lowers it: max() counts nothing
        twice). The settlements waiting for Redis go there first; and since the traces of
        the requests that ended just now may not be stored yet, it is done once more
        ``RESEED_AGAIN`` seconds later (``again``)."""
        from bastion.store import StoreUnavailable

        shared = self.shared
        assert shared is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(shared.drained(), DRAIN_SECONDS)
        now = time.time()
        keys = self._key_budgets()
        try:
            sums = await asyncio.to_thread(self._read_store, keys, now)
        except StoreUnavailable as exc:
            log.warning("budgets: Redis lost its data and the store does not answer (%s): "
                        "it gets this process's spend until the store does", exc)
            self._reseed_after = time.monotonic() + LOAD_RETRY_SECONDS
            await shared.seed([(a, a.spent) for a in self.budgets.known()], mark=False)
            return False
        for account, amount in self.budgets.stored(
                lambda column, since: sums.get((column, since), []), keys, now):
            account.spent = max(account.spent, amount)
        if again:
            log.warning("budgets: Redis at %s had lost the spend: it is read back from the "
                        "store", redacted(shared.url))
        await shared.seed([(a, a.spent) for a in self.budgets.known()])
        if again:
            self._later(self._reseed_later(shared))
        return True

    async def _reseed_later(self, shared: SharedLedger) -> None:
        await asyncio.sleep(RESEED_AGAIN)
        if self.shared is shared:
            with contextlib.suppress(*DOWN):
                await self._reseed_now(again=False)

    # ------------------------------------------------------------------ breaches
    def _event(self, event: str, account: Account) -> None:
        gw = self.gw
        gw.metrics.budget_event(account.scope, event.removeprefix("budget."))
        detail = account.describe(time.time())
        detail["currency"] = self.budgets.currency
        log.warning("%s: %s budget %r (%s) at %.6f of %.6f %s", event, account.scope,
                    account.name, account.rule.period, account.spent, account.rule.limit,
                    self.budgets.currency)
        self._later(gw.audit.record("gateway", event, f"{account.scope}:{account.name}",
                                    detail))
        if self._webhook is not None:
            self._later(self._post(self._webhook, {"type": event, "at": time.time(),
                                                   **detail}))

    def _later(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.gw.background.add(task)
        task.add_done_callback(self.gw.background.discard)

    async def _post(self, url: str, event: dict[str, Any]) -> None:
        from bastion.httpclient import HTTPClient
        from bastion.httpclient.errors import HTTPClientError

        if self._client is None:
            self._client = HTTPClient(max_connections_per_host=4,
                                      connect_timeout=WEBHOOK_TIMEOUT,
                                      read_timeout=WEBHOOK_TIMEOUT)
        try:
            response = await self._client.request(
                "POST", url, headers=[(b"content-type", b"application/json")],
                body=orjson.dumps(event))
            await response.read()
            if response.status >= 300:
                log.warning("budget webhook answered %d", response.status)
        except (HTTPClientError, OSError, TimeoutError) as exc:
            log.warning("budget webhook failed: %s", type(exc).__name__)

    async def close(self) -> None:
        if self._reseeding is not None and not self._reseeding.done():
            self._reseeding.cancel()
            await asyncio.gather(self._reseeding, return_exceptions=True)
        if self.shared is not None:
            await self.shared.close()
        if self._client is not None:
            await self._client.aclose()


def _not_loaded() -> StoreUnavailableError:
    return StoreUnavailableError("Budgets are not loaded yet: the trace store is unreachable",
                                 code="budgets_unavailable", retry_after=1)
