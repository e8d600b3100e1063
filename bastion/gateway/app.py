"""The gateway application: builds backends from settings and runs each request.

``handle`` is the front of every request: its context and trace context, the endpoint
(404/405), then for ``/v1`` and ``/api`` authenticate (key → principal), authorize (role),
admit (priority and tenant: ``bastion.routing.admission``), then the endpoint; for the
OpenAI operations that is :class:`bastion.gateway.pipeline.Pipeline` (parse, validate,
models, limits, input guards, route and call, output guards, respond). Whatever happens,
one OpenAI error envelope for an error (a bug's exception too: a 500 with the client's
request id) and ``finish`` (observers: the trace writer, metrics, OTel, the access log).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pluggy

from bastion.backends.base import Backend
from bastion.config import Settings
from bastion.context import RequestContext
from bastion.errors import (
    AuthenticationFailed,
    BastionError,
    ConfigError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
    ServerError,
    StoreUnavailableError,
)
from bastion.gateway import local_only, routes
from bastion.gateway.recent import RecentIds
from bastion.gateway.spend import Spend
from bastion.governance.audit import AuditTrail
from bastion.governance.authfail import FailedKeyUses
from bastion.governance.keys import MASTER, Principal, expired, looks_like_key
from bastion.governance.keysync import key_table, sync_forever, sync_once
from bastion.governance.limits import Limiter
from bastion.governance.oidc import OidcAuthenticator, SigningKeyUnknown, looks_like_jwt
from bastion.governance.roles import permission_for
from bastion.observe.datadir import secure_data_dir
from bastion.observe.metrics import Metrics
from bastion.observe.setup import IngestProcess, StoreHandle, build_spool, keeps_content
from bastion.observe.spool import Spool
from bastion.observe.traceparent import start_trace
from bastion.plugins import (
    backend_factories,
    observer_factories,
    plugin_manager,
    routing_strategies,
    scanner_factories,
)
from bastion.routing.admission import Admission
from bastion.routing.router import Router
from bastion.server.types import (
    JSON_HEADERS,
    Request,
    Response,
    StreamingResponse,
)
from bastion.ui import routes as ui_routes
from bastion.ui.sessions import Sessions, session_key
from bastion.ui.signout_sync import SignoutSync

if TYPE_CHECKING:
    from bastion.governance.shared_limits import SharedLimiter
    from bastion.guards.stage import GuardStage

log = logging.getLogger("bastion.gateway")

Endpoint = Callable[[Request, RequestContext], Awaitable[Response | StreamingResponse]]
Observer = Callable[[RequestContext], None]
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
OVERHEAD_HEADER = b"x-bastion-overhead-ms"
KEY_LOAD_TIMEOUT = 5.0  # seconds the start waits for the keys; then the poll keeps trying


class Gateway:
    def __init__(self, settings: Settings, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm or plugin_manager()
        self._factories = backend_factories(self.pm)
        self.strategies = routing_strategies(self.pm)
        self.scanners = scanner_factories(self.pm)
        self.guards: GuardStage | None = None
        self._guards_built = asyncio.Lock()  # one on-demand build at a time (a key's policy)
        backends = {spec.name: self.build_backend(spec) for spec in settings.models}
        self._id_prefix = os.urandom(6).hex()
        self._ids = itertools.count(1)
        self.observers: list[Observer] = []
        self._observer_factories: dict[str, Callable[[Gateway], Observer | None]] = {}
        self.recent = RecentIds()  # answered ids, for feedback before the trace is stored
        self.background: set[asyncio.Task[None]] = set()
        self.loader: Callable[[], Settings] | None = None  # re-reads config for a reload
        self.on_reloaded: Callable[[], None] | None = None  # after an API-triggered reload
        self.router: Router = make_router(settings, backends, self)
        secure_data_dir(settings)  # 0700, its files 0600, before anything is written
        self.store = StoreHandle(settings)
        self.keys = key_table(settings)  # virtual keys, kept current by sync_forever
        self.sessions = Sessions(session_key(settings), self.keys,  # dashboard sign-ins
                                 settings.ui.session_hours * 3600)
        self.signouts = SignoutSync(self.sessions, self.store) if settings.ui.enabled else None
        self.oidc: OidcAuthenticator | None = None  # single sign-on (auth.oidc), in apply
        self.limiter: Limiter | SharedLimiter = Limiter()  # rate limits (in apply)
        self.shared_limits: SharedLimiter | None = None  # limits.redis_url: through Redis
        self.spend = Spend(self)  # budgets: reserved before the call, settled after
        self.audit = AuditTrail(settings, self.store)  # admin actions, hash-chained, signed
        # refused keys: counted here, one audit entry per (reason, key, source) a minute
        self.failed_keys = FailedKeyUses(self.audit.record, self.keys, self.background)
        self.tracing: Spool | None = None  # traces: spooled here, stored by the ingest
        self.ingest: IngestProcess | None = None
        if settings.tracing.enabled:
            self.tracing = build_spool(settings)
            self.ingest = IngestProcess(settings)
        self.otel: OtelExporter | None = None
        if settings.otel.enabled:  # the SDK loads only when used (a quarter second)
            from bastion.observe.otel import OtelExporter

            self.otel = OtelExporter(settings, lambda: self.settings)
        self.apply(settings, backends, self.router, self.build_guards(settings))
        self.metrics = Metrics(settings, self)
        if self.tracing is not None:
            self.tracing.on_drop = self.metrics.traces_dropped
        self._observer_factories = observer_factories(self.pm)
        self.observers = self._observers()
        self.started = False
        self._routes: dict[str, dict[str, Endpoint]] = routes.table(self)
        self._prefixed: list[tuple[str, dict[str, Endpoint]]] = routes.prefixed(self)
        if settings.ui.enabled:  # the dashboard: HTML, not in /openapi.json
            ui_table, ui_prefixed = ui_routes.build(self)
            self._routes.update(ui_table)
            self._prefixed += ui_prefixed

    def build_backend(self, spec: Any) -> Backend:
        factory = self._factories.get(spec.backend)
        if factory is None:
            raise ConfigError(
                f"model {spec.name!r}: no installed plugin provides backend "
                f"{spec.backend!r} (known: {', '.join(sorted(self._factories))})"
            )
        backend: Backend = factory(spec)
        return backend

    def build_guards(self, settings: Settings, force: bool = False) -> GuardStage | None:
        """The guard stage for ``settings`` (None when no policy applies to anything, unless
        ``force``: a key names one). Builds every attached policy's scanners now: a bad one
        fails here, named."""
        g = settings.guards
        a = g.attach
        if not force and g.default in (None, "none") and not any(
            p != "none" for t in (a.keys, a.teams, a.tenants, a.models, a.routes)
            for p in t.values()
        ):
            return None
        from bastion.guards.engine import GuardEngine
        from bastion.guards.stage import GuardStage

        vault = self.guards.engine.vault if self.guards is not None else None
        return GuardStage(GuardEngine(g, self.scanners, vault), g.refusal,
                          # late-bound: metrics are made after the first guard stage
                          on_decision=lambda scanner, action, error: self.metrics.guard_hit(
                              scanner, action, error))

    async def guards_for(self, policy: str) -> GuardStage | None:
        """The guard stage with policy ``policy`` built (a key's own: nothing may attach
        it), made off the event loop on first use; the running stage for ``none``."""
        stage = self.guards
        if policy == "none" or (stage is not None and policy in stage.engine.policies):
            return stage
        async with self._guards_built:
            stage = self.guards
            if stage is None:
                settings = self.settings
                stage = await asyncio.to_thread(self.build_guards, settings, True)
                if self.settings is settings and self.guards is None:  # no reload meanwhile
                    self.guards = stage
            assert stage is not None
            await stage.prepare(policy)
        return stage

    def apply(self, settings: Settings, backends: dict[str, Backend], router: Router,
              guards: GuardStage | None) -> None:
        """Switches to a configuration in one step (no await: no request sees half of it).
        ``guards``: the stage for ``settings`` (the running one when they did not change)."""
        if guards is not self.guards and self.guards is not None:
            self.guards.close()
        self.guards = guards
        self.settings = settings
        self.backends = backends
        self.router = router
        self.admission = Admission(settings.admission)
        self.spend.configure(settings, router)
        self._apply_limits(settings)
        key = settings.server.master_key
        self._master_key = key.get_secret_value().encode() if key is not None else None
        if self._master_key is not None and not self._master_key.strip():
            raise ConfigError("server.master_key is empty: refusing to authenticate with it")
        self._apply_oidc(settings)
        # no master key and no SSO: loopback only (see Settings), every request is MASTER
        self._open = self._master_key is None and self.oidc is None
        self._metrics_auth = not self._open and settings.metrics.auth
        self.sessions.configure(self._master_key, self._open, settings.ui.session_hours * 3600,
                                secure=settings.server.tls is not None)
        if self.ingest is not None and self.ingest.settings is not settings:
            self.ingest.update(settings)  # new prices, maybe
        self.keep_chunks = (self.tracing is not None and keeps_content(settings)) or (
            self.otel is not None and settings.otel.capture_content
        )
        # a stream's last event time (time per output token) and, maybe, its events
        self.watch_streams = bool(self.tracing or self.otel or settings.metrics.enabled)
        self.observers = self._observers()  # none while the gateway is being built

    def _apply_limits(self, settings: Settings) -> None:
        """The rate limits (keys', teams', users', models'): this process's, or shared
        through Redis (limits.redis_url). The limiter is kept when only the scopes' limits
        changed (a reload keeps leases, requests in flight and what each scope used)."""
        unknown = sorted(set(settings.limits.models) - {"*"} - set(self.router.routes))
        if unknown:
            log.warning("limits.models names %s, not a model alias: it limits nothing",
                        ", ".join(repr(name) for name in unknown))
        old = self.shared_limits
        if old is not None and old.serves(settings.limits):
            old.configure(settings.limits)
            return
        if old is not None:  # its pool is closed off the reload; its tickets settle here
            with contextlib.suppress(RuntimeError):
                closing = asyncio.get_running_loop().create_task(old.close())
                self.background.add(closing)
                closing.add_done_callback(self.background.discard)
        self.shared_limits = None
        if settings.limits.redis_url is not None:
            from bastion.governance.shared_limits import SharedLimiter

            self.shared_limits = SharedLimiter(settings.limits, lambda mode: (
                self.metrics.limit_backend_error(mode)))  # late-bound: metrics come later
            self.limiter = self.shared_limits
        elif old is not None or not isinstance(self.limiter, Limiter):
            self.limiter = Limiter()
        self.limiter.configure(settings.limits)

    def _apply_oidc(self, settings: Settings) -> None:
        """The SSO authenticator for ``settings``: the running one's keys are kept when
        they come from the same issuer; another issuer's are fetched in the background."""
        old = self.oidc
        oidc = old.rebuilt(settings.auth.oidc) if old is not None else (
            OidcAuthenticator(settings.auth.oidc) if settings.auth.oidc is not None else None)
        if old is not None and (oidc is None or oidc.keys is not old.keys):
            old.keys.stop()
        self.oidc = oidc
        if oidc is not None and getattr(self, "started", False):
            oidc.keys.start(self.background)

    def _observers(self) -> list[Observer]:
        """The observers the registered factories give for the current settings, built-ins
        (spool, metrics, OTel, access log) and plugins' alike."""
        found = (factory(self) for factory in self._observer_factories.values())
        return [o for o in found if o is not None]

    async def reload(self, settings: Settings, dry_run: bool = False) -> dict[str, Any]:
        from bastion.gateway.reload import reload

        return await reload(self, settings, dry_run)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Loads every backend (concurrently). Raises if any fails to load."""
        if self.tracing is not None and self.ingest is not None:
            self.tracing.start(asyncio.get_running_loop())
            self.ingest.start()
        await asyncio.gather(*(b.start() for b in self.backends.values()))
        from bastion.store import StoreUnavailable  # SQLAlchemy: the store opens here

        # else 503 for virtual keys until the poll reads them; a store that does not
        # answer (a host that drops packets) must not hold the start for a TCP timeout
        with contextlib.suppress(StoreUnavailable, TimeoutError):
            await asyncio.wait_for(sync_once(self.keys, self.store), KEY_LOAD_TIMEOUT)
        keys = asyncio.get_running_loop().create_task(sync_forever(self.keys, self.store))
        self.background.add(keys)
        keys.add_done_callback(self.background.discard)
        if self.signouts is not None:  # other workers' dashboard sign-outs
            signouts = asyncio.get_running_loop().create_task(self.signouts.sync_forever())
            self.background.add(signouts)
            signouts.add_done_callback(self.background.discard)
        with contextlib.suppress(StoreUnavailable, TimeoutError):  # the budgets' spend so
            await asyncio.wait_for(self.spend.load_once(), KEY_LOAD_TIMEOUT)  # far (traces)
        if not self.spend.budgets.loaded:  # else 503 budgets_unavailable until it is read
            spend = asyncio.get_running_loop().create_task(self.spend.load_forever())
            self.background.add(spend)
            spend.add_done_callback(self.background.discard)
        if self.oidc is not None:  # the issuer's keys; JWTs get a 503 until they are read
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.oidc.keys.refresh(), KEY_LOAD_TIMEOUT)
            self.oidc.keys.start(self.background)
        self.started = True
        probes = asyncio.get_running_loop().create_task(self._probe_forever())
        self.background.add(probes)
        probes.add_done_callback(self.background.discard)
        self.metrics.start(self.background)  # workers' snapshots for /metrics

    async def _probe_forever(self) -> None:
        while True:
            interval = self.settings.routing.probe_interval
            await asyncio.sleep(interval or 1.0)
            if interval:
                await self.router.probe_all()
            if self.ingest is not None:
                self.ingest.check()  # restarted if it died

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.metrics.close()
        await self.spend.close()
        if self.shared_limits is not None:
            await self.shared_limits.close()
        await asyncio.gather(
            *(b.close() for b in self.backends.values()), return_exceptions=True
        )
        if self.tracing is not None and self.ingest is not None:
            # after the server's drain: every finished request is spooled; the ingest
            # stores it all, then exits (what it cannot store waits for the next start)
            await asyncio.to_thread(self.tracing.close)
            await asyncio.to_thread(self.ingest.drain, self.settings.tracing.drain_timeout)
        if self.otel is not None:  # drains its queue, flushes spans and metrics (bounded)
            await asyncio.to_thread(self.otel.close)
        if self.guards is not None:
            self.guards.close()
        await asyncio.to_thread(self.store.close)

    @property
    def ready(self) -> bool:
        return self.started and all(b.ready for b in self.backends.values())

    # ------------------------------------------------------------------ pipeline
    async def handle(self, request: Request) -> Response | StreamingResponse:
        ctx = self._context(request)
        start_trace(ctx, request.header(b"traceparent"))  # W3C trace context, ~1 µs
        try:
            endpoint = self._route(request)
            if request.path.startswith(("/v1/", "/api/")):
                if self._open:  # every request an admin: none a web page sent (loopback)
                    local_only.check(request)
                try:
                    principal = self._authenticate(request)
                except SigningKeyUnknown as unknown:  # the issuer rotated its keys (SSO)
                    principal = await unknown.retry()  # one shared refetch, then again
                ctx.authenticated_at = time.perf_counter()
                if principal is not MASTER:
                    ctx.principal = principal
                    ctx.key_id, ctx.team = principal.key_id, principal.team
                    if principal.user is not None:
                        ctx.user = principal.user  # it wins over the request's 'user' field
                    self._authorize(principal, request.path)
                    ctx.claim = self.admission.claim(request.header, principal.team or "",
                                                     principal.priority)
                else:
                    ctx.claim = self.admission.claim(request.header)
                ctx.admitted_at = time.perf_counter()
            elif request.path == "/metrics" and self._metrics_auth:
                self._authorize(self._authenticate(request), request.path)
            ctx.deadline = _deadline(request)  # after authentication: a keyless client's
            try:  # headers are not read (it gets a 401, whatever else it sent)
                response = await endpoint(request, ctx)
            except Exception:
                if ctx.limit is not None:  # an error with no answer: free its place
                    self.limiter.settle(ctx.limit, None)
                raise
        except AuthenticationFailed as exc:
            # counted, not traced: a keyless client must not grow the store (or the spool)
            # one body at a time, nor fill the trace list with its noise
            self.metrics.auth_failure(exc.reason)
            self.failed_keys.note(exc.reason, request.header(b"authorization"), request.client)
            response = Response(exc.status, exc.body(), [*JSON_HEADERS, *exc.headers()])
            response.headers.append((b"x-request-id", ctx.request_id.encode()))
            return response
        except BastionError as exc:
            ctx.status = exc.status
            ctx.error = exc.message
            response = Response(exc.status, exc.body(), [*JSON_HEADERS, *exc.headers()])
        except Exception as exc:  # noqa: BLE001  a bug (ours, a plugin's): answered like any
            response = self._internal_error(ctx, exc)  # other error, traced and counted
        response.headers = [
            *response.headers,
            (b"x-request-id", ctx.request_id.encode()),
            (OVERHEAD_HEADER, b"%.3f" % (ctx.overhead(time.perf_counter()) * 1000)),
        ]
        if ctx.record_id:
            response.headers.append((b"x-bastion-trace-id", ctx.record_id.encode()))
        if ctx.limit is not None:
            response.headers += ctx.limit.headers
        if isinstance(response, Response):
            self.finish(ctx)
            written = self.tracing.written() if self.tracing is not None else None
            if written is not None:  # its trace in the spool file before the answer goes
                await written  # out (one write for all finished in this loop iteration)
        return response

    @staticmethod
    def _internal_error(ctx: RequestContext, exc: Exception) -> Response:
        """A 500 for an exception no stage turned into an error: the client gets the
        envelope and its request id, the trace the exception's class (not its message,
        which may quote the request), the log the traceback with the same id."""
        name = type(exc).__name__
        log.error("unhandled %s in %s", name, ctx.endpoint, exc_info=exc,
                  extra={"request_id": ctx.request_id, "error_type": name})
        ctx.status = 500
        ctx.error = f"internal error ({name})"
        error = ServerError(f"Internal server error ({name}); the gateway's log has it under "
                            f"request id {ctx.request_id}", code="internal_error")
        return Response(500, error.body(), list(JSON_HEADERS))

    def _context(self, request: Request) -> RequestContext:
        """A new request's context. Its id is the client's ``x-request-id`` when valid, else
        ours; the trace is always stored under an id of ours (a client may reuse its ids),
        sent back as ``x-bastion-trace-id`` when it differs from the request id."""
        own = f"{self._id_prefix}{next(self._ids):08x}"
        given = request.header(b"x-request-id")
        if given is not None and _REQUEST_ID.match(given):
            ctx = RequestContext(given.decode(), request.path, request.received_at)
            ctx.record_id = own
        else:
            ctx = RequestContext(own, request.path, request.received_at)
        ctx.headers = request.headers
        ctx.raw_body = request.body
        return ctx

    def _route(self, request: Request) -> Endpoint:
        methods = self._routes.get(request.path)
        if methods is None:
            methods = next(
                (m for prefix, m in self._prefixed if request.path.startswith(prefix)), None
            )
            if methods is None:
                raise NotFound(f"Unknown path: {request.method} {request.path}", code="unknown_url")
        endpoint = methods.get(request.method)
        if endpoint is None:
            allowed = ", ".join(sorted(methods))
            raise MethodNotAllowed(
                f"Method {request.method} is not allowed for {request.path}; use {allowed}",
                allow=allowed,
            )
        return endpoint

    def _authenticate(self, request: Request) -> Principal:
        """Who the request is: a virtual key's principal, an SSO token's (``auth.oidc``:
        ``governance.oidc``), or MASTER for the master key (and for any request when
        neither a master key nor SSO is set: loopback only, see Settings)."""
        header = request.header(b"authorization")
        if header is None:
            if self._open:
                return MASTER
            if request.path.startswith("/api/"):  # the dashboard's calls: its cookie
                session = self.sessions.from_request(request)
                if session is not None:
                    return session.principal
            raise AuthenticationFailed(
                "Missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key",
                reason="missing",
            )
        scheme, _, token = header.strip().partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            if self._open:
                return MASTER
            raise AuthenticationFailed(
                "Malformed Authorization header: send 'Authorization: Bearer <key>'",
                code="invalid_api_key", reason="malformed",
            )
        if self._open and not looks_like_key(token):
            return MASTER
        return self.principal_of_token(token)[1]

    def principal_of_token(self, token: bytes) -> tuple[str, Principal]:
        """Who a bearer token is, and how (key, master, oidc): for a request's header and
        for the dashboard's sign-in form. Raises AuthenticationFailed."""
        if looks_like_key(token):
            if not self.keys.loaded:
                raise StoreUnavailableError(
                    "Virtual keys are not loaded yet: the key store is unreachable",
                    code="keys_unavailable", retry_after=1)
            principal = self.keys.lookup(token)
            if principal is None:
                raise AuthenticationFailed("Invalid API key", reason="invalid")
            if expired(principal):
                raise AuthenticationFailed("This API key has expired", code="expired_api_key",
                                           reason="expired")
            return "key", principal
        if self._master_key is not None and hmac.compare_digest(token, self._master_key):
            return "master", MASTER
        if self.oidc is not None and looks_like_jwt(token):
            return "oidc", self.oidc.verify(token)
        raise AuthenticationFailed("Invalid API key", reason="invalid")

    @staticmethod
    def _authorize(principal: Principal, path: str) -> None:
        needed = permission_for(path)
        if not principal.can(needed):
            raise PermissionDenied(
                f"This key's role ({principal.role}) may not {_DOING[needed]}",
                code="insufficient_permissions")

    def finish(self, ctx: RequestContext) -> None:
        ctx.finished_at = time.perf_counter()
        if ctx.limit is not None:
            self.limiter.settle(ctx.limit, ctx.usage)
        if ctx.budget is not None:
            self.spend.settle(ctx)
        if ctx.endpoint.startswith("/v1/"):
            self.recent.add(ctx.trace_key, ctx.team)
        for observer in self.observers:
            try:
                observer(ctx)
            except Exception:  # telemetry must never break a request
                log.exception("observer %r failed", observer)




_DOING = {"infer": "call models", "feedback": "send feedback", "read": "read traces and stats",
          "keys": "manage keys", "admin": "administer the gateway",
          "subjects": "export users' data"}


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


