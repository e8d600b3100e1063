"""Budgets: spend limits per key, team and user over a calendar period, held under
concurrency by reserving each request's worst case before it is forwarded.

Before the call, :meth:`Budgets.reserve` puts the request's worst-case cost on every budget
that applies to it (the key's, its team's, its user's): the prompt (estimated from the
body's size, about 4 bytes a token, which errs high) plus ``max_tokens`` (else
``budgets.assumed_max_tokens``) at the most expensive deployment the alias may route to
(fallbacks included). A request is admitted while a budget's settled spend plus what is
reserved is below its limit, so however many requests run at once, the admitted worst
cases exceed the limit by at most one reservation. When the request ends,
:meth:`Budgets.settle` replaces its reservation with its actual cost, computed exactly as
its trace's cost is (the same price table, tokens and latency), so the settled spend of a
budget is the sum of its traces' costs.

A soft limit notifies once a period (a ``budget.soft`` audit entry, the webhook, the
``bastion_budget_events_total`` metric); reaching the hard limit notifies ``budget.exceeded``
the same way, and later requests get a 402 ``budget_exceeded`` naming the budget and when
it resets, never an amount (a team's spend is not a key holder's business).

This ledger is in memory, per process: on start the spend of the current periods is read
back from the stored traces (:meth:`Budgets.load`; budgeted requests get a 503
``budgets_unavailable`` until it is in). Alone, with ``server.workers`` > 1 each worker
holds its own ledger and allows the whole budget; with ``budgets.redis_url`` (or
``limits.redis_url``) the budgets are held in Redis by
:mod:`bastion.governance.shared_budgets`, and this ledger is what the process falls back on
while Redis does not answer (README, "Budgets").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bastion.config_access import Budget
from bastion.errors import BudgetExceeded, StoreUnavailableError
from bastion.governance.limits import TOKEN_BYTES
from bastion.observe.pricing import Price, PriceBook

SCOPES = ("key", "team", "user")
_COLUMN = {"key": "key_id", "team": "team", "user": "user"}
Event = Callable[[str, "Account"], None]  # (budget.soft | budget.exceeded, account)


def window(period: str, now: float) -> tuple[float, float]:
    """The calendar period (UTC) holding ``now``: [start, end)."""
    if period == "total":
        return 0.0, math.inf
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        start, end = day, day + timedelta(days=1)
    elif period == "weekly":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:  # monthly
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return start.timestamp(), end.timestamp()


@dataclass(slots=True)
class Account:
    """One budget's ledger for its current period."""

    scope: str  # key, team or user
    name: str
    rule: Budget
    start: float
    end: float
    spent: float = 0.0  # settled: the actual cost of the requests that ended
    reserved: float = 0.0  # worst cases of the requests in flight
    notified: set[str] = field(default_factory=set)  # events sent this period

    def roll(self, now: float) -> None:
        if now >= self.end:
            self.start, self.end = window(self.rule.period, now)
            self.spent = 0.0
            self.notified.clear()

    def describe(self, now: float) -> dict[str, Any]:
        self.roll(now)
        return {"scope": self.scope, "name": self.name, "period": self.rule.period,
                "limit": self.rule.limit, "soft": self.rule.soft, "spent": self.spent,
                "reserved": self.reserved, "period_start": self.start,
                "resets_at": None if math.isinf(self.end) else self.end,
                "exceeded": self.spent >= self.rule.limit}


@dataclass(slots=True)
class Hold:
    """What one admitted request reserved, on which accounts."""

    accounts: tuple[Account, ...]
    amount: float
    done: bool = False


