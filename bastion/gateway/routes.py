"""The endpoint table: the OpenAI operations (run by :mod:`bastion.gateway.pipeline`),
the model list, health probes and the admin routes."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson

from bastion.api import audit as audit_routes
from bastion.api import budgets as budget_routes
from bastion.api import data_keys as data_key_routes
from bastion.api import keys as key_routes
from bastion.api import openapi
from bastion.api import teams as team_routes
from bastion.api import traces as observe_routes
from bastion.api import users as user_routes
from bastion.api.openapi import Param, Reply, Spec, documented, listing, obj
from bastion.errors import ConfigError, InvalidRequest, ModelNotFound
from bastion.gateway.pipeline import OPERATIONS, Pipeline
from bastion.protocol.requests import decode_json_object
from bastion.protocol.schemas import MODEL, MODEL_LIST
from bastion.routing.router import Route
from bastion.server.types import JSON_HEADERS, Request, Response

if TYPE_CHECKING:
    from bastion.context import RequestContext
    from bastion.gateway.app import Endpoint, Gateway


def table(gw: Gateway) -> dict[str, dict[str, Endpoint]]:
    pipeline = Pipeline(gw)

    @documented(_LIST_MODELS)
    async def list_models(request: Request, ctx: RequestContext) -> Response:
        may_use = ctx.principal.may_use
        data = [_describe(route) for name, route in gw.router.routes.items() if may_use(name)]
        return Response(200, orjson.dumps({"object": "list", "data": data}), JSON_HEADERS)

    @documented(_DEPLOYMENTS)
    async def deployments(request: Request, ctx: RequestContext) -> Response:
        now = time.monotonic()
        data = [
            {**d.describe(now), "queued": len(route.queue)}
            for route in gw.router.routes.values()
            for d in route.deployments
        ]
        return Response(200, orjson.dumps({"object": "list", "data": data}), JSON_HEADERS)

    @documented(_RELOAD)
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

    @documented(_LIVE)
    async def live(request: Request, ctx: RequestContext) -> Response:
        return Response(200, live_body, JSON_HEADERS)

    @documented(_READY)
    async def ready(request: Request, ctx: RequestContext) -> Response:
        states = {name: b.ready for name, b in gw.backends.items()}
        ok = gw.ready
        body = orjson.dumps({"status": "ready" if ok else "loading", "models": states})
        return Response(200 if ok else 503, body, JSON_HEADERS)

    @documented(_METRICS)
    async def metrics(request: Request, ctx: RequestContext) -> Response:
        return await gw.metrics.endpoint(request, ctx)

    return {
        **{path: {"POST": pipeline.endpoint(op)} for path, op in OPERATIONS.items()},
        "/v1/models": {"GET": list_models},
        "/health/live": {"GET": live},
        "/health/ready": {"GET": ready},
        "/api/deployments": {"GET": deployments},
        "/api/config/reload": {"POST": reload_config},
        "/metrics": {"GET": metrics},
        "/openapi.json": {"GET": openapi.endpoint(lambda: (table(gw), prefixed(gw)))},
        **observe_routes.table(gw),
        **key_routes.table(gw),
        **data_key_routes.table(gw),
        **audit_routes.table(gw),
        **budget_routes.table(gw),
        **user_routes.table(gw),
        **team_routes.table(gw),
    }


def prefixed(gw: Gateway) -> list[tuple[str, dict[str, Endpoint]]]:
    """Routes with a path parameter: (prefix, methods), tried in order."""

    @documented(_GET_MODEL)
    async def get_model(request: Request, ctx: RequestContext) -> Response:
        name = unquote(request.path[len("/v1/models/") :])
        if not ctx.principal.may_use(name):  # as for a model that does not exist
            raise ModelNotFound(
                f"The model '{name}' does not exist or you do not have access to it.",
                param="model")
        return Response(200, orjson.dumps(_describe(gw.router.route(name))), JSON_HEADERS)

    return [("/v1/models/", {"GET": get_model}), *observe_routes.prefixed(gw),
            *key_routes.prefixed(gw), *user_routes.prefixed(gw), *team_routes.prefixed(gw),
            *data_key_routes.prefixed(gw)]


def _describe(route: Route) -> dict[str, Any]:
    """The public model: the alias, described by its first deployment."""
    out = route.deployments[0].backend.describe()
    out["id"] = route.alias
    return out


# ---------------------------------------------------------------------- for /openapi.json
_LIST_MODELS = Spec("List the models", "models", {200: Reply("The models", MODEL_LIST)})
_GET_MODEL = Spec(
    "Retrieve a model", "models", {200: Reply("The model", MODEL)},
    {404: "No such model, or the key may not use it (model_not_found)"},
    params=(Param("model", "path", {"type": "string", "minLength": 1},
                  "The model's name (an alias; percent-encode a '/')"),),
    path="/v1/models/{model}")
_DEPLOYMENTS = Spec("List the deployments and their state", "operations", {200: Reply(
    "Every deployment of every model", listing(obj({
        "name": {"type": "string"}, "alias": {"type": "string"}, "kind": {"type": "string"},
        "ready": {"type": "boolean"}, "available": {"type": "boolean"},
        "breaker": {"type": "string"}, "in_flight": {"type": "integer"},
        "queued": {"type": "integer"}}, ("name", "alias", "kind", "ready", "queued")),
        "Deployments"))})
_NAMES = {"type": "array", "items": {"type": "string"}}
_RELOAD = Spec(
    "Re-read and apply the configuration", "operations",
    {200: Reply("What changed (applied: false for a dry run)", obj(
        {"applied": {"type": "boolean"}, "added": _NAMES, "changed": _NAMES,
         "removed": _NAMES, "unchanged": _NAMES, "restart_required": _NAMES},
        ("applied", "added", "changed", "removed")))},
    {400: "dry_run is not a boolean, the new configuration is invalid (invalid_config), or "
          "the gateway has no configuration source"},
    obj({"dry_run": {"type": "boolean", "description": "Check only"}}), body_required=False)
_LIVE = Spec("Liveness", "operations", {200: Reply("The process answers", obj(
    {"status": {"const": "ok"}, "pid": {"type": "integer"}}, ("status", "pid")))})
_READINESS = obj({"status": {"enum": ["ready", "loading"]}, "models": {
    "type": "object", "additionalProperties": {"type": "boolean"}}}, ("status", "models"))
_READY = Spec("Readiness", "operations", {
    200: Reply("Every model is loaded", _READINESS),
    503: Reply("Still loading (not the error envelope)", _READINESS)})
_METRICS = Spec(
    "Prometheus metrics", "operations",
    {200: Reply("The exposition", media={"text/plain": {"type": "string"}})},
    {404: "Metrics are disabled (metrics.enabled: false)"},
    description="Needs an admin key when a master key is set and metrics.auth is true.")
