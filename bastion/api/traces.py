"""Admin API over the trace store: traces, stats, feedback.

    GET  /api/traces          filters (time, model, deployment, key, team, user, session,
                              status, latency, cost, guard outcome, text), cursor pages
    GET  /api/traces/{id}     one trace with its spans and feedback
    GET  /api/stats           QPS, latency percentiles, errors, availability, tokens/s,
                              cost, feedback; overall, by group and per time bucket
    GET  /api/stats/values    the values a dimension took in a window, most requests first
    POST /api/feedback        thumbs up/down, a score, a comment; idempotent per (trace, key);
                              404 for an id this gateway did not answer lately nor stored

Store calls are blocking, so they run in a worker thread; a store that is down gives 503
``store_unavailable`` (the request path never depends on it).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote

import orjson

from bastion.api.openapi import Param, Reply, Schema, Spec, documented, listing, nullable, obj
from bastion.errors import InvalidRequest, NotFound, PermissionDenied, StoreUnavailableError
from bastion.protocol.requests import decode_json_object
from bastion.server.types import JSON_HEADERS, Request, Response

if TYPE_CHECKING:
    from bastion.context import RequestContext
    from bastion.gateway.app import Endpoint, Gateway
    from bastion.store import Store, TraceQuery

T = TypeVar("T")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_SECONDS = 100 * 366 * 86400  # a century: beyond it a duration is a typo
_TEXT_FILTERS = ("model", "deployment", "key_id", "team", "user", "session", "guard")
_NUMBER_FILTERS = ("min_latency_ms", "max_latency_ms", "min_cost", "max_cost",
                   "min_confidence", "max_confidence")
_STATUS_CLASSES = ("2xx", "4xx", "5xx", "error")
_GROUPS = ("model", "deployment", "key_id", "team", "user", "guard_action")
_STATS_FILTERS = ("model", "deployment", "key_id", "user")
_DIMENSIONS = (*_STATS_FILTERS, "team")  # what /api/stats/values lists
MAX_PAGE = 500
_TRACE_PARAMS = frozenset(
    (*_TEXT_FILTERS, *_NUMBER_FILTERS, "q", "since", "until", "status", "limit", "cursor")
)
_STATS_PARAMS = frozenset(("since", "until", "bucket", "group_by", "team", *_STATS_FILTERS))
_VALUES_PARAMS = frozenset(("since", "until", "dimension", "limit", "team"))


def table(gw: Gateway) -> dict[str, dict[str, Endpoint]]:
    @documented(LIST_SPEC)
    async def list_traces(request: Request, ctx: RequestContext) -> Response:
        params = _params(request, _TRACE_PARAMS)
        _own_team(params, ctx)
        query = trace_query(params)
        limit = _int(params.get("limit"), "limit", 50, 1, MAX_PAGE)
        try:
            rows, cursor = await _in_store(
                gw, lambda s: s.list_traces(query, params.get("cursor"), limit)
            )
        except ValueError as exc:  # the store's verdict on a cursor it did not issue
            raise InvalidRequest(f"Invalid 'cursor': {exc}", param="cursor") from exc
        return _json({"object": "list", "data": rows, "next_cursor": cursor})

    @documented(STATS_SPEC)
    async def stats(request: Request, ctx: RequestContext) -> Response:
        params = _params(request, _STATS_PARAMS)
        _own_team(params, ctx)
        now = time.time()
        until = parse_time(params.get("until"), "until", now)
        since = parse_time(params.get("since"), "since", until - 3600)
        if since >= until:
            raise InvalidRequest("'since' must be before 'until'", param="since")
        bucket = params.get("bucket")
        bucket_s = int(_seconds(bucket, "bucket")) if bucket else None
        if bucket_s is not None and (bucket_s < 1 or (until - since) / bucket_s > 10_000):
            raise InvalidRequest("'bucket' gives too many buckets (10,000 at most)",
                                 param="bucket")
        group_by = [g for g in (params.get("group_by") or "").split(",") if g]
        unknown = [g for g in group_by if g not in _GROUPS]
        if unknown:
            raise InvalidRequest(f"'group_by' takes {', '.join(_GROUPS)}; not {unknown}",
                                 param="group_by")
        team = params.get("team")
        filters = {k: params[k] for k in _STATS_FILTERS if params.get(k)}
        data = await _in_store(
            gw, lambda s: s.stats(since, until, bucket_s, group_by, team, filters))
        return _json(data)

    @documented(VALUES_SPEC)
    async def values(request: Request, ctx: RequestContext) -> Response:
        params = _params(request, _VALUES_PARAMS)
        _own_team(params, ctx)
        dimension = params.get("dimension") or ""
        if dimension not in _DIMENSIONS:
            raise InvalidRequest(f"'dimension' takes {', '.join(_DIMENSIONS)}",
                                 param="dimension")
        until = parse_time(params.get("until"), "until", time.time())
        since = parse_time(params.get("since"), "since", until - 3600)
        if since >= until:
            raise InvalidRequest("'since' must be before 'until'", param="since")
        limit = _int(params.get("limit"), "limit", 200, 1, 1000)
        team = params.get("team")
        rows = await _in_store(gw, lambda s: s.values(dimension, since, until, team, limit))
        return _json({"object": "list", "data": rows})

    @documented(FEEDBACK_SPEC)
    async def feedback(request: Request, ctx: RequestContext) -> Response:
        body = decode_json_object(request.body, request.header(b"content-type"))
        record = feedback_record(body)
        request_id = record["request_id"]
        found, team = gw.recent.team(request_id)
        if not found:
            found, team = await _answered(gw, request_id)
        if not found or not ctx.principal.sees_team(team):  # another team's: not found
            raise NotFound(
                f"No request with id '{request_id}': give the response's x-request-id, or "
                "its x-bastion-trace-id when you sent your own x-request-id",
                code="trace_not_found", param="request_id",
            )
        row, created = await _in_store(gw, lambda s: s.upsert_feedback(record))
        return _json(row, 201 if created else 200)

    return {
        "/api/traces": {"GET": list_traces},
        "/api/stats": {"GET": stats},
        "/api/stats/values": {"GET": values},
        "/api/feedback": {"POST": feedback},
    }


def prefixed(gw: Gateway) -> list[tuple[str, dict[str, Endpoint]]]:
    @documented(TRACE_SPEC)
    async def get_trace(request: Request, ctx: RequestContext) -> Response:
        trace_id = unquote(request.path[len("/api/traces/") :])
        row = await _in_store(gw, lambda s: s.get_trace(trace_id))
        if row is None or not ctx.principal.sees_team(row.get("team")):
            raise NotFound(f"No trace with id '{trace_id}' (yet)", code="trace_not_found")
        return _json(row)

    return [("/api/traces/", {"GET": get_trace})]


# ---------------------------------------------------------------------------- parsing
def _own_team(params: dict[str, str], ctx: RequestContext) -> None:
    """A team's key reads its own team's traces only: the filter is set to it (asking
    for another team is a 403, not an empty page that looks like no traffic)."""
    asker = ctx.principal
    if asker.admin:
        return
    asked = params.get("team")
    if asked is not None and asked != asker.team:
        raise PermissionDenied("This key reads its own team's traces and stats only",
                               code="insufficient_permissions", param="team")
    if asker.team is None:  # unreachable for reading roles (they need a team): no data
        raise PermissionDenied("This key has no team to read", code="insufficient_permissions")
    params["team"] = asker.team


def trace_query(params: dict[str, str]) -> TraceQuery:
    """A TraceQuery from query parameters (names as in the store's TraceQuery)."""
    from bastion.store import TraceQuery

    fields: dict[str, Any] = {k: params[k] for k in _TEXT_FILTERS if params.get(k)}
    if params.get("q"):
        fields["text"] = params["q"]
    for name in _NUMBER_FILTERS:
        if params.get(name):
            fields[name] = _float(params[name], name)
    for name in ("since", "until"):
        if params.get(name):
            fields[name] = parse_time(params[name], name, 0.0)
    status = params.get("status")
    if status:
        if status in _STATUS_CLASSES:
            fields["status_class"] = status
        else:
            fields["status"] = _int(status, "status", 0, 100, 599)
    return TraceQuery(**fields)


def feedback_record(body: dict[str, Any]) -> dict[str, Any]:
    request_id = body.get("request_id") or body.get("trace_id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
        raise InvalidRequest(
            "'request_id' (the response's x-request-id, or x-bastion-trace-id when you sent "
            "your own x-request-id) is required", param="request_id",
        )
    value = body.get("value")
    if value not in (None, "up", "down"):
        raise InvalidRequest("'value' must be 'up' or 'down'", param="value")
    score = body.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise InvalidRequest("'score' must be a number", param="score")
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 10_000):
        raise InvalidRequest("'comment' must be a string of at most 10,000 characters",
                             param="comment")
    if value is None and score is None and comment is None:
        raise InvalidRequest("Give at least one of 'value', 'score' or 'comment'",
                             param="value")
    key = body.get("key", "default")
    if not isinstance(key, str) or not key or len(key) > 128:
        raise InvalidRequest("'key' (idempotency key) must be a short string", param="key")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("'user' must be a string", param="user")
    return {"request_id": request_id, "key": key, "value": value,
            "score": None if score is None else float(score), "comment": comment,
            "user": user, "ts": time.time()}


def _params(request: Request, known: frozenset[str]) -> dict[str, str]:
    """The query's parameters; one this endpoint does not take is a 400 (a misspelt filter
    must not quietly match everything)."""
    params = dict(parse_qsl(request.query, keep_blank_values=True))
    unknown = sorted(set(params) - known)
    if unknown:
        name = unknown[0]
        raise InvalidRequest(
            f"Unknown query parameter '{name[:64]}'; this endpoint takes "
            f"{', '.join(sorted(known))}", param=name[:64],
        )
    return {k: v for k, v in params.items() if v != ""}


def parse_time(raw: str | None, name: str, default: float) -> float:
    """Epoch seconds, ISO 8601, or relative to now ('15m', '24h', '7d')."""
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise InvalidRequest(f"'{name}' must be a finite time, not {raw!r}", param=name)
        return value
    if _RELATIVE.match(raw.strip()):
        return time.time() - _seconds(raw, name)
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        raise InvalidRequest(
            f"'{name}' must be epoch seconds, ISO 8601, or relative like 15m, 24h, 7d",
            param=name,
        ) from None


def _seconds(raw: str, name: str) -> float:
    match = _RELATIVE.match(raw.strip())
    try:
        value = float(match.group(1)) * _UNITS[match.group(2)] if match else float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or abs(value) > _MAX_SECONDS:
        raise InvalidRequest(f"'{name}' must be a duration like 60, 5m, 1h or 1d",
                             param=name)
    return value


def _int(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18) or not low <= int(raw) <= high:
        raise InvalidRequest(f"'{name}' must be a whole number from {low} to {high}",
                             param=name)
    return int(raw)


def _float(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidRequest(f"'{name}' must be a finite number", param=name)
    return value


async def _answered(gw: Gateway, request_id: str) -> tuple[bool, str | None]:
    """Whether the store has the request's trace, and its team. With several workers,
    another one may have answered it a moment ago and its trace be on its way through the
    spool: then this waits for the ingest (a flush interval and 2 s at most)."""
    settings = gw.settings
    patience = (settings.tracing.flush_interval + 2.0
                if settings.server.workers > 1 and settings.tracing.enabled else 0.0)
    deadline = time.monotonic() + patience
    while True:
        found, team = await _in_store(gw, lambda s: s.trace_team(request_id))
        if found or time.monotonic() >= deadline:
            return found, team
        await asyncio.sleep(0.1)


async def _in_store(gw: Gateway, job: Callable[[Store], T]) -> T:
    from bastion.store import StoreUnavailable

    def run() -> T:
        return job(gw.store.get())

    try:
        return await asyncio.to_thread(run)
    except StoreUnavailable as exc:
        raise StoreUnavailableError(f"The trace store is unavailable: {exc}") from exc


def _json(data: Any, status: int = 200) -> Response:
    body = orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS)
    return Response(status, body, JSON_HEADERS)


# ---------------------------------------------------------------------- for /openapi.json
_STR: Schema = {"type": "string"}
_NUM: Schema = {"type": "number"}
_TIME = {"type": "string", "description": "Epoch seconds, ISO 8601, or relative to now "
                                          "(15m, 24h, 7d)"}
_STORE_DOWN = {503: "The trace store is unavailable (store_unavailable)"}
_READ_ERRORS = {400: "A query parameter is invalid or unknown (param names it)",
                403: "A team's key asked for another team (insufficient_permissions)",
                **_STORE_DOWN}
TRACE_ROW = obj({
    "id": _STR, "ts": _NUM, "endpoint": nullable(_STR), "operation": nullable(_STR),
    "model": nullable(_STR), "deployment": nullable(_STR), "key_id": nullable(_STR),
    "team": nullable(_STR), "user": nullable(_STR), "session": nullable(_STR),
    "stream": nullable({"type": "boolean"}), "status": nullable({"type": "integer"}),
    "error": nullable(_STR), "input_tokens": nullable({"type": "integer"}),
    "output_tokens": nullable({"type": "integer"}), "cost": nullable(_NUM),
    "latency_ms": nullable(_NUM), "ttft_ms": nullable(_NUM),
    "overhead_ms": nullable(_NUM), "preview": {"type": "object"},
    "confidence": nullable(_NUM),
}, ("id", "ts"), "A trace, without its bodies (input, output, spans): a preview instead")
FEEDBACK_ROW = obj({
    "request_id": _STR, "key": _STR, "value": nullable({"enum": ["up", "down"]}),
    "score": nullable(_NUM), "comment": nullable(_STR), "user": nullable(_STR), "ts": _NUM,
}, ("request_id", "key", "value", "score", "comment", "user", "ts"))
TRACE = obj({**TRACE_ROW["properties"], "input": {}, "output": {}, "spans": {},
             "feedback": {"type": "array", "items": FEEDBACK_ROW}}, ("id", "ts", "feedback"),
            "A trace with its bodies, spans and feedback")
_METRICS = obj({"requests": {"type": "integer"}, "errors": {"type": "integer"},
                "availability": nullable(_NUM), "qps": _NUM, "cost": _NUM,
                "guarded": {"type": "integer"}, "guard_blocked": {"type": "integer"}},
               ("requests", "errors", "availability", "qps"))
STATS = obj({
    "since": _NUM, "until": _NUM, "bucket_s": nullable({"type": "integer"}),
    "group_by": {"type": "array", "items": {"enum": list(_GROUPS)}}, "totals": _METRICS,
    "buckets": {"type": "array", "items": obj({"ts": _NUM, **_METRICS["properties"]},
                                              ("ts",))},
    "groups": {"type": "array", "items": obj({"key": {"type": "object"}}, ("key",))},
    "percentiles": {"enum": ["exact", "sampled", "histogram"]},
    "rolled_up_s": _NUM,
}, ("since", "until", "bucket_s", "group_by", "totals", "percentiles", "rolled_up_s"))
VALUES = listing(obj({"value": nullable(_STR), "requests": {"type": "integer"}},
                     ("value", "requests"), "A value and how many requests had it"),
                 "The values seen, most requests first")


def _query(name: str, schema: Schema, description: str) -> Param:
    return Param(name, "query", schema, description)


LIST_SPEC = Spec(
    "List traces, newest first", "traces",
    {200: Reply("A page of traces", listing(TRACE_ROW, "Traces", next_cursor=nullable(_STR)))},
    _READ_ERRORS, params=(
        *(_query(k, _STR, f"Only traces with this {k}") for k in _TEXT_FILTERS),
        *(_query(k, _NUM, k.replace("_", " ")) for k in _NUMBER_FILTERS),
        _query("q", _STR, "Text in the input or output"),
        _query("since", _TIME, "From this time"), _query("until", _TIME, "Before this time"),
        _query("status", {"type": "string", "pattern": "^(2xx|4xx|5xx|error|[1-5][0-9]{2})$"},
               "An HTTP status, or 2xx, 4xx, 5xx, error"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
               "Traces per page (50)"),
        _query("cursor", _STR, "next_cursor of the page before")),
    description="A team's key sees its own team's traces.")
TRACE_SPEC = Spec(
    "Retrieve a trace", "traces", {200: Reply("The trace", TRACE)},
    {404: "No such trace (yet), or another team's (trace_not_found)", **_STORE_DOWN},
    params=(Param("id", "path", {"type": "string", "minLength": 1},
                  "The trace's id (x-request-id, or x-bastion-trace-id)"),))
_ONE_GROUP = "|".join(_GROUPS)
STATS_SPEC = Spec(
    "Aggregates over a window", "traces", {200: Reply("Totals, buckets, groups", STATS)},
    _READ_ERRORS, params=(
        _query("since", _TIME, "From this time (an hour before until)"),
        _query("until", _TIME, "Before this time (now)"),
        _query("bucket", {"type": "string", "description": "60, 5m, 1h, 1d"},
               "Bucket width (10,000 buckets at most)"),
        _query("group_by", {"type": "string", "pattern": f"^({_ONE_GROUP})(,({_ONE_GROUP}))*$"},
               "Comma-separated: " + ", ".join(_GROUPS)),
        _query("team", _STR, "Only this team's traces"),
        *(_query(k, _STR, f"Only traces with this {k}") for k in _STATS_FILTERS)))
VALUES_SPEC = Spec(
    "The values a dimension took", "traces",
    {200: Reply("Values, most requests first (what the dashboard's filters suggest)", VALUES)},
    _READ_ERRORS, params=(
        _query("dimension", {"enum": list(_DIMENSIONS)}, "The dimension (required)"),
        _query("since", _TIME, "From this time (an hour before until)"),
        _query("until", _TIME, "Before this time (now)"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
               "Values at most (200)"),
        _query("team", _STR, "Only this team's traces")))
_SHORT = {"type": "string", "minLength": 1, "maxLength": 128}
FEEDBACK_SPEC = Spec(
    "Send feedback on an answer", "traces",
    {200: Reply("The feedback, updated", FEEDBACK_ROW),
     201: Reply("The feedback, new", FEEDBACK_ROW)},
    {404: "This gateway did not answer that id lately, nor stored it, or it was another "
          "team's (trace_not_found)", **_STORE_DOWN},
    obj({"request_id": {**_SHORT, "description": "The answer's x-request-id (or its "
                                                 "x-bastion-trace-id); alias trace_id"},
         "value": nullable({"enum": ["up", "down"]}), "score": nullable(_NUM),
         "comment": nullable({"type": "string", "maxLength": 10_000}),
         "key": {**_SHORT, "description": "Idempotency key (default)"},
         "user": nullable(_STR)}, ("request_id",),
        anyOf=[{"properties": {"value": {"enum": ["up", "down"]}}, "required": ["value"]},
               {"properties": {"score": _NUM}, "required": ["score"]},
               {"properties": {"comment": _STR}, "required": ["comment"]}]),
    description="Idempotent per (request, key): a repeat updates the same feedback.")
