"""Data subject requests (GDPR/CCPA) over the admin API.

    POST /api/users/{user}/erase    admins: every trace, body, text index entry and
                                    feedback tied to the user, and what the registered
                                    erasers hold (the vault, a cache); the counts and the
                                    verification (rows left, by table: all zeros)
    GET  /api/users/{user}/export   admins, or a developer for its own team's traces:
                                    the user's traces (bodies as their content mode stored
                                    them, with their feedback), the feedback they gave and
                                    their keys; ``cursor`` pages (``limit`` traces a page)

``{user}`` is the request's ``user`` field, percent-encoded (``/`` as ``%2F``), at most 256
characters (what a trace keeps of it). The audit log names the user by subject id only
(:mod:`bastion.governance.subjects`): ``user.erase.start`` before anything is deleted (the
tombstone the ingest honours), then ``user.erase`` with the counts; ``user.export`` per page.
"""

from __future__ import annotations

import inspect
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from bastion.api.keys import actor
from bastion.api.openapi import Param, Reply, Spec, documented, obj
from bastion.api.traces import _in_store, _int, _json, _params
from bastion.errors import InvalidRequest, MethodNotAllowed, NotFound
from bastion.governance import admin
from bastion.governance.subjects import MAX_USER_CHARS, Subject, subject_id, subject_key_of
from bastion.plugins import eraser_factories
from bastion.server.types import Request, Response

if TYPE_CHECKING:
    from bastion.context import RequestContext
    from bastion.gateway.app import Endpoint, Gateway

PREFIX = "/api/users/"
MAX_EXPORT_PAGE = 1000
ERASE_PASSES = 3  # an ingest storing a late trace while the erasure runs: erased again
_EXPORT_PARAMS = frozenset({"cursor", "limit"})


def table(gw: Gateway) -> dict[str, dict[str, Endpoint]]:
    return {}


def prefixed(gw: Gateway) -> list[tuple[str, dict[str, Endpoint]]]:
    keys: list[bytes] = []  # the subject key, derived on first use

    def key() -> bytes:
        if not keys:
            keys.append(subject_key_of(gw.settings))
        return keys[0]

    async def erase(user: str, request: Request, ctx: RequestContext) -> Response:
        _params(request, frozenset())
        sid = subject_id(key(), user)
        started = time.time()
        # the tombstone first: if it cannot be written, nothing is deleted (503)
        await gw.audit.append(actor(ctx), "user.erase.start", sid, {"before": started})
        ttl = gw.settings.guards.vault_ttl
        erased: dict[str, int] = {}
        recent: list[tuple[str, str | None, str | None]] = []
        for _ in range(ERASE_PASSES):
            result = await _in_store(gw, lambda s: s.subjects.erase(user, started - ttl))
            erased = {k: erased.get(k, 0) + v for k, v in result.erased.items()}
            recent += result.recent
            if result.verified:
                break
        subject = Subject(user, sid, tuple(recent))
        others = {name: await _erase_with(factory, gw, subject)
                  for name, factory in eraser_factories(gw.pm).items()}
        others = {name: n for name, n in others.items() if n is not None}
        verified = result.verified
        await gw.audit.record(actor(ctx), "user.erase", sid, {
            "erased": erased, "remaining": result.remaining, "erasers": others,
            "verified": verified})
        return _json({"object": "user.erasure", "user": user, "subject": sid,
                      "erased": erased, "erasers": others, "remaining": result.remaining,
                      "verified": verified, "storage": result.storage,
                      "tombstone_before": started})

    async def export(user: str, request: Request, ctx: RequestContext) -> Response:
        params = _params(request, _EXPORT_PARAMS)
        limit = _int(params.get("limit"), "limit", 100, 1, MAX_EXPORT_PAGE)
        cursor = params.get("cursor")
        asker = ctx.principal
        team = None if asker.admin else asker.team
        if not asker.admin and team is None:  # a developer always has one; else nothing
            raise _not_found(user)
        try:
            ids, nxt = await _in_store(gw, lambda s: s.subjects.trace_page(
                user, team, cursor, limit))
        except ValueError as exc:
            raise InvalidRequest(f"Invalid 'cursor': {exc}", param="cursor") from exc
        traces = await _in_store(gw, lambda s: [t for t in map(s.get_trace, ids) if t])
        page: dict[str, Any] = {"object": "user.export", "user": user,
                                "subject": subject_id(key(), user), "traces": traces,
                                "next_cursor": nxt}
        if not cursor:  # the first page: what is not a trace of theirs
            page["feedback"] = await _in_store(gw, lambda s: s.subjects.feedback_given(
                user, team))
            rows = await _in_store(gw, lambda s: s.subjects.keys_of(user, team))
            page["keys"] = [admin.public(r) for r in rows]
            if team is not None and not (traces or page["feedback"] or page["keys"]):
                raise _not_found(user)  # nothing of the user in the developer's team
        await gw.audit.record(actor(ctx), "user.export", page["subject"], {
            "traces": len(traces), "first_page": not cursor, "team": team})
        return _json(page)

    @documented(ERASE_SPEC, EXPORT_SPEC)
    async def one_user(request: Request, ctx: RequestContext) -> Response:
        raw, _, action = request.path[len(PREFIX):].rpartition("/")
        if not raw or "/" in raw or action not in ("erase", "export"):
            raise NotFound(f"Unknown path: {request.method} {request.path}",
                           code="unknown_url")
        user = user_of(raw)
        if action == "erase":
            if request.method != "POST":
                raise _method(request, "POST")
            return await erase(user, request, ctx)
        if request.method != "GET":
            raise _method(request, "GET")
        return await export(user, request, ctx)

    return [(PREFIX, {"GET": one_user, "POST": one_user})]


