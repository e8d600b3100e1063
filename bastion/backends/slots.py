"""Bounded admission to a resource that serves ``capacity`` requests at a time (an
in-process model: one for the serial path, N for batched generation).

Requests wait in FIFO order; when ``queue_size`` are already waiting the next one is
refused at once with 503 and a ``Retry-After`` estimated from recent service times, so a
client never hangs on a full queue. The slot is released by whoever finishes the work
(possibly a worker thread via ``loop.call_soon_threadsafe``), not by the waiting task, so
a cancelled request cannot let a second generation start while the first still runs.
"""

from __future__ import annotations

import asyncio
from collections import deque

from bastion.errors import Overloaded


class Slot:
    def __init__(
        self, name: str, queue_size: int, initial_estimate: float = 2.0, capacity: int = 1
    ) -> None:
        self.name = name
        self.queue_size = queue_size
        self.capacity = capacity
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ewma = initial_estimate

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def busy(self) -> bool:
        return self._active >= self.capacity

    def retry_after(self) -> float:
        return max(1.0, (len(self._waiters) // self.capacity + 1) * self._ewma)

    async def acquire(self) -> None:
        if self._active < self.capacity and not self._waiters:
            self._active += 1
            return
        if len(self._waiters) >= self.queue_size:
            raise Overloaded(
                f"Model '{self.name}' is busy: {len(self._waiters)} requests are already "
                "waiting; retry later",
                retry_after=self.retry_after(),
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # we were handed the slot just as we were cancelled
            else:
                self._waiters.remove(waiter)
            raise

    def release(self, service_time: float | None = None) -> None:
        if service_time is not None:
            self._ewma = 0.8 * self._ewma + 0.2 * service_time
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # hand the slot over; stays taken
                return
        self._active -= 1
