"""Endpoint handlers: the OpenAI API under ``/v1`` and the health probes.

Thin by design: decode and check the request (``bastion.protocol``), resolve the model,
call its backend, shape the response. Everything else lives in the gateway pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

import orjson

from bastion.errors import ModelNotFound
from bastion.protocol.requests import (
    check_chat_request,
    check_completion_request,
    check_embedding_request,
    decode_json_object,
)
from bastion.server.types import JSON_HEADERS, Request, Response, StreamingResponse

if TYPE_CHECKING:
    from bastion.gateway.app import Endpoint, Gateway
    from bastion.gateway.context import RequestContext


def table(gw: Gateway) -> dict[str, dict[str, Endpoint]]:
    async def chat_completions(
        request: Request, ctx: RequestContext
    ) -> Response | StreamingResponse:
        body = decode_json_object(request.body, request.header(b"content-type"))
        ctx.stream = check_chat_request(body)
        backend = gw.resolve(body["model"], ctx)
        return gw.respond(await backend.chat(body, ctx.stream, ctx), ctx)

    async def completions(request: Request, ctx: RequestContext) -> Response | StreamingResponse:
        body = decode_json_object(request.body, request.header(b"content-type"))
        ctx.stream = check_completion_request(body)
        backend = gw.resolve(body["model"], ctx)
        return gw.respond(await backend.completion(body, ctx.stream, ctx), ctx)

    async def embeddings(request: Request, ctx: RequestContext) -> Response | StreamingResponse:
        body = decode_json_object(request.body, request.header(b"content-type"))
        inputs = check_embedding_request(body)
        backend = gw.resolve(body["model"], ctx)
        return gw.respond(await backend.embeddings(body, inputs, ctx), ctx)

    async def list_models(request: Request, ctx: RequestContext) -> Response:
        data = [b.describe() for b in gw.backends.values()]
        return Response(200, orjson.dumps({"object": "list", "data": data}), JSON_HEADERS)

    async def live(request: Request, ctx: RequestContext) -> Response:
        return Response(200, b'{"status":"ok"}', JSON_HEADERS)

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
    }


def model_detail(gw: Gateway) -> dict[str, Endpoint]:
    async def get_model(request: Request, ctx: RequestContext) -> Response:
        name = unquote(request.path[len("/v1/models/") :])
        backend = gw.backends.get(name)
        if backend is None:
            raise ModelNotFound(
                f"The model '{name}' does not exist or you do not have access to it.",
                param="model",
            )
        return Response(200, orjson.dumps(backend.describe()), JSON_HEADERS)

    return {"GET": get_model}
