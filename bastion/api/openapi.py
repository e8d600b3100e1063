"""The gateway's OpenAPI 3.1 document, built from the endpoint table, served at
``GET /openapi.json``.

Each endpoint carries its own description: a :class:`Spec` attached with :func:`documented`
where the handler is defined (``bastion/gateway/routes.py``, the ``bastion/api`` modules,
``gateway.pipeline.OPERATIONS`` for the OpenAI operations). :func:`document` walks
``routes.table`` and ``routes.prefixed`` and adds what follows from the code rather than
from a spec: the security of each path and the permission it needs
(``governance.roles.permission_for``), and the errors every request of its kind can get
(authentication, roles, headers, body decoding, the body limit, a bug). A route with no
spec still appears, marked ``x-bastion-undocumented`` (:func:`undocumented` lists them; a
unit test fails on any), so a new route cannot be missing from the document unnoticed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson

from bastion.governance.roles import GRANTS, ROLES, permission_for
from bastion.server.types import JSON_HEADERS, Request, Response

if TYPE_CHECKING:
    from bastion.context import RequestContext
    from bastion.gateway.app import Endpoint

Schema = dict[str, Any]
Table = dict[str, dict[str, "Endpoint"]]
Prefixed = list[tuple[str, dict[str, "Endpoint"]]]
F = TypeVar("F", bound=Callable[..., Any])

OPENAPI_VERSION = "3.1.0"
BEARER = "bearerAuth"
ERROR = {"$ref": "#/components/schemas/Error"}
_ATTRIBUTE = "__openapi__"
_PATH_PARAM = re.compile(r"\{([^}/]+)\}")


@dataclass(frozen=True, slots=True)
class Param:
    """A query, path or header parameter."""

    name: str
    where: Literal["query", "path", "header"]
    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A success response: its JSON body's schema, or other media types."""

    description: str
    schema: Schema | None = None  # application/json
    media: Mapping[str, Schema] = field(default_factory=dict)  # e.g. text/event-stream


@dataclass(frozen=True, slots=True)
class Spec:
    """What one operation takes and answers. ``errors``: the statuses (with when) its
    handler raises, beyond those :func:`document` adds for every operation of its kind.
    ``method`` and ``path`` only for a handler registered under several methods or a
    prefix (``routes.prefixed``): the method and the path template it serves."""

    summary: str
    tag: str
    replies: Mapping[int, Reply]
    errors: Mapping[Any, str] = field(default_factory=dict)  # a status, or "4XX": when
    body: Schema | None = None  # a JSON request body
    body_required: bool = True
    params: tuple[Param, ...] = ()
    description: str = ""
    method: str | None = None
    path: str | None = None


def documented(*specs: Spec) -> Callable[[F], F]:
    """Attaches ``specs`` to an endpoint (no wrapper: the request path is unchanged)."""

    def attach(endpoint: F) -> F:
        setattr(endpoint, _ATTRIBUTE, specs)  # a plain function attribute
        return endpoint

    return attach


def specs_of(endpoint: Any) -> tuple[Spec, ...]:
    found = getattr(endpoint, _ATTRIBUTE, ())
    return found if isinstance(found, tuple) else ()


def nullable(schema: Schema) -> Schema:
    """``schema`` or JSON null."""
    kind = schema.get("type")
    if isinstance(kind, str) and set(schema) <= _SIMPLE_KEYWORDS:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


_SIMPLE_KEYWORDS = frozenset({"type", "minimum", "maximum", "minLength", "maxLength",
                              "description", "pattern", "exclusiveMinimum", "format"})


def obj(properties: Mapping[str, Schema], required: tuple[str, ...] = (),
        description: str = "", **extra: Any) -> Schema:
    """An object schema (further properties allowed unless ``extra`` says otherwise)."""
    out: Schema = {"type": "object", "properties": dict(properties)}
    if required:
        out["required"] = list(required)
    if description:
        out["description"] = description
    return {**out, **extra}


def listing(item: Schema, description: str, **more: Schema) -> Schema:
    """``{"object": "list", "data": [item...]}`` (and ``more`` properties)."""
    return obj({"object": {"const": "list"}, "data": {"type": "array", "items": item},
                **more}, ("object", "data", *more), description)


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


# ---------------------------------------------------------------------- the document
_STANDARD_ERRORS = {
    400: "The request is malformed (an invalid x-bastion-timeout, a malformed HTTP "
         "request)",
    500: "A bug: the envelope carries the request id the gateway's log has it under",
}
_GUARDED_ERRORS = {
    400: "An invalid x-bastion-timeout, x-bastion-priority or x-bastion-tenant header",
    401: "No key, a malformed Authorization header, an unknown, expired or revoked key",
    403: "The key's role lacks the permission this operation needs "
         "(x-bastion-permission)",
    503: "Virtual keys are not loaded yet: the key store is unreachable (keys_unavailable)",
}
_BODY_ERRORS = {
    400: "The body is not a JSON object, or a field is invalid (param names it)",
    413: "The body exceeds server.max_body_bytes",
    415: "A multipart body (send application/json)",
}
_ERROR_HEADERS: dict[int, dict[str, Schema]] = {
    401: {"WWW-Authenticate": {"description": "Bearer realm=\"bastion\"",
                               "schema": {"type": "string"}, "required": True}},
    429: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}},
}
_COMMON_PARAMS = ("RequestId", "Timeout")
_GUARDED_PARAMS = ("Priority", "Tenant")


