"""The router: public model name (alias) → deployments, with failover, retries, fallbacks.

For each request the router walks the alias's priority groups in order; within a group the
alias's strategy orders the deployments that are available now (breaker not open, under
``max_concurrency``, loaded). Each is tried at most once per pass. A retryable failure
(connection error, 5xx, 429, timeout, a full model queue) moves on to the next; once a
pass is exhausted and attempts remain, deployments that failed retryably are tried again
after a jittered exponential backoff that honours ``Retry-After`` (a Retry-After longer
than ``max_backoff`` is not waited for). Then the alias's fallbacks get the same
treatment. A client error (4xx other than 429) is final at once.

A stream is never retried once it has started: the backend returns an
:class:`~bastion.backends.base.EventStream` only after the upstream accepted the request,
and failures after that reach the client as an error event. The deployment's in-flight
count and health are settled when the stream ends.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bastion.backends.base import Backend, ClosingStream, EventStream, Result
from bastion.config import RouteSettings, RoutingSettings
from bastion.context import RequestContext, Span
from bastion.errors import (
    BastionError,
    ConfigError,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    QueueFull,
    UpstreamTimeout,
)
from bastion.routing.fairqueue import FairQueue, Ticket
from bastion.routing.health import BreakerPolicy, Deployment
from bastion.routing.strategies import RouteState, Strategy
from bastion.server.types import aclose

Call = Callable[[Backend, dict[str, Any]], Awaitable[Result]]


def retryable(exc: BastionError) -> bool:
    """5xx (upstream failure, timeout, overload) and 429 may succeed elsewhere or later;
    any other 4xx (an upstream's verdict on the request included) would fail again."""
    return exc.status >= 500 or exc.status == 429


class Route:
    """One alias: its deployments by priority group, its strategy and settings."""

    def __init__(self, alias: str, settings: RouteSettings, strategy: Strategy) -> None:
        self.alias = alias
        self.settings = settings
        self.strategy = strategy
        self.state = RouteState()
        self.groups: dict[int, list[Deployment]] = {}
        # Ejecting the only deployment of an alias with no fallback turns every request
        # into a 503 for the cooldown (a LiteLLM users' complaint): breakers apply only
        # where there is somewhere else to send the traffic.
        self.breakers = True
        self.queue = FairQueue(f"Model '{alias}'", settings.queue_size)
        self.granted = 0  # waiters handed a turn that have not yet taken it

    def add(self, deployment: Deployment) -> None:
        self.groups.setdefault(deployment.priority, []).append(deployment)
        deployment.on_free = self.pump

    def pump(self) -> None:
        """Hands a turn to the next waiter when a deployment can take a request now (one
        turn at a time: the waiter passes spare capacity on once it has begun)."""
        if not self.queue or self.granted:
            return
        now = time.monotonic()
        if any(d.would_admit(now, self.breakers) for ds in self.groups.values() for d in ds):
            self.granted += 1
            if not self.queue.wake_next():
                self.granted -= 1

    def retry_after(self) -> float:
        """A hint for a client refused by a full queue: the soonest cooldown's end, else
        the queue's length times recent latency over the deployments serving it."""
        now = time.monotonic()
        deployments = self.deployments
        waits = [w for d in deployments if (w := d.cooldown_left(now)) > 0]
        if waits:
            return max(1.0, min(waits))
        latency = max((d.ewma_latency for d in deployments), default=0.0)
        return max(1.0, latency * (len(self.queue) + 1) / max(len(deployments), 1))

    @property
    def deployments(self) -> list[Deployment]:
        return [d for p in sorted(self.groups) for d in self.groups[p]]

    def order(self, now: float, exclude: set[Deployment]) -> list[Deployment]:
        """Available deployments, preferred first: lowest priority group that has any."""
        for priority in sorted(self.groups):
            usable = [
                d
                for d in self.groups[priority]
                if d not in exclude and d.available(now, breaker=self.breakers)
            ]
            if len(usable) == 1:
                return usable  # the common single-deployment alias: no strategy work
            if usable:
                return self.strategy(usable, self.state)
        return []


class Router:
    def __init__(
        self,
        settings: RoutingSettings,
        backends: dict[str, tuple[Backend, Any]],
        strategies: dict[str, Strategy],
        previous: Router | None = None,
    ) -> None:
        """``backends``: deployment name → (backend, its model spec).

        ``previous``: on a config reload, a deployment whose backend object is kept keeps
        its live state (in-flight count, latency EWMA, breaker) too."""
        self.settings = settings
        policy = BreakerPolicy(settings.failure_threshold, settings.cooldown)
        kept = {d.name: d for d in previous.deployments()} if previous is not None else {}
        self.routes: dict[str, Route] = {}
        for name, (backend, spec) in backends.items():
            alias = spec.public_name
            route = self.routes.get(alias)
            if route is None:
                route_settings = settings.route(alias)
                strategy = strategies.get(route_settings.strategy)
                if strategy is None:
                    raise ConfigError(
                        f"routing: unknown strategy {route_settings.strategy!r} for {alias!r} "
                        f"(known: {', '.join(sorted(strategies))})"
                    )
                route = self.routes[alias] = Route(alias, route_settings, strategy)
            old = kept.get(name)
            if old is not None and old.backend is backend:
                old.alias, old.weight, old.priority = alias, spec.weight, spec.priority
                old.max_concurrency, old.price, old.policy = (
                    spec.max_concurrency,
                    spec.price,
                    policy,
                )
                old.timeout, old.first_token_timeout = spec.timeout, spec.first_token_timeout
                route.add(old)
                continue
            route.add(
                Deployment(
                    name=name,
                    alias=alias,
                    backend=backend,
                    weight=spec.weight,
                    priority=spec.priority,
                    max_concurrency=spec.max_concurrency,
                    price=spec.price,
                    policy=policy,
                    timeout=spec.timeout,
                    first_token_timeout=spec.first_token_timeout,
                )
            )

        for route in self.routes.values():
            route.breakers = len(route.deployments) > 1 or bool(route.settings.fallbacks)

    def deployments(self) -> list[Deployment]:
        return [d for route in self.routes.values() for d in route.deployments]

    async def probe_all(self) -> None:
        """One round of active health probes, all deployments at once."""
        deployments = [d for d in self.deployments() if d.backend.ready]

        async def probe(d: Deployment) -> None:
            try:
                async with asyncio.timeout(10):
                    await d.backend.probe()
            except (BastionError, TimeoutError):
                d.probed(False, time.monotonic())
            else:
                d.probed(True, time.monotonic())

        await asyncio.gather(*(probe(d) for d in deployments))

    def route(self, alias: str) -> Route:
        route = self.routes.get(alias)
        if route is None:
            raise ModelNotFound(
                f"The model '{alias}' does not exist or you do not have access to it.",
                param="model",
            )
        return route

    async def call(
        self, alias: str, body: dict[str, Any], call: Call, ctx: RequestContext
    ) -> Result:
        """Runs ``call(backend, body_copy)`` on the best deployment, failing over as needed."""
        ctx.model = alias
        route = self.route(alias)
        fallbacks, retries = self._overrides(route, ctx)
        chain = [route, *(self.route(f) for f in fallbacks)]
        last: BastionError | None = None
        for current in chain:
            ctx.fallback = current is not route
            try:
                return await self._call_route(current, body, call, ctx, retries)
            except BastionError as exc:
                if not retryable(exc):
                    raise
                last = exc
        assert last is not None
        raise last

    @staticmethod
    def _overrides(route: Route, ctx: RequestContext) -> tuple[list[str], int | None]:
        """Per-request ``x-bastion-fallbacks: a,b`` (empty: none) and ``x-bastion-retries``."""
        fallbacks = route.settings.fallbacks
        raw = ctx.header(b"x-bastion-fallbacks")
        if raw is not None:
            fallbacks = [f.strip() for f in raw.decode("latin-1").split(",") if f.strip()]
        retries = None
        raw = ctx.header(b"x-bastion-retries")
        if raw is not None:
            if not raw.isdigit() or int(raw) > 10:
                raise InvalidRequest(
                    "x-bastion-retries must be a whole number from 0 to 10",
                    param="x-bastion-retries",
                )
            retries = int(raw)
        return fallbacks, retries

    async def _call_route(
        self,
        route: Route,
        body: dict[str, Any],
        call: Call,
        ctx: RequestContext,
        retries: int | None = None,
    ) -> Result:
        settings = route.settings
        attempts_left = (settings.retries if retries is None else retries) + 1
        tried: set[Deployment] = set()
        failed: list[tuple[Deployment, BastionError]] = []
        last: BastionError | None = None
        backoff_round = 0
        may_queue = settings.queue_wait > 0  # once, before the first attempt
        while attempts_left > 0:
            now = time.monotonic()
            if may_queue and route.queue:  # others are waiting: take a place among them
                candidates = await self._queue(route, ctx, now)
            else:
                candidates = route.order(now, tried)
                if not candidates and may_queue:
                    # Every deployment is cooling down or at capacity: wait briefly for one
                    # rather than failing at once.
                    candidates = await self._queue(route, ctx, now)
            may_queue = False
            if not candidates:
                # a full queue of ours is an answer now, not a reason to wait and try again
                failed = [(d, e) for d, e in failed if not isinstance(e, QueueFull)]
                if not failed:
                    break
                # Every deployment was tried once: wait, then retry those that failed.
                wait = self._backoff(settings, backoff_round, failed)
                if wait is None:
                    break
                backoff_round += 1
                await asyncio.sleep(wait)
                tried = {d for d in tried if d not in {f for f, _ in failed}}
                failed = []
                continue
            deployment = self._affine(route, candidates, body, ctx)
            tried.add(deployment)
            attempts_left -= 1
            ctx.attempts += 1
            started = deployment.begin()
            if route.queue:
                route.pump()  # spare capacity goes to the next waiter
            try:
                result = await self._attempt(deployment, call, body, ctx)
            except BastionError as exc:
                _attempted(ctx, deployment, started, exc)
                if retryable(exc):
                    deployment.failed(time.monotonic())
                    failed.append((deployment, exc))
                    last = exc
                    continue
                deployment.released()
                raise
            except BaseException:
                deployment.released()
                raise
            _attempted(ctx, deployment, started, None)
            ctx.backend = deployment.name
            ctx.provider = deployment.backend.kind
            if isinstance(result, EventStream):
                result.events = _settle_at_end(result.events, deployment, started)
            else:
                deployment.succeeded(started)
            return result
        if last is not None:
            raise last
        raise self._unavailable(route)

    @staticmethod
    async def _queue(route: Route, ctx: RequestContext, now: float) -> list[Deployment]:
        """Waits in the route's fair queue (priority, then tenants' fair shares) for a
        deployment, up to ``queue_wait`` (and the request's deadline). A freed deployment
        wakes the next waiter at once; cooldowns ending and models finishing loading are
        noticed by a 50 ms re-check. Returns [] if none came in time."""
        until = now + route.settings.queue_wait
        if ctx.deadline is not None:
            until = min(until, ctx.deadline)
        ticket = route.queue.push(ctx.claim, route.retry_after())
        route.pump()
        taken = False
        try:
            while (left := until - time.monotonic()) > 0:
                if not ticket.future.done():
                    await asyncio.wait((ticket.future,), timeout=min(left, 0.05))
                if not ticket.future.done():
                    route.pump()  # time-based changes: a cooldown ended, a model loaded
                    continue
                taken = True
                route.granted -= 1
                candidates = route.order(time.monotonic(), set())
                if candidates:
                    return candidates
                taken = False  # someone else got there first: back to our place
                route.queue.requeue(ticket)
            return []
        finally:
            waited = time.monotonic() - now
            ctx.queued_s += waited
            end = time.perf_counter()
            ctx.spans.append(Span("queue", end - waited, end, {"alias": route.alias}))
            _leave(route, ticket, taken)

    @staticmethod
    def _affine(
        route: Route, candidates: list[Deployment], body: dict[str, Any], ctx: RequestContext
    ) -> Deployment:
        """With session affinity, the same user/session lands on the same deployment while it
        is available (rendezvous hashing: adding or losing one moves only its own users)."""
        affinity = route.settings.affinity
        if affinity is None or len(candidates) == 1:
            return candidates[0]
        if affinity == "user":
            key = body.get("user")
        else:
            raw = ctx.header(affinity.encode().lower())
            key = raw.decode("latin-1") if raw is not None else None
        if not isinstance(key, str) or not key:
            return candidates[0]
        return max(candidates, key=lambda d: zlib.crc32(f"{key}\x00{d.name}".encode()))

    async def _attempt(
        self, deployment: Deployment, call: Call, body: dict[str, Any], ctx: RequestContext
    ) -> Result:
        """One backend call under its deadlines: the deployment's ``timeout`` (a whole
        non-streamed call), ``first_token_timeout`` (a stream, until its first event) and the
        request's own ``x-bastion-timeout`` (the same, across all attempts). Nothing has
        reached the client when one is missed, so the miss is retryable (504)."""
        limit = deployment.first_token_timeout if ctx.stream else deployment.timeout
        if ctx.deadline is not None:
            left = ctx.deadline - time.monotonic()
            if left <= 0:
                raise UpstreamTimeout("The request's x-bastion-timeout ran out")
            limit = left if limit is None else min(limit, left)
        if limit is None:  # no deadline: skip the timeout machinery (2-3 % of hot-path CPU)
            return await call(deployment.backend, dict(body))
        try:
            async with asyncio.timeout(limit):
                result = await call(deployment.backend, dict(body))
                if isinstance(result, EventStream) and limit is not None:
                    result.events = await _first_event(result.events)
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"Deployment '{deployment.name}' did not answer within its time limit"
            ) from exc
        return result

    @staticmethod
    def _backoff(
        settings: RouteSettings, round_: int, failed: list[tuple[Deployment, BastionError]]
    ) -> float | None:
        delay: float = settings.backoff * (2**round_) * random.uniform(0.5, 1.5)  # noqa: S311
        hinted = [exc.retry_after for _, exc in failed if exc.retry_after is not None]
        if hinted:
            delay = max(delay, min(hinted))
        if delay > settings.max_backoff:
            return None
        return delay

    @staticmethod
    def _unavailable(route: Route) -> Overloaded:
        now = time.monotonic()
        waits = [d.cooldown_left(now) for d in route.deployments]
        retry = min((w for w in waits if w > 0), default=1.0)
        return Overloaded(
            f"No deployment of '{route.alias}' is available right now "
            "(circuit open, at capacity or loading); retry later",
            retry_after=retry,
        )