class Budgets:
    def __init__(self, on_event: Event | None = None) -> None:
        self._accounts: dict[tuple[str, str], Account] = {}
        self._teams: Mapping[str, Budget] = {}
        self._users: Mapping[str, Budget] = {}
        self._worst: dict[str, Price] = {}  # alias -> its most expensive deployment's price
        self.prices = PriceBook({})
        self.assumed_max_tokens = 4096
        self.currency = "USD"
        self.on_event = on_event
        self.configured = False  # any team or user budget (keys carry their own)
        self.loaded = False  # the current periods' spend is read back from the store

    def configure(self, teams: Mapping[str, Budget], users: Mapping[str, Budget],
                  prices: PriceBook, worst: dict[str, Price], assumed_max_tokens: int,
                  currency: str) -> None:
        """New rules (at start and on a reload): accounts keep what they spent."""
        self._teams, self._users = dict(teams), dict(users)
        self.prices, self._worst = prices, worst
        self.assumed_max_tokens, self.currency = assumed_max_tokens, currency
        self.configured = bool(teams or users)
        for (scope, name), account in list(self._accounts.items()):
            rule = self._rule(scope, name, None)
            if rule is None:
                if not account.reserved:
                    del self._accounts[(scope, name)]
            elif rule != account.rule:
                if rule.period != account.rule.period:
                    account.start, account.end = window(rule.period, time.time())
                account.rule = rule

    @property
    def teams(self) -> Mapping[str, Budget]:
        return self._teams

    @property
    def users(self) -> Mapping[str, Budget]:
        return self._users

    def _rule(self, scope: str, name: str, key_budget: Budget | None) -> Budget | None:
        if scope == "key":
            return key_budget
        rules = self._teams if scope == "team" else self._users
        return rules.get(name) or rules.get("*")

    def _account(self, scope: str, name: str, rule: Budget, now: float) -> Account:
        account = self._accounts.get((scope, name))
        if account is None:
            start, end = window(rule.period, now)
            account = self._accounts[(scope, name)] = Account(scope, name, rule, start, end)
        else:
            if account.rule is not rule and account.rule.period != rule.period:
                account.start, account.end = window(rule.period, now)
            account.rule = rule
            account.roll(now)
        return account

    def applicable(self, key_id: str | None, key_budget: Budget | None, team: str | None,
                   user: str | None, now: float) -> tuple[Account, ...]:
        if not self.configured:  # only keys carry budgets: one dict read
            if key_budget is None or key_id is None:
                return ()
            account = self._accounts.get(("key", key_id))
            if account is not None and account.rule is key_budget and now < account.end:
                return (account,)
            return (self._account("key", key_id, key_budget, now),)
        found: list[Account] = []
        for scope, name in (("key", key_id), ("team", team), ("user", user)):
            if name is None:
                continue
            rule = self._rule(scope, name, key_budget)
            if rule is not None:
                found.append(self._account(scope, name, rule, now))
        return tuple(found)

    def worst_case(self, model: str, body: Mapping[str, Any], body_bytes: int) -> float:
        price = self._worst.get(model)
        if price is None:
            return 0.0
        out = body.get("max_tokens") or body.get("max_completion_tokens")
        if not isinstance(out, int) or isinstance(out, bool) or out <= 0:
            out = self.assumed_max_tokens
        n = body.get("n")
        choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
        return (body_bytes / TOKEN_BYTES * price.input + out * choices * price.output
                ) / 1_000_000

    def reserve(self, key_id: str | None, key_budget: Budget | None, team: str | None,
                user: str | None, model: str, body: Mapping[str, Any], body_bytes: int,
                now: float | None = None) -> Hold | None:
        """Reserves the request's worst case on its budgets, or raises BudgetExceeded
        naming the first one that is spent; None: no budget applies."""
        now = time.time() if now is None else now
        accounts = self.applicable(key_id, key_budget, team, user, now)
        if not accounts:
            return None
        if not self.loaded:
            raise StoreUnavailableError(
                "Budgets are not loaded yet: the trace store is unreachable",
                code="budgets_unavailable", retry_after=1)
        for account in accounts:
            if account.spent + account.reserved >= account.rule.limit:
                self.refuse(account)
        amount = self.worst_case(model, body, body_bytes)
        for account in accounts:
            account.reserved += amount
        return Hold(accounts, amount)

    @staticmethod
    def refuse(account: Account) -> None:
        """Raises the 402 for a spent ``account``."""
        if math.isinf(account.end):
            when = "it does not reset (a total budget)"
        else:
            when = "it resets at " + datetime.fromtimestamp(account.end, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
        what = "this key's budget" if account.scope == "key" else (
            f"the {account.scope} budget '{account.name}'")
        raise BudgetExceeded(f"Budget exceeded: {what} ({account.rule.period}) is spent; "
                             f"{when}")

    def settle(self, hold: Hold, cost: float, now: float | None = None,
               notify: bool = True) -> None:
        """The request ended: its reservation is replaced by what it cost. ``notify``
        False: no event from here (the shared ledger sends them, once for every replica)."""
        if hold.done:
            return
        hold.done = True
        now = time.time() if now is None else now
        for account in hold.accounts:
            account.reserved = max(0.0, account.reserved - hold.amount)
            if now >= account.end:
                account.roll(now)
            account.spent += cost
            rule = account.rule
            if notify and account.spent >= (rule.limit if rule.soft is None else rule.soft):
                self._notify(account)

    def _notify(self, account: Account) -> None:
        rule, spent = account.rule, account.spent
        events = []
        if rule.soft is not None and spent >= rule.soft and "soft" not in account.notified:
            events.append("soft")
        if spent >= rule.limit and "exceeded" not in account.notified:
            events.append("exceeded")
        for event in events:
            account.notified.add(event)
            if self.on_event is not None:
                self.on_event(f"budget.{event}", account)

    def load(self, spend: Callable[[str, float], Iterable[tuple[Any, float]]],
             key_budgets: Iterable[tuple[str, Budget]], now: float | None = None
             ) -> list[tuple[Account, float]]:
        """Reads the current periods' spend back from the traces: ``spend(column, since)``
        gives (value, summed cost) per value of a trace column since a time. Returns each
        account with what its traces cost (:meth:`stored`)."""
        found = self.stored(spend, key_budgets, now)
        for account, amount in found:
            account.spent += amount
        self.loaded = True
        return found

    def stored(self, spend: Callable[[str, float], Iterable[tuple[Any, float]]],
               key_budgets: Iterable[tuple[str, Budget]], now: float | None = None
               ) -> list[tuple[Account, float]]:
        """Each budget's account (made if new) and what the traces of its current period
        cost, as :meth:`load` reads them (the shared ledger seeds Redis with these)."""
        now = time.time() if now is None else now
        found: list[tuple[Account, float]] = []
        for (scope, start), named in self._wanted(key_budgets, now).items():
            sums = {value: cost for value, cost in spend(_COLUMN[scope], start)
                    if value is not None}
            for wanted_name, rule in named:
                for value in ([wanted_name] if wanted_name is not None else list(sums)):
                    if wanted_name is None and self._rule(scope, value, None) is not rule:
                        continue  # a team or user with a budget of its own
                    account = self._account(scope, value, rule, now)
                    if account.start == start:
                        found.append((account, sums.get(value, 0.0)))
        return found

    def _wanted(self, key_budgets: Iterable[tuple[str, Budget]], now: float
                ) -> dict[tuple[str, float], list[tuple[str | None, Budget]]]:
        """Per (scope, current period start), the budgets of that scope (None: '*')."""
        rules: list[tuple[str, str, Budget]] = [
            ("team", n, r) for n, r in self._teams.items()] + [
            ("user", n, r) for n, r in self._users.items()] + [
            ("key", n, r) for n, r in key_budgets]
        wanted: dict[tuple[str, float], list[tuple[str | None, Budget]]] = {}
        for scope, name, rule in rules:
            start, _ = window(rule.period, now)
            wanted.setdefault((scope, start), []).append((None if name == "*" else name, rule))
        return wanted

    def wanted(self, key_budgets: Iterable[tuple[str, Budget]], now: float
               ) -> list[tuple[str, float]]:
        """The (trace column, since) sums :meth:`stored` asks for: what to read from the
        store beforehand (off the event loop), so that the ledger is changed on it."""
        return [(_COLUMN[scope], start) for scope, start in self._wanted(key_budgets, now)]

    def accounts(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        return [a.describe(now) for a in self._accounts.values()]

    def known(self) -> list[Account]:
        return list(self._accounts.values())

    def account(self, scope: str, name: str, key_budget: Budget | None, now: float
                ) -> Account | None:
        """The account of one budget (made if new), None when no rule gives it one."""
        rule = self._rule(scope, name, key_budget)
        return None if rule is None else self._account(scope, name, rule, now)


def worst_prices(prices: PriceBook, deployments_of: Mapping[str, Iterable[str]],
                 fallbacks_of: Mapping[str, Iterable[str]]) -> dict[str, Price]:
    """Per alias, the highest input and output price among the deployments it or one of
    its fallbacks may route to (what a worst-case reservation charges)."""
    out: dict[str, Price] = {}
    for alias in deployments_of:
        names = [*deployments_of[alias]]
        for fallback in fallbacks_of.get(alias, ()):
            names += deployments_of.get(fallback, ())
        found = [prices.prices[n] for n in names if n in prices.prices]
        if found:
            out[alias] = Price(max(p.input for p in found), max(p.output for p in found))
    return out
