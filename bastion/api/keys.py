"""Admin API over virtual keys (``keys`` permission: developers for their team, admins).

    POST   /api/keys                 a new key: the token is in this answer only (201)
    GET    /api/keys                 the keys the asker may see (``team``, ``status`` filters)
    GET    /api/keys/{id}            one key
    POST   /api/keys/{id}/rotate     a new token with the same attributes; the old one
                                     keeps working for ``grace_seconds`` (default 0)
    POST   /api/keys/{id}/revoke     (or DELETE /api/keys/{id}) stops it at once

A change is applied to this worker's table at once and reaches the other workers (and
replicas on the same store) within a poll (``bastion.governance.keysync``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from bastion.api.openapi import Param, Reply, Schema, Spec, documented, listing, nullable, obj
from bastion.api.traces import _in_store, _json
from bastion.config_access import Budget
from bastion.errors import InvalidRequest, MethodNotAllowed, NotFound
from bastion.governance import admin
from bastion.governance.roles import ROLES
from bastion.protocol.requests import decode_json_object
from bastion.server.types import Request, Response

if TYPE_CHECKING:
    from bastion.context import RequestContext
    from bastion.gateway.app import Endpoint, Gateway

_LIST_PARAMS = frozenset({"team", "status"})
_STATUSES = ("active", "expired", "revoked")


def actor(ctx: RequestContext) -> str:
    """Who did it, for the audit log: a key's id, or the master key."""
    return ctx.principal.key_id or "master-key"


async def _audit_role(gw: Gateway, ctx: RequestContext, before: dict[str, Any] | None,
                      after: dict[str, Any]) -> None:
    """``role.grant`` (a key made with a role) or ``role.change``, for the audit log."""
    event = admin.role_event(before, after)
    if event is not None:
        await gw.audit.record(actor(ctx), event[0], after["id"], event[1])


def _facts(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in ("team", "role", "models", "limits", "guard_policy",
                                    "content_mode", "priority", "expires_at")}


def _policies(gw: Gateway) -> set[str]:
    return {"standard", "none", *gw.settings.guards.policies}


def table(gw: Gateway) -> dict[str, dict[str, Endpoint]]:
    @documented(CREATE_SPEC)
    async def create(request: Request, ctx: RequestContext) -> Response:
        body = decode_json_object(request.body, request.header(b"content-type"))
        token, row = admin.new_key_row(body, ctx.principal, gw.router.routes,
                                       gw.keys.digest_hex, known_policies=_policies(gw))
        stored = await _in_store(gw, lambda s: s.keys.insert(row))
        gw.keys.apply([stored])
        await gw.audit.record(actor(ctx), "key.create", stored["id"], _facts(stored))
        await _audit_role(gw, ctx, None, stored)
        return _json({**admin.public(stored), "key": token}, 201)

    @documented(LIST_SPEC)
    async def list_keys(request: Request, ctx: RequestContext) -> Response:
        params = dict(parse_qsl(request.query, keep_blank_values=True))
        unknown = sorted(set(params) - _LIST_PARAMS)
        if unknown:
            raise InvalidRequest(f"Unknown query parameter '{unknown[0][:64]}'; this "
                                 "endpoint takes status, team", param=unknown[0][:64])
        status = params.get("status") or None
        if status is not None and status not in _STATUSES:
            raise InvalidRequest(f"'status' must be one of {', '.join(_STATUSES)}",
                                 param="status")
        asker = ctx.principal
        team = params.get("team") or None
        if not asker.admin:
            team = asker.team  # a developer sees its team's keys, whatever it asks
        rows = await _in_store(gw, lambda s: s.keys.list(team))
        now = time.time()
        data = [admin.public(r, now) for r in rows]
        if status is not None:
            data = [k for k in data if k["status"] == status]
        return _json({"object": "list", "data": data})

    return {"/api/keys": {"POST": create, "GET": list_keys}}


