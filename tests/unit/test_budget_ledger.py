"""The budget ledger: periods, reservations under concurrency, settlement, notifications,
reading the spend back."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from bastion.config_access import Budget
from bastion.errors import BudgetExceeded, StoreUnavailableError
from bastion.governance.budgets import Budgets, window, worst_prices
from bastion.observe.pricing import Price, PriceBook

T0 = datetime(2026, 12, 9, 15, 30, tzinfo=UTC).timestamp()  # a Wednesday
BODY = {"model": "m", "max_tokens": 100}


def ledger(teams: dict[str, Budget] | None = None, users: dict[str, Budget] | None = None,
           events: list[tuple[str, str, str]] | None = None) -> Budgets:
    def on_event(event: str, account: Any) -> None:
        if events is not None:
            events.append((event, account.scope, account.name))

    b = Budgets(on_event)
    prices = PriceBook({"m": Price(1000.0, 2000.0)})
    b.configure(teams or {}, users or {}, prices, worst_prices(prices, {"m": ["m"]}, {}),
                4096, "USD")
    b.loaded = True
    return b


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def test_periods_are_utc_calendar_periods() -> None:
    start, end = window("daily", T0)
    assert (iso(start), iso(end)) == ("2026-12-09T00:00:00+00:00", "2026-12-10T00:00:00+00:00")
    start, end = window("weekly", T0)
    assert (iso(start), iso(end)) == ("2026-12-07T00:00:00+00:00", "2026-12-14T00:00:00+00:00")
    start, end = window("monthly", T0)
    assert (iso(start), iso(end)) == ("2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00")
    assert window("total", T0) == (0.0, math.inf)


def test_the_worst_case_is_the_prompt_and_max_tokens_at_the_dearest_deployment() -> None:
    prices = PriceBook({"cheap": Price(1.0, 2.0), "dear": Price(10.0, 5.0),
                        "fb": Price(3.0, 30.0)})
    worst = worst_prices(prices, {"a": ["cheap", "dear"], "b": ["fb"], "free": ["x"]},
                         {"a": ["b"]})
    assert worst["a"] == Price(10.0, 30.0) and "free" not in worst
    b = ledger()
    # 400 bytes ~ 100 prompt tokens at 1000/M, 100 output at 2000/M
    assert b.worst_case("m", BODY, 400) == pytest.approx(0.1 + 0.2)
    assert b.worst_case("m", {"model": "m"}, 0) == pytest.approx(4096 * 2000 / 1e6)
    assert b.worst_case("m", {"model": "m", "max_tokens": 10, "n": 3}, 0) == pytest.approx(
        0.06)
    assert b.worst_case("unpriced", BODY, 400) == 0.0


def test_concurrent_reservations_overshoot_by_at_most_one() -> None:
    b = ledger()
    rule = Budget(limit=1.0, period="daily")
    holds = []
    with pytest.raises(BudgetExceeded):
        for _ in range(50):  # all in flight at once: none settles
            holds.append(b.reserve("k1", rule, None, None, "m", BODY, 400, now=T0))
    reserved = sum(h.amount for h in holds)
    assert len(holds) == 4 and reserved >= 1.0  # 0.3 each: 4 admitted, the 5th refused
    assert reserved - holds[0].amount < 1.0  # without the last one it was under the limit
    for h in holds:
        b.settle(h, 0.05, now=T0)
    (account,) = b.accounts(T0)
    assert account["spent"] == pytest.approx(0.2) and account["reserved"] == 0.0


def test_settling_twice_counts_once_and_a_new_period_starts_from_zero() -> None:
    b = ledger()
    rule = Budget(limit=1.0, period="daily")
    hold = b.reserve("k1", rule, None, None, "m", BODY, 400, now=T0)
    assert hold is not None
    b.settle(hold, 0.99, now=T0)
    b.settle(hold, 0.99, now=T0)
    assert b.accounts(T0)[0]["spent"] == pytest.approx(0.99)
    b.reserve("k1", rule, None, None, "m", BODY, 400, now=T0)  # 0.99 < 1: admitted
    with pytest.raises(BudgetExceeded, match="resets at 2026-12-10T00:00:00Z"):
        b.reserve("k1", rule, None, None, "m", BODY, 400, now=T0)
    tomorrow = T0 + 86400
    assert b.reserve("k1", rule, None, None, "m", BODY, 400, now=tomorrow) is not None
    assert b.accounts(tomorrow)[0]["spent"] == 0.0


def test_every_applicable_budget_is_held_and_the_refusal_names_only_the_budget() -> None:
    b = ledger(teams={"alpha": Budget(limit=0.5)}, users={"*": Budget(limit=10.0)})
    hold = b.reserve("k1", Budget(limit=100.0), "alpha", "bob", "m", BODY, 400, now=T0)
    assert hold is not None and [a.scope for a in hold.accounts] == ["key", "team", "user"]
    b.settle(hold, 0.6, now=T0)
    with pytest.raises(BudgetExceeded) as refused:
        b.reserve("k2", None, "alpha", "carol", "m", BODY, 400, now=T0)
    message = refused.value.message
    assert "team budget 'alpha' (monthly)" in message and "0.6" not in message
    assert refused.value.status == 402 and refused.value.code == "budget_exceeded"
    assert b.reserve("k3", None, "beta", None, "m", BODY, 400, now=T0) is None  # no budget
    users = {a["name"]: a for a in b.accounts(T0) if a["scope"] == "user"}
    assert users["bob"]["spent"] == pytest.approx(0.6)  # "*": each user its own


def test_soft_and_hard_limits_notify_once_a_period() -> None:
    events: list[tuple[str, str, str]] = []
    b = ledger(teams={"alpha": Budget(limit=1.0, soft=0.5, period="daily")}, events=events)
    seen = []
    for cost in (0.3, 0.3, 0.1, 0.4):  # 0.6: soft; 1.1: exceeded
        hold = b.reserve(None, None, "alpha", None, "m", BODY, 4, now=T0)
        assert hold is not None
        b.settle(hold, cost, now=T0)
        seen.append(len(events))
    assert seen == [0, 1, 1, 2]
    assert events == [("budget.soft", "team", "alpha"), ("budget.exceeded", "team", "alpha")]
    with pytest.raises(BudgetExceeded):
        b.reserve(None, None, "alpha", None, "m", BODY, 4, now=T0)
    hold = b.reserve(None, None, "alpha", None, "m", BODY, 4, now=T0 + 86400)
    assert hold is not None
    b.settle(hold, 0.7, now=T0 + 86400)  # a new day: soft again
    assert events[-1] == ("budget.soft", "team", "alpha") and len(events) == 3


def test_budgets_refuse_until_the_spend_is_read_back_then_include_it() -> None:
    b = ledger(teams={"alpha": Budget(limit=1.0, period="daily"), "*": Budget(limit=2.0)})
    b.loaded = False
    with pytest.raises(StoreUnavailableError) as down:
        b.reserve(None, None, "alpha", None, "m", BODY, 4, now=T0)
    assert down.value.code == "budgets_unavailable" and down.value.status == 503
    asked: list[tuple[str, float]] = []

    def spend(column: str, since: float) -> list[tuple[Any, float]]:
        asked.append((column, since))
        if since == window("daily", T0)[0]:
            return [("alpha", 0.995), ("beta", 5.0)]
        return [("alpha", 7.0), ("beta", 1.25), (None, 3.0)]

    b.load(spend, [("k1", Budget(limit=1.0, period="total"))], now=T0)
    assert {c for c, _ in asked} == {"team", "key_id"}
    spent = {(a["scope"], a["name"]): a["spent"] for a in b.accounts(T0)}
    assert spent == {("team", "alpha"): 0.995, ("team", "beta"): 1.25, ("key", "k1"): 0.0}
    b.reserve(None, None, "alpha", None, "m", BODY, 4, now=T0)
    with pytest.raises(BudgetExceeded):
        b.reserve(None, None, "alpha", None, "m", BODY, 4, now=T0)


def test_a_reload_keeps_what_was_spent() -> None:
    b = ledger(teams={"alpha": Budget(limit=1.0)})
    hold = b.reserve(None, None, "alpha", None, "m", BODY, 4, now=T0)
    assert hold is not None
    b.settle(hold, 0.9, now=T0)
    prices = PriceBook({"m": Price(1.0, 1.0)})
    b.configure({"alpha": Budget(limit=2.0)}, {}, prices, {"m": Price(1.0, 1.0)}, 10, "EUR")
    (account,) = b.accounts(T0)
    assert account["spent"] == pytest.approx(0.9) and account["limit"] == 2.0
    b.configure({}, {}, prices, {}, 10, "EUR")
    assert b.accounts(T0) == [] and not b.configured


def test_budget_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="soft must be below limit"):
        Budget(limit=1.0, soft=1.0)
    for bad in ({"limit": 0}, {"limit": -1}, {"limit": 1, "period": "hourly"},
                {"limit": 1, "soft": 0}, {"limit": 1, "extra": 1}):
        with pytest.raises(ValueError):
            Budget.model_validate(bad)
