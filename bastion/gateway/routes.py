"""Endpoint handlers: the OpenAI API under ``/v1`` and the health probes.

Thin by design: decode and check the request (``bastion.protocol``), resolve the model,
call its backend, shape the response. Everything else lives in the gateway pipeline.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson

from bastion.backends.base import Completion
from bastion.errors import ConfigError, InvalidRequest, ModelNotFound, PermissionDenied
from bastion.gateway import audit_routes, key_routes, observe_routes
from bastion.governance.limits import Limiter
from bastion.protocol.requests import (
    check_chat_request,
    check_completion_request,
    check_embedding_request,
    decode_json_object,
)
from bastion.routing.router import Route
from bastion.server.types import JSON_HEADERS, Request, Response, StreamingResponse

if TYPE_CHECKING:
    from bastion.gateway.app import Endpoint, Gateway
    from bastion.gateway.context import RequestContext


def table(gw: Gateway) -> dict[str, dict[str, Endpoint]]:
    async def chat_completions(
        request: Request, ctx: RequestContext
    ) -> Response | StreamingResponse:
        body = decode_json_object(request.body, request.header(b"content-type"))
        ctx.stream = stream = check_chat_request(body)
        _describe_request(ctx, "chat", body, gw.limiter)
        sent = await gw.guards.check_input(ctx, body) if gw.guards is not None else body
        result = await gw.router.call(
            body["model"], sent, lambda backend, b: backend.chat(b, stream, ctx), ctx
        )
        raw = result  # the model's own answer (placeholders, no originals): for a re-ask
        result, reask = await gw.guard_output(result, ctx)
        if reask is not None and isinstance(raw, Completion):  # once, json_schema
            again = {**sent, "messages": [*sent["messages"], *_reask_turn(raw.body, reask)]}
            result = await gw.router.call(
                body["model"], again, lambda backend, b: backend.chat(b, False, ctx), ctx
            )
            result, _ = await gw.guard_output(result, ctx)
        return gw.respond(result, ctx)

    async def completions(request: Request, ctx: RequestContext) -> Response | StreamingResponse:
        body = decode_json_object(request.body, request.header(b"content-type"))
        ctx.stream = stream = check_completion_request(body)
        _describe_request(ctx, "text_completion", body, gw.limiter)
        sent = await gw.guards.check_input(ctx, body) if gw.guards is not None else body
        result = await gw.router.call(
            body["model"], sent, lambda backend, b: backend.completion(b, stream, ctx), ctx
        )
        result, _ = await gw.guard_output(result, ctx)
        return gw.respond(result, ctx)

    async def embeddings(request: Request, ctx: RequestContext) -> Response | StreamingResponse:
        body = decode_json_object(request.body, request.header(b"content-type"))
        inputs = check_embedding_request(body)
        _describe_request(ctx, "embeddings", body, gw.limiter)
        if gw.guards is not None:
            sent = await gw.guards.check_input(ctx, body)
            if sent is not body:
                body, inputs = sent, check_embedding_request(sent)
        result = await gw.router.call(
            body["model"], body, lambda backend, b: backend.embeddings(b, inputs, ctx), ctx
        )
        return gw.respond(result, ctx)

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
        "/v1/chat/completions": {"POST": chat_completions},
        "/v1/completions": {"POST": completions},
        "/v1/embeddings": {"POST": embeddings},
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


def _describe_request(ctx: RequestContext, operation: str, body: dict[str, Any],
                      limiter: Limiter) -> None:
    """What the trace needs from a validated request (references, no copies)."""
    ctx.parsed_at = time.perf_counter()
    if ctx.principal.models is not None and body["model"] not in ctx.principal.models:
        raise PermissionDenied(f"This key may not use the model '{body['model'][:128]}'",
                               code="model_not_allowed", param="model")
    if ctx.principal.limits is not None:  # the key's RPM, TPM and parallel limits (429)
        ctx.limit = limiter.admit(ctx.principal, body, len(ctx.raw_body or b""))
    ctx.operation = operation
    ctx.body = body
    user = body.get("user")
    if isinstance(user, str) and user:
        ctx.user = user[:256]
    raw = ctx.header(b"x-bastion-session")
    if raw is not None:
        ctx.session = raw.decode("latin-1")[:256]
    else:
        metadata = body.get("metadata")
        if isinstance(metadata, dict):
            session = metadata.get("session_id")
            if isinstance(session, str) and session:
                ctx.session = session[:256]


def _reask_turn(answer: bytes, detail: str) -> list[dict[str, Any]]:
    """The model's answer and the one-shot request to fix it (json_schema violations)."""
    from bastion.guards.output.schema import reask_message

    try:
        data = orjson.loads(answer)
        content = data["choices"][0]["message"]["content"] or ""
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        content = ""
    return [{"role": "assistant", "content": content}, reask_message(detail)]


def _describe(route: Route) -> dict[str, Any]:
    """The public model: the alias, described by its first deployment."""
    out = route.deployments[0].backend.describe()
    out["id"] = route.alias
    return out