def guarded(path: str) -> bool:
    """Whether requests to ``path`` are authenticated and authorized (``Gateway.handle``)."""
    return path.startswith(("/v1/", "/api/"))


def document(table: Table, prefixed: Prefixed) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these routes (``routes.table``, ``routes.prefixed``)."""
    paths: dict[str, dict[str, Any]] = {}
    for path, methods in table.items():
        for method, endpoint in methods.items():
            _add(paths, path, method, endpoint, None)
    for prefix, methods in prefixed:
        for method, endpoint in methods.items():
            _add(paths, prefix + "{id}", method, endpoint, prefix)
    return {
        "openapi": OPENAPI_VERSION,
        "info": _INFO,
        "tags": _TAGS,
        "paths": dict(sorted(paths.items())),
        "components": components(),
    }


def undocumented(table: Table, prefixed: Prefixed) -> list[str]:
    """``METHOD path`` of every route whose endpoint has no spec (for that method)."""
    missing = [f"{m} {p}" for p, methods in table.items() for m, e in methods.items()
               if not [s for s in specs_of(e) if s.method in (None, m)]]
    missing += [f"{m} {p}{{id}}" for p, methods in prefixed for m, e in methods.items()
                if not [s for s in specs_of(e) if s.method in (None, m)]]
    return missing


def _add(paths: dict[str, dict[str, Any]], path: str, method: str, endpoint: Any,
         prefix: str | None) -> None:
    specs = [s for s in specs_of(endpoint) if s.method in (None, method)]
    if not specs:
        paths.setdefault(path, {})[method.lower()] = _stub(path, method)
        return
    for spec in specs:
        where = spec.path or path
        if prefix is not None and not where.startswith(prefix):
            raise ValueError(f"{method} {where}: not under its route's prefix {prefix}")
        paths.setdefault(where, {})[method.lower()] = operation(where, method, spec)


def operation(path: str, method: str, spec: Spec) -> dict[str, Any]:
    """One Operation Object."""
    out: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": spec.summary,
        "tags": [spec.tag],
    }
    if spec.description:
        out["description"] = spec.description
    params = [{"$ref": f"#/components/parameters/{n}"} for n in _COMMON_PARAMS]
    if guarded(path):
        params += [{"$ref": f"#/components/parameters/{n}"} for n in _GUARDED_PARAMS]
    params += [_path_param(name, spec) for name in _PATH_PARAM.findall(path)]
    params += [_param(p) for p in spec.params if p.where != "path"]
    out["parameters"] = params
    if spec.body is not None:
        out["requestBody"] = {"required": spec.body_required,
                              "content": {"application/json": {"schema": spec.body}}}
    out["responses"] = _responses(path, spec)
    permission = _permission(path)
    if permission is None:
        out["security"] = []
    else:
        out["security"] = [{BEARER: []}]
        out["x-bastion-permission"] = permission
        out["x-bastion-roles"] = [r for r in ROLES if permission in GRANTS[r]]
    return out


def _permission(path: str) -> str | None:
    return permission_for(path) if guarded(path) or path == "/metrics" else None


def _operation_id(method: str, path: str) -> str:
    return f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}"


def _param(p: Param) -> dict[str, Any]:
    out = {"name": p.name, "in": p.where, "required": p.required or p.where == "path",
           "description": p.description, "schema": p.schema}
    if p.where == "query":
        out["allowEmptyValue"] = True  # every handler reads ?name= as no name at all
    return out


def _path_param(name: str, spec: Spec) -> dict[str, Any]:
    given = next((p for p in spec.params if p.where == "path" and p.name == name), None)
    if given is None:
        given = Param(name, "path", {"type": "string", "minLength": 1}, f"The {name}")
    return _param(given)


def _responses(path: str, spec: Spec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, reply in sorted(spec.replies.items()):
        out[str(status)] = _reply(reply)
    errors: dict[int, str] = dict(_STANDARD_ERRORS)
    if guarded(path):
        errors.update(_GUARDED_ERRORS)
    elif path == "/metrics":
        errors.update({k: _GUARDED_ERRORS[k] for k in (401, 403)})
    if spec.body is not None:
        errors.update(_BODY_ERRORS)
    errors.update({k: v for k, v in spec.errors.items() if isinstance(k, int)})
    for status, when in sorted(errors.items()):
        if str(status) not in out:
            out[str(status)] = _error(when, _ERROR_HEADERS.get(status, {}))
    for key, when in spec.errors.items():  # "4XX": the codes above take precedence
        if isinstance(key, str):
            out[key] = _error(when, {})
    return out


def _error(when: str, headers: dict[str, Schema]) -> dict[str, Any]:
    return {"description": when, "content": {"application/json": {"schema": ERROR}},
            "headers": {**headers, **_REQUEST_ID_HEADER}}


_REQUEST_ID_HEADER = {"x-request-id": {"$ref": "#/components/headers/RequestId"}}


def _reply(reply: Reply) -> dict[str, Any]:
    content = {media: {"schema": schema} for media, schema in reply.media.items()}
    if reply.schema is not None:
        content = {"application/json": {"schema": reply.schema}, **content}
    return {"description": reply.description, "headers": dict(_REQUEST_ID_HEADER),
            "content": content}


def _stub(path: str, method: str) -> dict[str, Any]:
    """An operation for a route nobody described yet: the errors it can give, no more."""
    op = operation(path, method, Spec("(undocumented)", "undocumented", {}))
    op["x-bastion-undocumented"] = True
    op["responses"]["default"] = {"description": "Not described yet"}
    return op


# ---------------------------------------------------------------------- components
_INFO = {
    "title": "Bastion",
    "version": "1",
    "summary": "An OpenAI-compatible LLM gateway",
    "description": (
        "`/v1/*` speaks OpenAI's API; `/api/*` is Bastion's management API. Both take "
        "`Authorization: Bearer <key>` (the master key, or a virtual key whose role has "
        "the operation's `x-bastion-permission`); with no master key set, a loopback-only "
        "gateway lets every request through. Every error is one OpenAI error envelope. "
        "`/health/*` and `/openapi.json` are open; `/metrics` needs an admin key unless "
        "`metrics.auth` is false or no master key is set."
    ),
    "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
}
_TAGS = [
    {"name": "openai", "description": "OpenAI-compatible inference"},
    {"name": "models", "description": "The configured models"},
    {"name": "traces", "description": "Traces, stats and feedback"},
    {"name": "keys", "description": "Virtual keys"},
    {"name": "audit", "description": "The audit log"},
    {"name": "operations", "description": "Deployments, configuration, health, metrics"},
    {"name": "meta", "description": "This document"},
]


def components() -> dict[str, Any]:
    return {
        "securitySchemes": {BEARER: {
            "type": "http", "scheme": "bearer",
            "description": "The master key (server.master_key) or a virtual key (bst-...)",
        }},
        "schemas": {"Error": _ERROR_SCHEMA},
        "headers": {"RequestId": {
            "description": "The request's id: the client's x-request-id when valid, else "
                           "the gateway's", "schema": {"type": "string"}, "required": True,
        }},
        "parameters": {
            "RequestId": _param(Param(
                "x-request-id", "header", {"type": "string"},
                "The client's request id (1-128 of A-Z a-z 0-9 . _ : -), echoed back; "
                "another value is replaced by the gateway's own")),
            "Timeout": _param(Param(
                "x-bastion-timeout", "header",
                {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                "Seconds by which the request must be answered")),
            "Priority": _param(Param(
                "x-bastion-priority", "header", {"type": "string", "pattern": "^[0-9]$"},
                "0 (most urgent) to 9 (admission.priority_header)")),
            "Tenant": _param(Param(
                "x-bastion-tenant", "header",
                {"type": "string", "pattern": r"^[A-Za-z0-9._:@/\-]{1,128}$"},
                "The tenant for fair sharing (admission.tenant_header); a key's team wins")),
        },
    }


_ERROR_SCHEMA = obj({"error": obj({
    "message": {"type": "string"},
    "type": {"type": "string", "examples": ["invalid_request_error", "authentication_error",
                                            "permission_error", "not_found_error",
                                            "rate_limit_error", "server_error"]},
    "param": {"type": ["string", "null"]},
    "code": {"type": ["string", "null"]},
}, ("message", "type", "param", "code"))}, ("error",),
    "The OpenAI error envelope, for every error of every route")


# ---------------------------------------------------------------------- the endpoint
OPENAPI_SPEC = Spec(
    "This OpenAPI 3.1 document", "meta",
    {200: Reply("The document", {"type": "object", "required": ["openapi", "paths"]})},
    description="Open like the health probes: it describes the routes, no data.",
)


def endpoint(source: Callable[[], tuple[Table, Prefixed]]) -> Endpoint:
    """``GET /openapi.json`` over the routes ``source()`` gives, built on the first
    request and kept as bytes."""
    built: list[bytes] = []

    @documented(OPENAPI_SPEC)
    async def openapi(request: Request, ctx: RequestContext) -> Response:
        if not built:
            built.append(orjson.dumps(document(*source())))
        return Response(200, built[0], JSON_HEADERS)

    return openapi
