"""The fair queue: priority first, tenants' fair shares within a priority, bounds."""

from __future__ import annotations

import asyncio

import pytest

from bastion.errors import Overloaded, RateLimited
from bastion.routing.fairqueue import Claim, FairQueue


def drain(queue: FairQueue) -> list[str]:
    order = []
    while (ticket := queue.pop()) is not None:
        order.append(ticket.claim.tenant)
    return order


async def test_more_urgent_priority_is_served_first_then_fifo() -> None:
    queue = FairQueue("Model 'm'", limit=10)
    for tenant, priority in [("late", 5), ("batch", 9), ("urgent", 0), ("later", 5)]:
        queue.push(Claim(priority=priority, tenant=tenant))
    assert drain(queue) == ["urgent", "late", "later", "batch"]


async def test_a_burst_from_one_tenant_does_not_starve_another() -> None:
    queue = FairQueue("Model 'm'", limit=100)
    for _ in range(6):
        queue.push(Claim(tenant="noisy"))
    for _ in range(2):
        queue.push(Claim(tenant="quiet"))
    # quiet arrived after noisy's whole burst, yet is served alternately with it
    assert drain(queue)[:4] == ["noisy", "quiet", "noisy", "quiet"]


async def test_weights_set_the_shares() -> None:
    queue = FairQueue("Model 'm'", limit=100)
    for _ in range(12):
        queue.push(Claim(tenant="gold", weight=3.0))
        queue.push(Claim(tenant="free", weight=1.0))
    first = drain(queue)[:8]
    assert first.count("gold") == 6 and first.count("free") == 2


async def test_an_idle_tenant_banks_no_credit() -> None:
    queue = FairQueue("Model 'm'", limit=100)
    queue.push(Claim(tenant="a"))
    queue.pop()
    for _ in range(10):  # b is busy a long while; a is idle meanwhile
        queue.push(Claim(tenant="b"))
    for _ in range(8):
        queue.pop()
    for _ in range(3):
        queue.push(Claim(tenant="a"))
    # a starts at the current virtual time: it shares from now on, no catching up in a burst
    assert drain(queue) == ["a", "b", "a", "b", "a"]


async def test_bounds_refuse_with_retry_after() -> None:
    queue = FairQueue("Model 'm'", limit=3)
    queue.push(Claim(tenant="a", max_queued=1))
    with pytest.raises(RateLimited) as tenant_full:
        queue.push(Claim(tenant="a", max_queued=1), retry_after=4.0)
    assert tenant_full.value.status == 429 and tenant_full.value.retry_after == 4.0
    assert "Tenant 'a'" in tenant_full.value.message
    queue.push(Claim(tenant="b"))
    queue.push(Claim(tenant="c"))
    with pytest.raises(Overloaded) as full:
        queue.push(Claim(tenant="d"), retry_after=2.0)
    assert full.value.status == 503 and full.value.retry_after == 2.0
    assert "Model 'm' is busy" in full.value.message
    assert queue.waiting("a") == 1 and len(queue) == 3


async def test_discarded_and_cancelled_waiters_are_skipped() -> None:
    queue = FairQueue("Model 'm'", limit=10)
    gone = queue.push(Claim(tenant="gone"))
    cancelled = queue.push(Claim(tenant="cancelled"))
    kept = queue.push(Claim(tenant="kept"))
    queue.discard(gone)
    cancelled.future.cancel()  # its task was cancelled; its handler has not run yet
    assert len(queue) == 2
    assert queue.wake_next() is True
    assert kept.future.done() and not kept.future.cancelled()
    queue.discard(cancelled)  # the handler runs: a no-op for a ticket already popped
    assert len(queue) == 0 and queue.waiting("cancelled") == 0
    assert queue.wake_next() is False


async def test_requeued_ticket_keeps_its_place() -> None:
    queue = FairQueue("Model 'm'", limit=10)
    first = queue.push(Claim(tenant="a"))
    queue.push(Claim(tenant="b"))
    assert queue.pop() is first
    queue.requeue(first)  # handed a turn it could not use
    assert queue.pop() is first
    assert not first.future.done()
    await asyncio.sleep(0)