def _attempted(
    ctx: RequestContext, deployment: Deployment, started: float, exc: BastionError | None
) -> None:
    """One backend attempt, as a span of the trace (a stream's: until its first event)."""
    attrs: dict[str, Any] = {"deployment": deployment.name, "status": 200}
    if exc is not None:
        attrs["status"] = exc.status
        attrs["error"] = exc.message[:500]
    ctx.spans.append(Span("backend", started, time.perf_counter(), attrs))


def _leave(route: Route, ticket: Ticket, taken: bool) -> None:
    """A waiter leaves the queue; a turn it was handed but did not take is passed on."""
    future = ticket.future
    if ticket.live:
        route.queue.discard(ticket)
        future.cancel()
    elif not taken and future.done() and not future.cancelled():
        route.granted -= 1
        route.pump()


async def _first_event(events: AsyncIterator[bytes]) -> ClosingStream:
    """Waits for a stream's first event (under the caller's deadline, before anything has
    reached the client); returns the stream with that event put back in front."""
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = b""
    except BaseException:
        await aclose(events)
        raise

    async def chained() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in events:
            yield chunk

    return ClosingStream(chained(), lambda: aclose(events))


def _settle_at_end(
    events: AsyncIterator[bytes], deployment: Deployment, started: float
) -> ClosingStream:
    """Counts the stream as in flight until it ends; a clean end is a success."""
    done = False

    async def relay() -> AsyncIterator[bytes]:
        nonlocal done
        failed = False
        async for chunk in events:
            if chunk.startswith(b'data: {"error"'):
                failed = True
            yield chunk
        done = True
        if failed:
            deployment.failed(time.monotonic())
        else:
            deployment.succeeded(started)

    def abandoned() -> None:
        if not done:
            deployment.released()

    async def close() -> None:
        await aclose(events)
        abandoned()

    return ClosingStream(relay(), close)
