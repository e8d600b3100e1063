"""The endpoint table: the OpenAI operations (run by :mod:`bastion.gateway.pipeline`),
the model list, health probes and the admin routes."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson

from bastion.api import audit as audit_routes
from bastion.api import keys as key_routes
from bastion.api import traces as observe_routes
from bastion.errors import ConfigError, InvalidRequest, ModelNotFound
from bastion.gateway.pipeline import OPERATIONS, Pipeline
from bastion.protocol.requests import decode_json_object
from bastion.routing.router import Route
from bastion.server.types import JSON_HEADERS, Request, Response

if TYPE_CHECKING:
    from bastion.gateway.app import Endpoint, Gateway
    from bastion.gateway.context import RequestContext


def table(gw: Gateway) -> dict[str, dict[str, Endpoint]]:
    pipeline = Pipeline(gw)

    async def list_models(request: Request, ctx: RequestContext) -> Response:
        may_use = ctx.principal.may_use
        data = [_describe(route) for name, route in gw.router.routes.items() if may_use(name)]
        return Response(200, orjson.dumps({"object": "list", "data": data}), JSON_HEADERS)

    async def deployments(request: Request, ctx: RequestContext) -> Response:
        now = time.monotonic()
        data = [
            {**d.describe(now), "queued": len(route.queue)}
            for route in gw.router.routes.values()
            for d in route.deployments
        ]
        return Response(200, orjson.dumps({"object": "list", "data": data}), JSON_HEADERS)

    async def reload_config(request: Request, ctx: RequestContext) -> Response:
        """Re-reads the configuration and applies it (``{"dry_run": true}``: check only)."""
        options = (
            decode_json_object(request.body, request.header(b"content-type"))
            if request.body
            else {}
        )
        dry_run = options.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise InvalidRequest("'dry_run' must be a boolean", param="dry_run")
        if gw.loader is None:
            raise InvalidRequest("This gateway was started without a configuration source")
        try:
            result = await gw.reload(gw.loader(), dry_run=dry_run)
        except ConfigError as exc:
            raise InvalidRequest(str(exc), code="invalid_config") from exc
        if result["applied"]:
            await gw.audit.record(ctx.principal.key_id or "master-key", "config.reload", None,
                                  {k: result[k] for k in ("added", "changed", "removed")})
            if gw.on_reloaded is not None:
                gw.on_reloaded()
        return Response(200, orjson.dumps(result), JSON_HEADERS)

    live_body = b'{"status":"ok","pid":%d}' % os.getpid()

    async def live(request: Request, ctx: RequestContext) -> Response:
        return Response(200, live_body, JSON_HEADERS)

    async def ready(request: Request, ctx: RequestContext) -> Response:
        states = {name: b.ready for name, b in gw.backends.items()}
        ok = gw.ready
        body = orjson.dumps({"status": "ready" if ok else "loading", "models": states})
        return Response(200 if ok else 503, body, JSON_HEADERS)

    return {
        **{path: {"POST": pipeline.endpoint(op)} for path, op in OPERATIONS.items()},
        "/v1/models": {"GET": list_models},
        "/health/live": {"GET": live},
        "/health/ready": {"GET": ready},
        "/api/deployments": {"GET": deployments},
        "/api/config/reload": {"POST": reload_config},
        "/metrics": {"GET": lambda request, ctx: gw.metrics.endpoint(request, ctx)},
        **observe_routes.table(gw),
        **key_routes.table(gw),
        **audit_routes.table(gw),
    }


def prefixed(gw: Gateway) -> list[tuple[str, dict[str, Endpoint]]]:
    """Routes with a path parameter: (prefix, methods), tried in order."""

    async def get_model(request: Request, ctx: RequestContext) -> Response:
        name = unquote(request.path[len("/v1/models/") :])
        if not ctx.principal.may_use(name):  # as for a model that does not exist
            raise ModelNotFound(
                f"The model '{name}' does not exist or you do not have access to it.",
                param="model")
        return Response(200, orjson.dumps(_describe(gw.router.route(name))), JSON_HEADERS)

    return [("/v1/models/", {"GET": get_model}), *observe_routes.prefixed(gw),
            *key_routes.prefixed(gw)]


def _describe(route: Route) -> dict[str, Any]:
    """The public model: the alias, described by its first deployment."""
    out = route.deployments[0].backend.describe()
    out["id"] = route.alias
    return out
