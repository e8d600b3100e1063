"""Trace filters and keyset cursors.

Traces list newest first, ordered by ``(ts, id)`` descending. A cursor is the ``(ts, id)``
of the last row of a page, base64url-encoded JSON: the next page is the rows strictly
after it in that order (an index range, not an OFFSET), so a page deep in costs what the
first one costs, and rows written meanwhile neither repeat nor push rows off a page.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, fields

import orjson
from sqlalchemy import ColumnElement, Table, and_, or_, tuple_

STATUS_CLASSES = ("2xx", "4xx", "5xx", "error")
# "guard": one of the actions (block, redact, flag, ...) or "any" for every guarded trace
GUARD_ANY = "any"


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """Filters for :meth:`Store.list_traces`; every one is optional and they combine (AND).

    ``since``/``until`` are epoch seconds (``since <= ts < until``); ``status`` is one code
    and ``status_class`` one of 2xx, 4xx, 5xx or error (status >= 400 or an error message);
    ``guard`` matches ``guard_action`` (the strongest guard action of the trace); ``text``
    is a case-insensitive substring of the input or output text.
    """

    since: float | None = None
    until: float | None = None
    model: str | None = None
    deployment: str | None = None
    key_id: str | None = None
    team: str | None = None
    user: str | None = None
    session: str | None = None
    status: int | None = None
    status_class: str | None = None
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    min_cost: float | None = None
    max_cost: float | None = None
    min_confidence: float | None = None  # the answer's mean token probability, 0..1
    max_confidence: float | None = None
    guard: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if self.status_class is not None and self.status_class not in STATUS_CLASSES:
            raise ValueError(f"status_class must be one of {', '.join(STATUS_CLASSES)}")

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


_EQUALS = ("model", "deployment", "key_id", "team", "user", "session", "status")


def conditions(q: TraceQuery, traces: Table) -> list[ColumnElement[bool]]:
    """WHERE terms for every filter but ``text`` (which depends on the engine's index)."""
    c = traces.c
    out: list[ColumnElement[bool]] = []
    if q.since is not None:
        out.append(c.ts >= q.since)
    if q.until is not None:
        out.append(c.ts < q.until)
    for name in _EQUALS:
        value = getattr(q, name)
        if value is not None:
            out.append(c[name] == value)
    if q.status_class is not None:
        out.append(status_class(q.status_class, traces))
    for name, col, above in (
        ("min_latency_ms", c.latency_ms, True), ("max_latency_ms", c.latency_ms, False),
        ("min_cost", c.cost, True), ("max_cost", c.cost, False),
        ("min_confidence", c.confidence, True), ("max_confidence", c.confidence, False),
    ):
        value = getattr(q, name)
        if value is not None:
            out.append(col >= value if above else col <= value)
    if q.guard is not None:
        guarded = c.guard_action.is_not(None)
        out.append(guarded if q.guard == GUARD_ANY else c.guard_action == q.guard.lower())
    return out


def status_class(name: str, traces: Table) -> ColumnElement[bool]:
    c = traces.c
    if name == "error":
        return or_(c.status >= 400, c.error.is_not(None))
    low = {"2xx": 200, "4xx": 400, "5xx": 500}[name]
    return and_(c.status >= low, c.status < low + 100)


def like_pattern(term: str) -> str:
    """``%term%`` with LIKE's wildcards escaped (escape character: backslash)."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def after(cursor: str, traces: Table) -> ColumnElement[bool]:
    ts, trace_id = decode_cursor(cursor)
    return tuple_(traces.c.ts, traces.c.id) < tuple_(ts, trace_id)


def encode_cursor(ts: float, trace_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts, trace_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, trace_id = orjson.loads(raw)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc
    if not isinstance(ts, int | float) or not isinstance(trace_id, str):
        raise ValueError("invalid cursor")
    return float(ts), trace_id
