"""``GET /api/audit``: the audit log's entries (admins only): oldest first after ``after``,
or newest first with ``order=desc`` (below ``before``, when given), ``limit`` at a time;
``GET /api/audit/verify``: the chain checked as ``bastion audit verify`` does
(without the head file of another replica's data directory)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.api.openapi import Param, Reply, Spec, documented, listing, nullable, obj
from bastion.api.traces import _in_store, _int, _json, _params
from bastion.errors import InvalidRequest
from bastion.governance.audit import read_anchor, verify
from bastion.server.types import Request, Response

if TYPE_CHECKING:
    from bastion.context import RequestContext
    from bastion.gateway.app import Endpoint, Gateway

_PARAMS = frozenset({"after", "before", "limit", "order"})
_TOP = 10**15


def table(gw: Gateway) -> dict[str, dict[str, Endpoint]]:
    @documented(ENTRIES_SPEC)
    async def entries(request: Request, ctx: RequestContext) -> Response:
        params = _params(request, _PARAMS)
        order = params.get("order", "asc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("order is asc or desc", param="order")
        limit = _int(params.get("limit"), "limit", 100, 1, 1000)
        if order == "desc" or "before" in params:
            if "after" in params:
                raise InvalidRequest("after goes with order=asc, before with order=desc",
                                     param="after")
            before = _int(params.get("before"), "before", _TOP, 1, _TOP)
            rows = await _in_store(gw, lambda s: list(s.audit.entries(limit=limit,
                                                                      before=before)))
            nxt = rows[-1]["seq"] if len(rows) == limit and rows[-1]["seq"] > 1 else None
            return _json({"object": "list", "data": rows, "next_after": None,
                          "next_before": nxt})
        after = _int(params.get("after"), "after", 0, 0, _TOP)
        rows = await _in_store(gw, lambda s: list(s.audit.entries(after, limit)))
        nxt = rows[-1]["seq"] if len(rows) == limit else None
        return _json({"object": "list", "data": rows, "next_after": nxt, "next_before": None})

    @documented(VERIFY_SPEC)
    async def check(request: Request, ctx: RequestContext) -> Response:
        _params(request, frozenset())
        public_key = gw.audit.signer.public_key
        verdict = await _in_store(gw, lambda s: verify(
            s.audit.entries(), s.audit.heads(), public_key, read_anchor(gw.settings.home)))
        return _json({"ok": verdict.ok, "entries": verdict.entries,
                      "last_seq": verdict.last_seq, "heads": verdict.heads,
                      "problems": verdict.problems})

    return {"/api/audit": {"GET": entries}, "/api/audit/verify": {"GET": check}}


# ---------------------------------------------------------------------- for /openapi.json
_INT = {"type": "integer"}
_STORE_DOWN = {503: "The store is unavailable (store_unavailable)"}
ENTRY = obj({"seq": _INT, "ts": {"type": "number"}, "actor": {"type": "string"},
             "action": {"type": "string"}, "target": nullable({"type": "string"}),
             "detail": {}, "prev": {"type": "string"}, "hash": {"type": "string"}},
            ("seq", "ts", "actor", "action", "target", "detail", "prev", "hash"),
            "One admin action, chained to the one before by its hash")
ENTRIES_SPEC = Spec(
    "Read the audit log", "audit",
    {200: Reply("Entries in order (``next_after``), or newest first (``next_before``)",
                listing(ENTRY, "Entries", next_after=nullable(_INT),
                        next_before=nullable(_INT)))},
    {400: "An invalid or unknown query parameter", **_STORE_DOWN}, params=(
        Param("after", "query", {"type": "integer", "minimum": 0, "maximum": 10**15},
              "Entries after this seq (0), oldest first"),
        Param("before", "query", {"type": "integer", "minimum": 1, "maximum": 10**15},
              "Entries before this seq, newest first"),
        Param("order", "query", {"type": "string", "enum": ["asc", "desc"]},
              "asc (oldest first, the default) or desc (newest first)"),
        Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000},
              "Entries at most (100)")))
VERIFY_SPEC = Spec(
    "Verify the audit chain", "audit", {200: Reply("The verdict", obj({
        "ok": {"type": "boolean"}, "entries": _INT, "last_seq": _INT, "heads": _INT,
        "problems": {"type": "array", "items": {"type": "string"}}},
        ("ok", "entries", "last_seq", "heads", "problems")))},
    {400: "A query parameter (it takes none)", **_STORE_DOWN})
