"""Teams and organisations over the management API.

    GET    /api/teams            the teams the asker may see (``?org=`` one organisation's)
    POST   /api/teams            admins: registers a team (name, org, description, metadata)
    GET    /api/teams/{name}     a team: its organisation, its keys by role, and what the
                                 configuration gives it (budget, limits, content mode,
                                 retention, guard policy, admission)
    PATCH  /api/teams/{name}     admins: its org, description, metadata
    DELETE /api/teams/{name}     admins: unregisters it (409 while it has active keys)
    GET    /api/orgs             the organisations and their teams

A team exists wherever a key or the configuration names one: registering it is not needed
to make keys for it, but gives it an organisation and lists it before it has keys. An
admin sees every team; any other key sees its own team only, and another team is reported
as not found (its existence is not the asker's business). Changes are audited
(``team.create``, ``team.update``, ``team.delete``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from bastion.api.keys import actor
from bastion.api.openapi import Param, Reply, Schema, Spec, documented, listing, nullable, obj
from bastion.api.traces import _in_store, _json, _params
from bastion.errors import ClientError, InvalidRequest, MethodNotAllowed, NotFound, PermissionDenied
from bastion.governance import admin
from bastion.protocol.requests import decode_json_object
from bastion.server.types import Request, Response

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.context import RequestContext
    from bastion.gateway.app import Endpoint, Gateway

PREFIX = "/api/teams/"
FIELDS = frozenset({"name", "org", "description", "metadata"})


class Conflict(ClientError):
    status = 409


def _name(value: Any, field: str, required: bool = False) -> str | None:
    if value is None and required:
        value = ""  # refused as an empty name
    return admin.name_of(value, field)


def _fields(body: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"Unknown field '{unknown[0][:64]}'; a team takes "
                             f"{', '.join(sorted(allowed))}", param=unknown[0][:64])
    out: dict[str, Any] = {}
    if "org" in body:
        out["org"] = _name(body["org"], "org")
    if "description" in body:
        text = body["description"]
        if text is not None and (not isinstance(text, str) or len(text) > 1000):
            raise InvalidRequest("'description' must be text of at most 1000 characters",
                                 param="description")
        out["description"] = text
    if "metadata" in body:
        out["metadata"] = admin.metadata_of(body["metadata"])
    return out


def configured(settings: Settings, name: str) -> dict[str, Any]:
    """What the configuration gives team ``name`` (its own entry, else the ``"*"`` one)."""
    def own(table: dict[str, Any]) -> Any:
        value: Any = table.get(name, table.get("*"))
        return value.model_dump() if value is not None else None

    t, attach = settings.tracing, settings.guards.attach.teams
    return {
        "budget": own(settings.budgets.teams),
        "limits": own(settings.limits.teams),
        "content_mode": t.content_by_tenant.get(name, t.content),
        "retention_days": t.retention_by_team.get(name, t.retention_days),
        "guard_policy": attach.get(name, settings.guards.default),
        "admission": own(settings.admission.tenants),
    }


def config_teams(settings: Settings) -> set[str]:
    """The teams the configuration names (a ``"*"`` is no team)."""
    names = {*settings.budgets.teams, *settings.limits.teams,
             *settings.guards.attach.teams, *settings.tracing.retention_by_team}
    return {n for n in names if n != "*"}


def key_counts(gw: Gateway) -> dict[str, dict[str, int]]:
    """Each team's live keys by role (this worker's table: current within a second)."""
    now = time.time()
    counts: dict[str, dict[str, int]] = {}
    for p in gw.keys.principals():
        if p.team is not None and (p.expires_at is None or p.expires_at > now):
            roles = counts.setdefault(p.team, {})
            roles[p.role] = roles.get(p.role, 0) + 1
    return counts


def table(gw: Gateway) -> dict[str, dict[str, Endpoint]]:
    async def all_teams(asker_team: str | None, admin: bool) -> list[dict[str, Any]]:
        rows = {r["name"]: r for r in await _in_store(gw, lambda s: s.teams.list())}
        counts = key_counts(gw)
        names = set(rows) | set(counts) | config_teams(gw.settings)
        if not admin:
            names &= {asker_team} if asker_team is not None else set()
        return [_out(name, rows.get(name), counts.get(name, {})) for name in sorted(names)]

    @documented(LIST_SPEC, CREATE_SPEC)
    async def teams(request: Request, ctx: RequestContext) -> Response:
        asker = ctx.principal
        if request.method == "POST":
            if not asker.admin:
                raise PermissionDenied("Only an admin registers teams",
                                       code="insufficient_permissions")
            body = decode_json_object(request.body, request.header(b"content-type"))
            row = {"name": _name(body.get("name"), "name", required=True),
                   **_fields(body, FIELDS)}
            from bastion.store.teams import TeamExists

            try:
                stored = await _in_store(gw, lambda s: s.teams.insert(row))
            except TeamExists:
                raise Conflict(f"Team '{row['name']}' is registered already: change it "
                               "with PATCH", code="team_exists", param="name") from None
            await gw.audit.record(actor(ctx), "team.create", stored["name"],
                                  {"org": stored["org"]})
            return _json(_out(stored["name"], stored, key_counts(gw).get(stored["name"], {})),
                         201)
        params = _params(request, frozenset({"org"}))
        org = params.get("org") or None
        data = await all_teams(asker.team, asker.admin)
        if org is not None:
            data = [t for t in data if t["org"] == org]
        return _json({"object": "list", "data": data})

    @documented(ORGS_SPEC)
    async def orgs(request: Request, ctx: RequestContext) -> Response:
        _params(request, frozenset())
        by_org: dict[str, list[str]] = {}
        for team in await all_teams(ctx.principal.team, ctx.principal.admin):
            if team["org"] is not None:
                by_org.setdefault(team["org"], []).append(team["name"])
        return _json({"object": "list", "data": [
            {"object": "org", "name": name, "teams": names}
            for name, names in sorted(by_org.items())]})

    return {"/api/teams": {"GET": teams, "POST": teams}, "/api/orgs": {"GET": orgs}}


def prefixed(gw: Gateway) -> list[tuple[str, dict[str, Endpoint]]]:
    @documented(SHOW_SPEC, UPDATE_SPEC, DELETE_SPEC)
    async def one_team(request: Request, ctx: RequestContext) -> Response:
        raw = request.path[len(PREFIX):]
        name = _name(unquote(raw), "name", required=True) if raw and "/" not in raw else None
        if name is None:
            raise NotFound(f"Unknown path: {request.method} {request.path}", code="unknown_url")
        asker = ctx.principal
        if not asker.admin and asker.team != name:
            raise _not_found(name)
        if request.method == "GET":
            _params(request, frozenset())
            row = await _in_store(gw, lambda s: s.teams.get(name))
            counts = key_counts(gw).get(name, {})
            if row is None and not counts and name not in config_teams(gw.settings):
                raise _not_found(name)
            return _json({**_out(name, row, counts), "settings": configured(gw.settings, name)})
        if not asker.admin:
            raise PermissionDenied("Only an admin changes or deletes teams",
                                   code="insufficient_permissions")
        if request.method == "PATCH":
            body = decode_json_object(request.body, request.header(b"content-type"))
            changes = _fields(body, FIELDS - {"name"})
            changed = await _in_store(gw, lambda s: s.teams.update(name, changes))
            if changed is None:
                raise _not_found(name, " registered: register it with POST /api/teams")
            await gw.audit.record(actor(ctx), "team.update", name, changes)
            return _json(_out(name, changed, {}))
        if request.method == "DELETE":
            live = sum(key_counts(gw).get(name, {}).values())
            if live:
                raise Conflict(f"Team '{name}' has {live} active keys: revoke them first",
                               code="team_has_keys", param="name")
            if not await _in_store(gw, lambda s: s.teams.delete(name)):
                raise _not_found(name, " registered")
            await gw.audit.record(actor(ctx), "team.delete", name, {})
            return _json({"object": "team.deleted", "name": name, "deleted": True})
        raise MethodNotAllowed(f"Method {request.method} is not allowed for "
                               f"{request.path}; use GET, PATCH or DELETE",
                               allow="GET, PATCH, DELETE")

    return [(PREFIX, {"GET": one_team, "PATCH": one_team, "DELETE": one_team})]


def _not_found(name: str, what: str = "") -> NotFound:
    return NotFound(f"No team named '{name}'{what}", code="team_not_found", param="name")


def _out(name: str, row: dict[str, Any] | None, counts: dict[str, int]) -> dict[str, Any]:
    row = row or {}
    return {"object": "team", "name": name, "org": row.get("org"),
            "description": row.get("description"), "metadata": row.get("metadata"),
            "registered": bool(row), "created_at": row.get("created_at"),
            "keys": dict(sorted(counts.items()))}


# ---------------------------------------------------------------------- for /openapi.json
_TEXT: Schema = {"type": "string", "minLength": 1, "maxLength": 128,
                 "pattern": "^[A-Za-z0-9._:@-]+$"}
_META: Schema = {"type": "object", "maxProperties": 32, "propertyNames": {"maxLength": 64},
                 "additionalProperties": {"type": "string", "maxLength": 512}}
TEAM = obj({
    "object": {"const": "team"}, "name": {"type": "string"}, "org": nullable({"type": "string"}),
    "description": nullable({"type": "string"}), "metadata": nullable({"type": "object"}),
    "registered": {"type": "boolean"}, "created_at": nullable({"type": "number"}),
    "keys": {"type": "object", "additionalProperties": {"type": "integer"},
             "description": "Its live keys by role"}},
    ("object", "name", "org", "registered", "keys"), "A team")
_CHANGE: Schema = {"type": "object", "additionalProperties": False, "properties": {
    "org": nullable(_TEXT), "description": nullable({"type": "string", "maxLength": 1000}),
    "metadata": nullable(_META)}}
_NAME_PARAM = Param("name", "path", _TEXT, "The team's name", required=True)
_ERRORS: dict[int | str, str] = {
    403: "Not an admin (insufficient_permissions)",
    404: "No such team, or another team's (team_not_found)",
    503: "The store is unavailable (store_unavailable)"}
LIST_SPEC = Spec(
    "List teams", "keys", {200: Reply("The teams the asker may see", listing(TEAM, "Teams"))},
    {400: "An unknown query parameter"},
    params=(Param("org", "query", {"type": "string"}, "Only this organisation's"),),
    method="GET", description="Registered teams and those keys or the configuration "
                              "name; a non-admin sees its own team only.")
CREATE_SPEC = Spec(
    "Register a team", "keys", {201: Reply("The team", TEAM)},
    {403: _ERRORS[403], 409: "Registered already (team_exists)", 503: _ERRORS[503]},
    {"type": "object", "required": ["name"], "additionalProperties": False,
     "properties": {"name": _TEXT, **_CHANGE["properties"]}}, method="POST")
SHOW_SPEC = Spec(
    "Show a team", "keys", {200: Reply("The team and what the configuration gives it", obj(
        {**TEAM["properties"], "settings": {"type": "object"}},
        (*TEAM["required"], "settings")))},
    {404: _ERRORS[404], 503: _ERRORS[503]}, params=(_NAME_PARAM,), method="GET",
    path="/api/teams/{name}")
UPDATE_SPEC = Spec(
    "Change a team", "keys", {200: Reply("The team", TEAM)},
    {403: _ERRORS[403], 404: _ERRORS[404] + "; not registered", 503: _ERRORS[503]},
    _CHANGE, params=(_NAME_PARAM,), method="PATCH", path="/api/teams/{name}")
DELETE_SPEC = Spec(
    "Unregister a team", "keys", {200: Reply("Unregistered", obj(
        {"object": {"const": "team.deleted"}, "name": {"type": "string"},
         "deleted": {"type": "boolean"}}, ("object", "name", "deleted")))},
    {403: _ERRORS[403], 404: _ERRORS[404] + "; not registered",
     409: "It has active keys (team_has_keys)", 503: _ERRORS[503]},
    params=(_NAME_PARAM,), method="DELETE", path="/api/teams/{name}")
ORGS_SPEC = Spec(
    "List organisations", "keys",
    {200: Reply("Organisations and their teams", listing(obj(
        {"object": {"const": "org"}, "name": {"type": "string"},
         "teams": {"type": "array", "items": {"type": "string"}}},
        ("object", "name", "teams")), "Organisations"))},
    {400: "An unknown query parameter"})