_COUNTS = obj({k: {"type": "integer", "minimum": 0}
               for k in ("traces", "bodies", "text_index", "feedback")},
              ("traces", "bodies", "text_index", "feedback"))
_USER = Param("user", "path", {"type": "string", "minLength": 1, "maxLength": 256},
              "The request's 'user' field, percent-encoded ('/' as %2F)", required=True)
_ERRORS: dict[int | str, str] = {
    400: "The user is not valid UTF-8, empty, longer than 256 characters or has a NUL; "
         "an unknown query parameter",
    404: "Another path under /api/users (unknown_url); export: nothing of the user in "
         "the developer's team (user_not_found)",
    503: "The store is unavailable (store_unavailable): an erasure then deletes nothing",
}
ERASE_SPEC = Spec(
    "Erase a user's data", "traces", {200: Reply("What was erased and the verification", obj(
        {"object": {"const": "user.erasure"}, "user": {"type": "string"},
         "subject": {"type": "string"}, "erased": _COUNTS, "remaining": _COUNTS,
         "erasers": {"type": "object", "additionalProperties": {"type": "integer"}},
         "verified": {"type": "boolean"}, "storage": {"type": "object"},
         "tombstone_before": {"type": "number"}},
        ("object", "subject", "erased", "remaining", "verified")))},
    _ERRORS, params=(_USER,), method="POST", path="/api/users/{user}/erase",
    description="Admins only. Every trace of the user (the request's 'user'), its body, "
                "text index entry and feedback, the feedback they gave, and what the "
                "registered erasers hold (the vault's sessions). 'remaining' counts what "
                "is still tied to the user, by table: all zeros when verified. Traces "
                "still in the spool are dropped by the ingest (the tombstone).")
EXPORT_SPEC = Spec(
    "Export a user's data", "traces", {200: Reply("A page of the user's data", obj(
        {"object": {"const": "user.export"}, "user": {"type": "string"},
         "subject": {"type": "string"},
         "traces": {"type": "array", "items": {"type": "object"}},
         "feedback": {"type": "array", "items": {"type": "object"}},
         "keys": {"type": "array", "items": {"type": "object"}},
         "next_cursor": {"type": ["string", "null"]}},
        ("object", "subject", "traces", "next_cursor")))},
    {**_ERRORS, 400: _ERRORS[400] + "; a bad cursor or limit"},
    params=(_USER, Param("cursor", "query", {"type": "string"}, "The next page"),
            Param("limit", "query", {"type": "integer", "minimum": 1,
                                     "maximum": MAX_EXPORT_PAGE}, "Traces a page (100)")),
    method="GET", path="/api/users/{user}/export",
    description="Admins, or a developer for its own team's traces. The traces oldest "
                "first, with bodies as their content mode stored them and their feedback; "
                "the first page also has the feedback the user gave and their keys.")


def user_of(raw: str) -> str:
    """The user named by a path segment (percent-decoded, UTF-8); 400 if it cannot be one
    a trace holds."""
    try:
        user = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest("The user in the path is not valid UTF-8 once percent-decoded",
                             param="user") from None
    if not user.strip():
        raise InvalidRequest("The user in the path is empty", param="user")
    if len(user) > MAX_USER_CHARS:
        raise InvalidRequest(
            f"The user is {len(user)} characters; traces keep the first {MAX_USER_CHARS} "
            "of a request's 'user': give those", param="user")
    if "\x00" in user:
        raise InvalidRequest("The user must not contain NUL characters", param="user")
    return user


async def _erase_with(factory: Any, gw: Gateway, subject: Subject) -> int | None:
    eraser = factory(gw)
    if eraser is None:
        return None
    dropped = eraser(subject)
    if inspect.isawaitable(dropped):
        dropped = await dropped
    return int(dropped)


def _not_found(user: str) -> NotFound:
    return NotFound(f"No data of user '{user[:64]}' that this key may read",
                    code="user_not_found", param="user")


def _method(request: Request, allow: str) -> MethodNotAllowed:
    return MethodNotAllowed(
        f"Method {request.method} is not allowed for {request.path}; use {allow}",
        allow=allow)
