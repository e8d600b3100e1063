"""The bounded model slot: FIFO admission, refusal when full, hand-over on release."""

from __future__ import annotations

import asyncio

import pytest

from bastion.backends.slots import Slot
from bastion.errors import Overloaded


async def test_waiters_are_served_in_order_and_full_queue_refuses() -> None:
    slot = Slot("m", queue_size=2)
    await slot.acquire()
    order: list[int] = []

    async def wait(i: int) -> None:
        await slot.acquire()
        order.append(i)

    tasks = [asyncio.create_task(wait(i)) for i in range(2)]
    await asyncio.sleep(0)
    assert slot.waiting == 2
    with pytest.raises(Overloaded) as info:
        await slot.acquire()
    assert info.value.retry_after is not None and info.value.retry_after >= 1
    assert info.value.status == 503
    slot.release(0.5)
    await asyncio.sleep(0)
    slot.release(0.5)
    await asyncio.gather(*tasks)
    assert order == [0, 1]
    assert slot.busy
    slot.release()
    assert not slot.busy


async def test_cancelled_waiter_leaves_the_queue() -> None:
    slot = Slot("m", queue_size=4)
    await slot.acquire()
    task = asyncio.create_task(slot.acquire())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slot.waiting == 0
    slot.release()
    assert not slot.busy


async def test_zero_queue_refuses_while_busy() -> None:
    slot = Slot("m", queue_size=0)
    await slot.acquire()
    with pytest.raises(Overloaded):
        await slot.acquire()


async def test_capacity_admits_that_many_at_once() -> None:
    slot = Slot("m", queue_size=1, capacity=3)
    for _ in range(3):
        await slot.acquire()
    assert slot.busy
    waiter = asyncio.create_task(slot.acquire())
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        await slot.acquire()
    slot.release()
    await waiter
    for _ in range(3):
        slot.release()
    assert not slot.busy


async def test_waiters_are_served_by_priority_then_fair_share() -> None:
    from bastion.routing.fairqueue import Claim

    slot = Slot("m", queue_size=10)
    await slot.acquire()
    order: list[str] = []

    async def wait(label: str, claim: Claim) -> None:
        await slot.acquire(claim)
        order.append(label)
        slot.release()

    claims = [("noisy-0", Claim(tenant="noisy")), ("noisy-1", Claim(tenant="noisy")),
              ("quiet-0", Claim(tenant="quiet")), ("urgent", Claim(priority=0, tenant="noisy"))]
    tasks = []
    for label, claim in claims:
        tasks.append(asyncio.create_task(wait(label, claim)))
        await asyncio.sleep(0)
    slot.release()
    await asyncio.gather(*tasks)
    assert order == ["urgent", "noisy-0", "quiet-0", "noisy-1"]
    assert not slot.busy
