"""Trace records to rows and back.

A record is the flat dict of :mod:`bastion.observe.record`; unknown keys are ignored and
missing ones are NULL, except ``id`` and ``ts``, which a row cannot do without. The store
derives three columns from the bodies:

- ``search``: the text of the input and the output (every string in them except structural
  ones like roles and ids), at most ``SEARCH_CHARS`` characters; text search looks there;
- ``preview_in``: the last user message (or the prompt), ``PREVIEW_CHARS`` at most;
- ``preview_out``: the start of the output text.

A store that encrypts bodies then seals the row (:meth:`bastion.store.crypto.Codec.seal_row`):
``body_key``, ``sealed`` and ``sealed_preview`` are set, the plain body columns cleared, and
``search`` holds the blind index's hashes instead of the words.

``guard_action``, when the record does not give it, is the strongest ``action`` among the
record's ``guards``: block > redact > flag.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from bastion.store.schema import BOOL_KEYS, HEAVY_KEYS, RECORD_KEYS

SEARCH_CHARS = 8192
PREVIEW_CHARS = 160
# strongest first; an action the store does not know ranks just above "flag"
ACTION_RANK = {"block": 4, "deny": 4, "redact": 3, "pseudonymize": 3, "mask": 3, "flag": 1}
_PASS_ACTIONS = frozenset({"allow", "pass", "none", "log"})
_SKIP_KEYS = frozenset(
    {"role", "type", "id", "tool_call_id", "index", "object", "finish_reason", "name"}
)


def to_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """The column values of one record (raises ValueError without ``id`` or ``ts``)."""
    trace_id = record.get("id")
    if not isinstance(trace_id, str) or not trace_id:
        raise ValueError("a trace record needs a string 'id'")
    ts = record.get("ts")
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        raise ValueError(f"trace {trace_id}: 'ts' must be epoch seconds")
    row = dict(zip(RECORD_KEYS, map(record.get, RECORD_KEYS), strict=True))
    row["ts"] = float(ts)
    for key in BOOL_KEYS:
        if row[key] is not None:
            row[key] = bool(row[key])
    action = row["guard_action"]
    row["guard_action"] = action.lower() if isinstance(action, str) else strongest_action(
        row["guards"]
    )
    source, output = row["input"], row["output"]
    in_text = " ".join(strings(source)) if source is not None else ""
    out_text = " ".join(strings(output)) if output is not None else ""
    joined = f"{in_text}\n{out_text}" if in_text and out_text else in_text or out_text
    row["search"] = joined[:SEARCH_CHARS] or None
    row["preview_in"] = _clip(_last_user_text(source)) if source is not None else None
    row["preview_out"] = _clip(out_text) if out_text else None
    row["body_key"] = row["sealed"] = row["sealed_preview"] = None  # plaintext until sealed
    return row


def from_row(row: Mapping[Any, Any], *, light: bool = False) -> dict[str, Any]:
    """A record from a row; ``light`` (trace lists) leaves the bodies out and adds a
    ``preview``: ``{"input": ..., "output": ...}``."""
    if light:
        out = {key: row[key] for key in RECORD_KEYS if key not in HEAVY_KEYS}
        out["preview"] = {"input": row["preview_in"], "output": row["preview_out"]}
        return out
    return {key: row[key] for key in RECORD_KEYS}


def strongest_action(guards: Any) -> str | None:
    best: str | None = None
    rank = 0
    if not isinstance(guards, list):
        return None
    for guard in guards:
        action = guard.get("action") if isinstance(guard, dict) else None
        if not isinstance(action, str) or action.lower() in _PASS_ACTIONS:
            continue
        action = action.lower()
        score = ACTION_RANK.get(action, 2)
        if score > rank:
            best, rank = action, score
    return best


def strings(value: Any, budget: int = SEARCH_CHARS) -> Iterator[str]:
    """The text in a JSON value, depth first, until ``budget`` characters are given."""
    stack = [value]
    while stack and budget > 0:
        item = stack.pop()
        if isinstance(item, str):
            if item:
                budget -= len(item)
                yield item
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed([v for k, v in item.items() if k not in _SKIP_KEYS]))


def _last_user_text(source: Any) -> str:
    if isinstance(source, list) and source and isinstance(source[-1], dict):
        for message in reversed(source):
            if isinstance(message, dict) and message.get("role") == "user":
                return " ".join(strings(message.get("content"), PREVIEW_CHARS))
    return " ".join(strings(source, PREVIEW_CHARS))


def _clip(value: str) -> str | None:
    value = " ".join(value.split())
    if not value:
        return None
    return value if len(value) <= PREVIEW_CHARS else value[: PREVIEW_CHARS - 1] + "…"
