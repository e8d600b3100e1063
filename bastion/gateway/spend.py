"""The budget stage of the gateway: reserve before the call, settle when the request ends,
read the spend back at start, and tell people about breaches.

The ledger itself is :class:`bastion.governance.budgets.Budgets` (plain, in memory, no
I/O). This module connects it to the gateway: the prices and routes of the current
configuration, the trace store (the spend of the current periods, at start), the audit
log, the metrics and the webhook (``budgets.webhook``), all off the request path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from bastion.governance.budgets import Account, Budgets, worst_prices
from bastion.observe.pricing import PriceBook
from bastion.observe.record import request_cost

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.gateway.app import Gateway
    from bastion.gateway.context import RequestContext
    from bastion.routing.router import Router

log = logging.getLogger("bastion.budgets")
LOAD_RETRY_SECONDS = 2.0
WEBHOOK_TIMEOUT = 5.0


class Spend:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.budgets = Budgets(on_event=self._event)
        self._webhook: str | None = None
        self._client: Any = None  # an HTTPClient, made on the first webhook call

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
        if settings.server.workers > 1 and (b.teams or b.users):
            log.warning("budgets are held per worker process: with server.workers=%d each "
                        "worker enforces the whole limit", settings.server.workers)

    # ------------------------------------------------------------------ request path
    def reserve(self, ctx: RequestContext, body: dict[str, Any]) -> None:
        p = ctx.principal
        if p.budget is None and not self.budgets.configured:
            return  # the common case: one attribute read and one bool
        ctx.budget = self.budgets.reserve(p.key_id, p.budget, ctx.team, ctx.user,
                                          body["model"], body, len(ctx.raw_body or b""))

    def settle(self, ctx: RequestContext) -> None:
        hold = ctx.budget
        if hold is not None and not hold.done:
            self.budgets.settle(hold, request_cost(ctx, self.budgets.prices))

    # ------------------------------------------------------------------ start
    async def load_once(self) -> None:
        """Reads the spend once (raises StoreUnavailable when the store is down)."""
        if self.gw.keys.loaded:  # the keys' budgets are read with the keys
            await asyncio.to_thread(self._load)

    async def load_forever(self) -> None:
        """Reads the current periods' spend from the store; retried until it answers."""
        from bastion.store import StoreUnavailable

        while not self.budgets.loaded:
            if not self.gw.keys.loaded:  # the keys' budgets are read with the keys
                await asyncio.sleep(0.1)
                continue
            try:
                await asyncio.to_thread(self._load)
                return
            except StoreUnavailable as exc:
                log.warning("cannot read the budgets' spend from the store (retrying): %s",
                            exc)
            await asyncio.sleep(LOAD_RETRY_SECONDS)

    def _load(self) -> None:
        store = self.gw.store.get()
        until = time.time() + 1

        def spend(column: str, since: float) -> list[tuple[Any, float]]:
            groups = store.stats(since, until, None, [column]).get("groups", [])
            return [(g["key"][column], float(g["cost"] or 0.0)) for g in groups]

        keys = [(p.key_id, p.budget) for p in self.gw.keys.principals()
                if p.budget is not None and p.key_id is not None]
        self.budgets.load(spend, keys)

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
        if self._client is not None:
            await self._client.aclose()