def prefixed(gw: Gateway) -> list[tuple[str, dict[str, Endpoint]]]:
    async def load(key_id: str, ctx: RequestContext) -> dict[str, Any]:
        row = await _in_store(gw, lambda s: s.keys.get(key_id))
        return admin.visible(row, ctx.principal, key_id)

    async def change(key_id: str, ctx: RequestContext, values: dict[str, Any]) -> Response:
        row = await load(key_id, ctx)
        admin.check_may_change(row, ctx.principal)
        if row["revoked_at"] is not None:  # revoking again changes nothing
            return _json(admin.public(row))
        changed = await _in_store(gw, lambda s: s.keys.update(key_id, values))
        if changed is None:
            raise NotFound(f"No key with id '{key_id}'", code="key_not_found", param="id")
        gw.keys.apply([changed])
        await gw.audit.record(actor(ctx), "key.revoke", key_id, _facts(changed))
        return _json(admin.public(changed))

    async def rotate(key_id: str, request: Request, ctx: RequestContext) -> Response:
        body = (decode_json_object(request.body, request.header(b"content-type"))
                if request.body else {})
        unknown = sorted(set(body) - {"grace_seconds"})
        if unknown:
            raise InvalidRequest(f"Unknown field '{unknown[0]}'; rotate takes grace_seconds",
                                 param=unknown[0])
        grace = admin.grace_of(body)
        old = await load(key_id, ctx)
        admin.check_may_change(old, ctx.principal)
        if old["revoked_at"] is not None:
            raise InvalidRequest(f"Key '{key_id}' is revoked: create a new one",
                                 code="key_revoked", param="id")
        same = {k: old[k] for k in ("name", "team", "user", "role", "models", "limits",
                                    "metadata")}
        now = time.time()
        token, row = admin.new_key_row({k: v for k, v in same.items() if v is not None},
                                       ctx.principal, old["models"] or gw.router.routes,
                                       gw.keys.digest_hex, now)
        row["expires_at"], row["rotated_from"] = old["expires_at"], key_id
        for name in ("guard_policy", "content_mode", "priority"):  # as they were (a
            row[name] = old.get(name)  # developer rotates a key an admin gave a policy)
        stored = await _in_store(gw, lambda s: s.keys.insert(row))
        until = now + grace
        ending = ({"revoked_at": now} if grace == 0 else
                  {"expires_at": min(until, old["expires_at"] or until)})
        ended = await _in_store(gw, lambda s: s.keys.update(key_id, ending))
        gw.keys.apply([stored, *([ended] if ended is not None else [])])
        await _audit_role(gw, ctx, old, stored)
        await gw.audit.record(actor(ctx), "key.rotate", key_id,
                              {**_facts(stored), "new_key": stored["id"], "grace_s": grace})
        return _json({**admin.public(stored), "key": token}, 201)

    @documented(*ONE_KEY_SPECS)
    async def one_key(request: Request, ctx: RequestContext) -> Response:
        rest = unquote(request.path[len("/api/keys/"):])
        key_id, _, action = rest.partition("/")
        if not key_id or "/" in action:
            raise NotFound(f"Unknown path: {request.method} {request.path}", code="unknown_url")
        if request.method == "GET" and not action:
            return _json(admin.public(await load(key_id, ctx)))
        if request.method == "DELETE" and not action:
            return await change(key_id, ctx, {"revoked_at": time.time()})
        if request.method == "POST" and action == "revoke":
            return await change(key_id, ctx, {"revoked_at": time.time()})
        if request.method == "POST" and action == "rotate":
            return await rotate(key_id, request, ctx)
        if action in ("", "revoke", "rotate"):
            allow = "GET, DELETE" if not action else "POST"
            raise MethodNotAllowed(
                f"Method {request.method} is not allowed for {request.path}; use {allow}",
                allow=allow)
        raise NotFound(f"Unknown path: {request.method} {request.path}", code="unknown_url")

    return [("/api/keys/", {m: one_key for m in ("GET", "POST", "DELETE")})]


# ---------------------------------------------------------------------- for /openapi.json
_NAME: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9._:@\-]{1,128}$"}
_SECONDS: Schema = {"type": "number"}
_STRINGS: Schema = {"type": "array", "items": {"type": "string"}}
_BUDGET: Schema = Budget.model_json_schema()  # soft must also be below limit
_LIMITS: Schema = {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "properties": {**{k: {"type": "integer", "minimum": 1, "maximum": 1_000_000_000}
                      for k in admin.LIMIT_FIELDS}, "budget": nullable(_BUDGET)},
    "description": "Requests and tokens a minute, requests in flight (429 beyond); a "
                   "budget here or beside, not both"}
