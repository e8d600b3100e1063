"""The ``/v1`` request path after authentication and admission, one stage per line.

:meth:`Pipeline.run` is the whole path of every OpenAI operation, in DESIGN.md's order::

    parse        decode_json_object                 400 on bad JSON / content type
    validate     Operation.check                    400 naming the field
    describe     describe()                         user, session, the body for the trace
    models       Pipeline.allow_model               403 model_not_allowed (the key's list)
    limits       Pipeline.limit                     429 (RPM, TPM, parallel: key, team, user,
                                                    model), 503
    budgets      Spend.reserve                      402 budget_exceeded (worst case held)
    input guards GuardStage.check_input             400 content_blocked, 503 guard_error
    route + call Router.call                        retries, failover, fallbacks
    output guards Pipeline.guard_output             refusal, re-ask once (json_schema)
    respond      Pipeline.respond                   JSON, or SSE relayed chunk by chunk

The operations are a table of (check, call) pairs (:data:`OPERATIONS`); a new stage (a
budget, a cache, prompt resolution) is one line in :meth:`run`, for all of them at once.
Authentication, authorization and admission run before, in ``Gateway.handle``, because
they apply to every path (``/api`` too); the trace is finished in ``Gateway.finish``
whatever happened (an error, a bug, a client gone).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from bastion.api.openapi import Spec, documented
from bastion.backends.base import Backend, ClosingStream, Completion, EventStream, Result
from bastion.errors import PermissionDenied
from bastion.governance.limits import Limiter, Ticket
from bastion.protocol.requests import (
    check_chat_request,
    check_completion_request,
    check_embedding_request,
    decode_json_object,
)
from bastion.protocol.schemas import CHAT_SPEC, COMPLETION_SPEC, EMBEDDING_SPEC
from bastion.server.types import (
    JSON_HEADERS,
    SSE_HEADERS,
    Request,
    Response,
    StreamingResponse,
    aclose,
)

if TYPE_CHECKING:
    from bastion.context import RequestContext
    from bastion.gateway.app import Gateway

Call = Callable[[Backend, dict[str, Any], Any, "RequestContext"], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One OpenAI operation: how its body is checked (the result, a stream flag or the
    inputs, goes to ``call``) and how a backend answers it."""

    name: str  # the trace's operation
    check: Callable[[dict[str, Any]], Any]
    call: Call
    streams: bool  # check() returns the request's stream flag
    output_guards: bool = True
    reask: bool = False  # json_schema violations may be asked about once
    spec: Spec | None = None  # its description in /openapi.json


OPERATIONS: dict[str, Operation] = {
    "/v1/chat/completions": Operation(
        "chat", check_chat_request,
        lambda backend, body, stream, ctx: backend.chat(body, stream, ctx),
        streams=True, reask=True, spec=CHAT_SPEC),
    "/v1/completions": Operation(
        "text_completion", check_completion_request,
        lambda backend, body, stream, ctx: backend.completion(body, stream, ctx),
        streams=True, spec=COMPLETION_SPEC),
    "/v1/embeddings": Operation(
        "embeddings", check_embedding_request,
        lambda backend, body, inputs, ctx: backend.embeddings(body, inputs, ctx),
        streams=False, output_guards=False, spec=EMBEDDING_SPEC),
}


