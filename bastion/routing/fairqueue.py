"""Who waits first: priorities, then fair sharing between tenants (start-time fair queueing).

A waiting request carries a :class:`Claim`: its priority (0 is the most urgent, 9 the
least), its tenant (a team, a key, or whatever ``admission`` names) and the tenant's
weight. The queue hands capacity out by priority first; within one priority it serves
tenants in proportion to their weights, however many requests each has queued, so one
tenant's burst cannot starve the others (the complaint behind every "noisy neighbour"
issue in LLM gateways)::

    start tag   S = max(V, F[tenant])          V: start tag of the last request served
    finish tag  F[tenant] = S + 1 / weight      order: (priority, S, arrival)

A tenant that was idle starts at the current virtual time, so it neither banks credit
while idle nor is punished for its past. Within one tenant and priority the order is FIFO.

Everything is touched from the event loop only; no locks, no I/O. Removal of a cancelled
waiter is lazy (it is skipped when it reaches the head).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass

from bastion.errors import QueueFull, RateLimited

LOWEST_PRIORITY = 9
DEFAULT_PRIORITY = 5
_PRUNE_AT = 4096  # tenants' finish tags kept before the ones behind virtual time are dropped


@dataclass(frozen=True, slots=True)
class Claim:
    """How a request queues: decided once per request by the admission stage."""

    priority: int = DEFAULT_PRIORITY
    tenant: str = ""
    weight: float = 1.0
    max_queued: int | None = None  # this tenant's waiting requests at most (429 beyond)


DEFAULT_CLAIM = Claim()


class Ticket:
    """One waiting request. ``future`` resolves when the queue hands it a turn."""

    __slots__ = ("claim", "future", "key", "live")

    def __init__(self, claim: Claim, key: tuple[int, float, int], future: asyncio.Future[None]):
        self.claim = claim
        self.key = key
        self.future = future
        self.live = True

    def __lt__(self, other: Ticket) -> bool:
        return self.key < other.key


class FairQueue:
    """A bounded priority queue with per-tenant fair shares.

    ``push`` raises :class:`~bastion.errors.QueueFull` (503) when ``limit`` requests
    already wait, and
    :class:`RateLimited` (429) when the claim's tenant already has ``max_queued`` waiting;
    both carry the ``Retry-After`` hint the caller passes."""

    def __init__(self, what: str, limit: int) -> None:
        self.what = what  # for messages: "Model 'x'"
        self.limit = limit
        self._heap: list[Ticket] = []
        self._live = 0
        self._per_tenant: dict[str, int] = {}
        self._finish: dict[str, float] = {}
        self._virtual = 0.0
        self._seq = itertools.count()

    def __len__(self) -> int:
        return self._live

    def __bool__(self) -> bool:
        return self._live > 0

    def waiting(self, tenant: str) -> int:
        return self._per_tenant.get(tenant, 0)

    def push(self, claim: Claim, retry_after: float = 1.0) -> Ticket:
        """Queues a request; ``retry_after`` is the hint given if it is refused."""
        if self._live >= self.limit:
            raise QueueFull(
                f"{self.what} is busy: {self._live} requests are already waiting; retry later",
                retry_after=retry_after,
            )
        queued = self._per_tenant.get(claim.tenant, 0)
        if claim.max_queued is not None and queued >= claim.max_queued:
            raise RateLimited(
                f"Tenant '{claim.tenant}' already has {queued} requests waiting for "
                f"{self.what}; retry later",
                retry_after=retry_after,
            )
        start = max(self._virtual, self._finish.get(claim.tenant, 0.0))
        self._finish[claim.tenant] = start + 1.0 / max(claim.weight, 1e-6)
        if len(self._finish) > _PRUNE_AT:
            self._prune()
        key = (claim.priority, start, next(self._seq))
        ticket = Ticket(claim, key, asyncio.get_running_loop().create_future())
        heapq.heappush(self._heap, ticket)
        self._live += 1
        self._per_tenant[claim.tenant] = queued + 1
        return ticket

    def requeue(self, ticket: Ticket) -> None:
        """Puts a ticket that was handed a turn it could not use back in its old place."""
        ticket.future = asyncio.get_running_loop().create_future()
        ticket.live = True
        heapq.heappush(self._heap, ticket)
        self._live += 1
        tenant = ticket.claim.tenant
        self._per_tenant[tenant] = self._per_tenant.get(tenant, 0) + 1

    def pop(self) -> Ticket | None:
        """The next ticket to serve (not yet woken), or None."""
        heap = self._heap
        while heap:
            ticket = heapq.heappop(heap)
            if ticket.live:
                self._take(ticket)
                self._virtual = max(self._virtual, ticket.key[1])
                return ticket
        return None

    def wake_next(self) -> bool:
        """Hands a turn to the next waiter; False if nobody waits."""
        while (ticket := self.pop()) is not None:
            if not ticket.future.done():  # done: cancelled, its handler not yet run
                ticket.future.set_result(None)
                return True
        return False

    def discard(self, ticket: Ticket) -> None:
        """A waiter gave up (timed out or cancelled) before it was handed a turn."""
        if ticket.live:
            self._take(ticket)
            if not self._live:
                self._heap.clear()

    def _take(self, ticket: Ticket) -> None:
        ticket.live = False
        self._live -= 1
        tenant = ticket.claim.tenant
        left = self._per_tenant[tenant] - 1
        if left:
            self._per_tenant[tenant] = left
        else:
            del self._per_tenant[tenant]

    def _prune(self) -> None:
        virtual = self._virtual
        waiting = self._per_tenant
        self._finish = {
            t: f for t, f in self._finish.items() if f > virtual or t in waiting
        }