CREATE_FIELDS: dict[str, Schema] = {  # admin.CREATE_FIELDS, each described (a test checks)
    "name": nullable(_NAME), "team": nullable(_NAME), "user": nullable(_NAME),
    "role": {"enum": list(ROLES), "description": "user by default"},
    "models": nullable({**_STRINGS, "description": "Configured models it may use; all "
                                                   "when absent"}),
    "limits": nullable(_LIMITS),
    "budget": nullable({**_BUDGET, "description": "A spend limit (402 at it)"}),
    "guard_policy": nullable({"type": "string", "description": "Guard policy of its requests "
                              "(before any attached one); an admin's to set"}),
    "content_mode": nullable({"enum": ["metadata", "redacted", "full"], "description":
                              "What its traces keep: the stricter of this and its team's"}),
    "priority": nullable({"type": "integer", "minimum": 0, "maximum": 9, "description":
                          "Admission priority, 0 most urgent (never above its team's best)"}),
    "expires_in": nullable({**_SECONDS, "description": "Seconds from now (ten years at "
                                                       "most); not with expires_at"}),
    "expires_at": nullable({**_SECONDS, "description": "Epoch seconds"}),
    "metadata": nullable({"type": "object", "maxProperties": 32,
                          "propertyNames": {"maxLength": 64},
                          "additionalProperties": {"type": "string", "maxLength": 512}}),
}
API_KEY = obj({
    "object": {"const": "api_key"}, "id": {"type": "string"}, "hint": {"type": "string"},
    "name": nullable({"type": "string"}), "team": nullable({"type": "string"}),
    "user": nullable({"type": "string"}), "role": {"enum": list(ROLES)},
    "models": nullable(_STRINGS), "limits": nullable({"type": "object"}),
    "budget": nullable({"type": "object"}), "guard_policy": nullable({"type": "string"}),
    "content_mode": nullable({"enum": ["metadata", "redacted", "full"]}),
    "priority": nullable({"type": "integer"}),
    "metadata": nullable({"type": "object"}), "created_at": _SECONDS,
    "expires_at": nullable(_SECONDS), "revoked_at": nullable(_SECONDS),
    "rotated_from": nullable({"type": "string"}),
    "status": {"enum": list(_STATUSES)},
}, ("object", "id", "hint", "role", "status", "created_at"),
    "A virtual key (never its token)")
NEW_KEY = obj({**API_KEY["properties"], "key": {
    "type": "string", "description": "The token: in this answer only"}},
    (*API_KEY["required"], "key"), "A new virtual key with its token")
_CHANGE_ERRORS = {
    403: "The asker's role may not change a key of this role (insufficient_permissions)",
    404: "No such key, or another team's (key_not_found)",
    503: "The store is unavailable (store_unavailable)",
}
_ID = Param("id", "path", {"type": "string", "minLength": 1}, "The key's id (key_...)")
CREATE_SPEC = Spec(
    "Create a virtual key", "keys", {201: Reply("The key, with its token", NEW_KEY)},
    {403: "The asker may not grant this role, team or models (insufficient_permissions)",
     503: "The store is unavailable (store_unavailable)"},
    {"type": "object", "properties": CREATE_FIELDS, "additionalProperties": False},
    description="A developer creates keys for its own team, of its own rank or below.")
LIST_SPEC = Spec(
    "List virtual keys", "keys", {200: Reply("The keys", listing(API_KEY, "Keys"))},
    {400: "An unknown query parameter or status",
     503: "The store is unavailable (store_unavailable)"},
    params=(Param("team", "query", {"type": "string"}, "Only this team's (admins)"),
            Param("status", "query", {"enum": list(_STATUSES)}, "Only keys in this state")),
    description="A developer sees its own team's keys, whatever team it asks for.")
ONE_KEY_SPECS = (
    Spec("Retrieve a virtual key", "keys", {200: Reply("The key", API_KEY)}, _CHANGE_ERRORS,
         params=(_ID,), method="GET", path="/api/keys/{id}"),
    Spec("Revoke a virtual key", "keys", {200: Reply("The key, revoked", API_KEY)},
         _CHANGE_ERRORS, params=(_ID,), method="DELETE", path="/api/keys/{id}"),
    Spec("Revoke a virtual key", "keys", {200: Reply("The key, revoked", API_KEY)},
         _CHANGE_ERRORS, params=(_ID,), method="POST", path="/api/keys/{id}/revoke",
         description="As DELETE /api/keys/{id}; revoking again changes nothing."),
    Spec("Rotate a virtual key", "keys", {201: Reply("The new key, with its token", NEW_KEY)},
         {400: "An unknown field, a bad grace_seconds, or a revoked key (key_revoked)",
          **_CHANGE_ERRORS},
         obj({"grace_seconds": {"type": "number", "minimum": 0, "maximum": admin.MAX_GRACE,
                                "description": "How long the old token keeps working (0)"}},
             additionalProperties=False),
         body_required=False, params=(_ID,), method="POST", path="/api/keys/{id}/rotate",
         description="A new token with the same attributes; the old one stops at once, "
                     "or after grace_seconds."),
)
