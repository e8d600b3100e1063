"""Bounded admission to a resource that serves ``capacity`` requests at a time (an
in-process model: one for the serial path, N for batched generation).

Requests wait in a :class:`~bastion.routing.fairqueue.FairQueue`: the most urgent priority
first, tenants sharing each priority fairly, FIFO within a tenant. When ``queue_size`` are
already waiting the next one is refused at once with 503 and a ``Retry-After`` estimated
from recent service times (429 when only its tenant is over its own bound), so a client
never hangs on a full queue. The slot is released by whoever finishes the work (possibly a
worker thread via ``loop.call_soon_threadsafe``), not by the waiting task, so a cancelled
request cannot let a second generation start while the first still runs.
"""

from __future__ import annotations

import asyncio

from bastion.routing.fairqueue import DEFAULT_CLAIM, Claim, FairQueue


class Slot:
    def __init__(
        self, name: str, queue_size: int, initial_estimate: float = 2.0, capacity: int = 1
    ) -> None:
        self.name = name
        self.queue_size = queue_size
        self.capacity = capacity
        self._active = 0
        self._queue = FairQueue(f"Model '{name}'", queue_size)
        self._ewma = initial_estimate

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        return self._active >= self.capacity

    def retry_after(self) -> float:
        return max(1.0, (len(self._queue) // self.capacity + 1) * self._ewma)

    async def acquire(self, claim: Claim = DEFAULT_CLAIM) -> None:
        if self._active < self.capacity and not self._queue:
            self._active += 1
            return
        ticket = self._queue.push(claim, self.retry_after())
        try:
            await ticket.future
        except asyncio.CancelledError:
            if ticket.future.done() and not ticket.future.cancelled():
                self.release()  # we were handed the slot just as we were cancelled
            else:
                self._queue.discard(ticket)
            raise

    def release(self, service_time: float | None = None) -> None:
        if service_time is not None:
            self._ewma = 0.8 * self._ewma + 0.2 * service_time
        if not self._queue.wake_next():  # hands the slot over (it stays taken) ...
            self._active -= 1  # ... or frees it