class Pipeline:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def endpoint(self, op: Operation) -> Callable[[Request, RequestContext],
                                                   Awaitable[Response | StreamingResponse]]:
        async def endpoint(request: Request, ctx: RequestContext
                           ) -> Response | StreamingResponse:
            return await self.run(op, request, ctx)

        return documented(op.spec)(endpoint) if op.spec is not None else endpoint

    async def run(self, op: Operation, request: Request, ctx: RequestContext
                  ) -> Response | StreamingResponse:
        body = decode_json_object(request.body, request.header(b"content-type"))
        checked = op.check(body)
        describe(ctx, op, body, checked)
        if body["model"] in self.gw.router.routes:  # a request refused before routing (a
            ctx.model = body["model"]  # guard, a limit) names its model too; only a known
        self.allow_model(ctx, body)  # alias: models are metric labels (bounded)
        if ctx.principal.limits is not None or self.gw.limiter.scoped:  # else no call
            admitting = self.limit(ctx, body)  # None: decided (in memory, or leases with
            if admitting is not None:  # room), or no limit
                ctx.limit = await admitting
        reserving = self.gw.spend.reserve(ctx, body)  # None: done (in memory, or a lease
        if reserving is not None:  # with room), or no budget; else one Redis round trip
            await reserving
        sent, checked = await self.input_guards(op, ctx, body, checked)
        result = await self.gw.router.call(body["model"], sent, _bound(op, checked, ctx), ctx)
        if op.output_guards:
            result = await self.output_guards(op, ctx, body, sent, result)
        return self.respond(result, ctx)

    # ------------------------------------------------------------------ stages
    @staticmethod
    def allow_model(ctx: RequestContext, body: dict[str, Any]) -> None:
        models = ctx.principal.models
        if models is not None and body["model"] not in models:
            raise PermissionDenied(f"This key may not use the model '{body['model'][:128]}'",
                                   code="model_not_allowed", param="model")

    def limit(self, ctx: RequestContext, body: dict[str, Any]) -> Awaitable[Ticket] | None:
        """The RPM, TPM and parallel limits of the request's key, team, user and model
        alias (429), run when a key has limits or any scope is configured. In memory the
        ticket is taken here; through Redis (limits.redis_url) too while the process's
        leases have room, else an awaitable gives it (no coroutine when no limit
        applies)."""
        limiter, size = self.gw.limiter, len(ctx.raw_body or b"")
        if isinstance(limiter, Limiter):
            ctx.limit = limiter.admit(ctx.principal, body, size, ctx.team, ctx.user)
            return None
        scopes = limiter.resolve(ctx.principal, ctx.team, ctx.user, body["model"])
        if scopes is None:
            return None
        ctx.limit = limiter.admit_leased(scopes, body, size)  # leases with room: no await
        return None if ctx.limit is not None else limiter.admit_scopes(scopes, body, size)

    async def input_guards(self, op: Operation, ctx: RequestContext, body: dict[str, Any],
                           checked: Any) -> tuple[dict[str, Any], Any]:
        """The body that goes upstream (redacted, pseudonymized), and what its check says
        of it (embeddings' inputs are the guarded texts)."""
        guards = self.gw.guards
        own = ctx.principal.guard_policy
        if own is not None:  # the key's own policy: built on its first request
            guards = await self.gw.guards_for(own)
        if guards is None:
            return body, checked
        sent = await guards.check_input(ctx, body)
        return sent, (checked if sent is body else op.check(sent))

    async def output_guards(self, op: Operation, ctx: RequestContext, body: dict[str, Any],
                            sent: dict[str, Any], result: Result) -> Result:
        raw = result  # the model's own answer (placeholders, no originals): for a re-ask
        result, reask = await self.guard_output(result, ctx)
        if reask is not None and op.reask and isinstance(raw, Completion):  # once
            again = {**sent, "messages": [*sent["messages"], *_reask_turn(raw.body, reask)]}
            result = await self.gw.router.call(body["model"], again,
                                               _bound(op, False, ctx), ctx)
            result, _ = await self.guard_output(result, ctx)
        return result

    async def guard_output(self, result: Result, ctx: RequestContext) -> tuple[Result, str | None]:
        """The output guards over an answer (a stream is wrapped, scanned as it goes), and a
        violation to re-ask about (json_schema with ``reask``), if any."""
        guards = self.gw.guards
        if guards is None or not guards.wants_output(ctx):
            return result, None
        if isinstance(result, Completion):
            if result.status != 200:
                return result, None
            body, reask = await guards.check_completion(ctx, result.body)
            return Completion(body, result.status, result.headers), reask
        inner = result.events
        result.events = ClosingStream(guards.watch_stream(ctx, inner), lambda: aclose(inner))
        return result, None

    def respond(self, result: Result, ctx: RequestContext) -> Response | StreamingResponse:
        gw = self.gw
        if isinstance(result, Completion):
            ctx.response_body = result.body
            return Response(result.status, result.body, JSON_HEADERS + result.headers)
        assert isinstance(result, EventStream)
        finished = False

        def on_end() -> Awaitable[None] | None:  # the last event relayed: the trace is
            nonlocal finished  # in the spool file before the terminating chunk goes out
            finished = True
            gw.finish(ctx)
            return gw.tracing.written() if gw.tracing is not None else None

        if gw.watch_streams:
            result.events = _watched(result.events, ctx, gw.keep_chunks, on_end)

        def on_close(completed: bool) -> None:
            if finished:
                return
            if not completed and ctx.error is None:
                ctx.error = "client disconnected"
                ctx.status = 499
            gw.finish(ctx)

        return StreamingResponse(200, result.events, SSE_HEADERS + result.headers, on_close)


def _bound(op: Operation, checked: Any, ctx: RequestContext
           ) -> Callable[[Backend, dict[str, Any]], Awaitable[Result]]:
    call = op.call
    return lambda backend, body: call(backend, body, checked, ctx)


def describe(ctx: RequestContext, op: Operation, body: dict[str, Any], checked: Any) -> None:
    """What the trace needs from a validated request (references, no copies)."""
    ctx.parsed_at = time.perf_counter()
    if op.streams:
        ctx.stream = checked
    ctx.operation = op.name
    ctx.body = body
    user = body.get("user")
    if isinstance(user, str) and user and ctx.principal.user is None:  # a key's user wins:
        ctx.user = user[:256]  # its budgets and limits are not escaped by naming another
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


def _watched(events: AsyncIterator[bytes], ctx: RequestContext, keep: bool,
             on_end: Callable[[], Awaitable[None] | None] | None = None) -> ClosingStream:
    """Relays a stream, noting when its last event went out and (``keep``) the events
    themselves, for the trace (parsed later, off the request path); ``on_end()`` once the
    stream has ended, before the server writes its terminating chunk (a SIGKILL after
    the client got the whole answer must not lose its trace)."""
    chunks: list[bytes] | None = [] if keep else None
    ctx.chunks = chunks
    clock = time.perf_counter

    async def relay() -> AsyncIterator[bytes]:
        count = 0
        try:
            async for chunk in events:
                if chunks is not None:
                    chunks.append(chunk)
                count += 1
                ctx.last_token_at = clock()
                yield chunk
            ctx.stream_events = count
            written = on_end() if on_end is not None else None
            if written is not None:
                await written
        finally:
            ctx.stream_events = count

    return ClosingStream(relay(), lambda: aclose(events))
