"""The gateway application: builds backends from settings and runs the request pipeline.

Pipeline for ``/v1/*`` (each step a small function, called in this order from ``handle``):
route → authenticate → admit (priority and tenant: ``bastion.routing.admission``) →
parse + validate (in the endpoint handler) → resolve model → queue if busy → backend call
→ respond → finish (observers: access log now; traces and metrics later).
Errors raised anywhere along the way become one OpenAI error envelope.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pluggy

from bastion.backends.base import Backend, Completion, EventStream, Result
from bastion.config import Settings
from bastion.errors import (
    AuthenticationFailed,
    BastionError,
    ConfigError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
)
from bastion.gateway.context import RequestContext
from bastion.plugins import backend_factories, plugin_manager, routing_strategies
from bastion.routing.admission import Admission
from bastion.routing.router import Router
from bastion.server.types import JSON_HEADERS, SSE_HEADERS, Request, Response, StreamingResponse

log = logging.getLogger("bastion.gateway")
access_log = logging.getLogger("bastion.access")

Endpoint = Callable[[Request, RequestContext], Awaitable[Response | StreamingResponse]]
Observer = Callable[[RequestContext], None]
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
OVERHEAD_HEADER = b"x-bastion-overhead-ms"


class Gateway:
    def __init__(self, settings: Settings, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm or plugin_manager()
        self._factories = backend_factories(self.pm)
        self.strategies = routing_strategies(self.pm)
        backends = {spec.name: self.build_backend(spec) for spec in settings.models}
        self._id_prefix = os.urandom(6).hex()
        self._ids = itertools.count(1)
        self.observers: list[Observer] = []
        self.background: set[asyncio.Task[None]] = set()
        self.loader: Callable[[], Settings] | None = None  # re-reads config for a reload
        self.on_reloaded: Callable[[], None] | None = None  # after an API-triggered reload
        self.router: Router = make_router(settings, backends, self)
        self.apply(settings, backends, self.router)
        self.started = False
        from bastion.gateway import routes  # the endpoint table

        self._routes: dict[str, dict[str, Endpoint]] = routes.table(self)
        self._model_route = routes.model_detail(self)

    def build_backend(self, spec: Any) -> Backend:
        factory = self._factories.get(spec.backend)
        if factory is None:
            raise ConfigError(
                f"model {spec.name!r}: no installed plugin provides backend "
                f"{spec.backend!r} (known: {', '.join(sorted(self._factories))})"
            )
        backend: Backend = factory(spec)
        return backend

    def apply(self, settings: Settings, backends: dict[str, Backend], router: Router) -> None:
        """Switches to a configuration in one step (no await: no request sees half of it)."""
        self.settings = settings
        self.backends = backends
        self.router = router
        self.admission = Admission(settings.admission)
        key = settings.server.master_key
        self._master_key = key.get_secret_value().encode() if key is not None else None
        if settings.server.access_log and _log_access not in self.observers:
            self.observers.append(_log_access)
        elif not settings.server.access_log and _log_access in self.observers:
            self.observers.remove(_log_access)

    async def reload(self, settings: Settings, dry_run: bool = False) -> dict[str, Any]:
        from bastion.gateway.reload import reload

        return await reload(self, settings, dry_run)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Loads every backend (concurrently). Raises if any fails to load."""
        await asyncio.gather(*(b.start() for b in self.backends.values()))
        self.started = True
        probes = asyncio.get_running_loop().create_task(self._probe_forever())
        self.background.add(probes)
        probes.add_done_callback(self.background.discard)

    async def _probe_forever(self) -> None:
        while True:
            interval = self.settings.routing.probe_interval
            await asyncio.sleep(interval or 1.0)
            if interval:
                await self.router.probe_all()

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await asyncio.gather(
            *(b.close() for b in self.backends.values()), return_exceptions=True
        )

    @property
    def ready(self) -> bool:
        return self.started and all(b.ready for b in self.backends.values())

    # ------------------------------------------------------------------ pipeline
    async def handle(self, request: Request) -> Response | StreamingResponse:
        ctx = RequestContext(self._request_id(request), request.path, request.received_at)
        ctx.headers = request.headers
        try:
            ctx.deadline = _deadline(request)
            endpoint = self._route(request)
            if request.path.startswith(("/v1/", "/api/")):
                self._authenticate(request)
                ctx.claim = self.admission.claim(request.header)
            response = await endpoint(request, ctx)
        except BastionError as exc:
            ctx.status = exc.status
            ctx.error = exc.message
            response = Response(exc.status, exc.body(), [*JSON_HEADERS, *exc.headers()])
        response.headers = [
            *response.headers,
            (b"x-request-id", ctx.request_id.encode()),
            (OVERHEAD_HEADER, b"%.3f" % (ctx.overhead(time.perf_counter()) * 1000)),
        ]
        if isinstance(response, Response):
            self.finish(ctx)
        return response

    def _request_id(self, request: Request) -> str:
        given = request.header(b"x-request-id")
        if given is not None and _REQUEST_ID.match(given):
            return given.decode()
        return f"{self._id_prefix}{next(self._ids):08x}"

    def _route(self, request: Request) -> Endpoint:
        methods = self._routes.get(request.path)
        if methods is None:
            if request.path.startswith("/v1/models/"):
                methods = self._model_route
            else:
                raise NotFound(f"Unknown path: {request.method} {request.path}", code="unknown_url")
        endpoint = methods.get(request.method)
        if endpoint is None:
            allowed = ", ".join(sorted(methods))
            raise MethodNotAllowed(
                f"Method {request.method} is not allowed for {request.path}; use {allowed}",
                allow=allowed,
            )
        return endpoint

    def _authenticate(self, request: Request) -> None:
        if self._master_key is None:
            return
        header = request.header(b"authorization")
        if header is None:
            raise AuthenticationFailed(
                "Missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key"
            )
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._master_key):
            raise AuthenticationFailed("Invalid API key")

    def respond(self, result: Result, ctx: RequestContext) -> Response | StreamingResponse:
        if isinstance(result, Completion):
            return Response(result.status, result.body, JSON_HEADERS + result.headers)
        assert isinstance(result, EventStream)

        def on_close(completed: bool) -> None:
            if not completed and ctx.error is None:
                ctx.error = "client disconnected"
                ctx.status = 499
            self.finish(ctx)

        return StreamingResponse(200, result.events, SSE_HEADERS + result.headers, on_close)

    def finish(self, ctx: RequestContext) -> None:
        ctx.finished_at = time.perf_counter()
        for observer in self.observers:
            try:
                observer(ctx)
            except Exception:  # telemetry must never break a request
                log.exception("observer %r failed", observer)


def _deadline(request: Request) -> float | None:
    raw = request.header(b"x-bastion-timeout")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise InvalidRequest(
            "x-bastion-timeout must be a number of seconds between 0 and 3600",
            param="x-bastion-timeout",
        )
    return time.monotonic() + seconds


def make_router(settings: Settings, backends: dict[str, Backend], gateway: Gateway) -> Router:
    return Router(
        settings.routing,
        {spec.name: (backends[spec.name], spec) for spec in settings.models},
        gateway.strategies,
        previous=getattr(gateway, "router", None),  # None while the gateway is being built
    )


def _log_access(ctx: RequestContext) -> None:
    finished = ctx.finished_at or time.perf_counter()
    usage: dict[str, Any] = ctx.usage or {}
    access_log.info(
        "%s %s model=%s status=%d ms=%.1f tokens_in=%s tokens_out=%s%s",
        ctx.request_id,
        ctx.endpoint,
        ctx.model or "-",
        ctx.status,
        (finished - ctx.received_at) * 1000,
        usage.get("prompt_tokens", "-"),
        usage.get("completion_tokens", "-"),
        f" error={ctx.error!r}" if ctx.error else "",
    )
