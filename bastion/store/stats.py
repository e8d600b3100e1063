"""Aggregates over a time window: totals, per group, per time bucket (and both).

Definitions (each over the traces with ``since <= ts < until``):

- ``requests``; ``errors``: status >= 400 or an error message, except client disconnects
  (status 499), which are ``client_disconnects``; ``server_errors``: status >= 500;
- ``availability`` = 1 - server_errors / requests; ``qps`` = requests / seconds of the
  window (a bucket's seconds are its overlap with the window);
- ``latency_p50_ms``, ``_p95_``, ``_p99_``, ``ttft_p50_ms``, ``ttft_p95_ms``: continuous
  percentiles (``percentile_cont``; on SQLite the same interpolation in Python, over at most
  ``SAMPLE_MAX`` rows of the window, an even sample when there are more);
- ``input_tokens``, ``output_tokens``, ``cost``: sums;
- ``output_tokens_per_s`` = sum of output tokens / sum of generation seconds, over traces
  with output tokens, where a trace's generation time is its latency minus its queue wait;
- ``feedback_up``, ``feedback_down``, ``feedback_score_mean``: feedback on those traces;
- ``guarded``: traces a guard acted on (any ``guard_action``), ``guard_blocked``: blocked.

``filters`` narrows the window to traces whose model, deployment, key_id, team or user
equals the value given (the dashboard's filters); ``guard_action`` is a group too.

Buckets are aligned to multiples of ``bucket_s`` since the epoch; empty ones are listed
with zero requests.

Ranges of 6 hours or more whose buckets are whole half hours, grouped and filtered by
team, model, deployment or key only, and at least half covered by current rollups, are
read from the half-hourly rollups where they are current
(:mod:`bastion.store.rolled_stats`): the sums are the same, the percentiles come from
histograms (within 2 %). Every answer says how: ``percentiles`` is "exact",
"sampled" (SQLite, more than ``SAMPLE_MAX`` traces) or "histogram", and ``rolled_up_s``
how many seconds of the range came from rollups.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    func,
    select,
)

from bastion.store import rolled_stats as rolled
from bastion.store.rollups import ADDITIVE, UNIT_S, bucket_of, sum_columns
from bastion.store.schema import Tables

GROUPS = ("model", "deployment", "key_id", "team", "user", "guard_action")
FILTERS = ("model", "deployment", "key_id", "team", "user")
SAMPLE_MAX = 20_000
MAX_BUCKETS = 10_000
_PCT = (("latency_p50_ms", "latency_ms", 0.5), ("latency_p95_ms", "latency_ms", 0.95),
        ("latency_p99_ms", "latency_ms", 0.99), ("ttft_p50_ms", "ttft_ms", 0.5),
        ("ttft_p95_ms", "ttft_ms", 0.95))
Key = tuple[Any, ...]


def compute(
    conn: Connection, t: Tables, since: float, until: float, bucket_s: int | None,
    group_by: Sequence[str], team: str | None = None,
    filters: dict[str, str] | None = None,
) -> dict[str, Any]:
    groups = list(dict.fromkeys(group_by))  # in order, once each
    for name in groups:
        if name not in GROUPS:
            raise ValueError(f"group_by takes {', '.join(GROUPS)}; not {name!r}")
    if until <= since:
        raise ValueError("since must be before until")
    if bucket_s is not None and (bucket_s < 1 or (until - since) / bucket_s > MAX_BUCKETS):
        raise ValueError(f"bucket_s gives more than {MAX_BUCKETS} buckets")
    window = and_(t.traces.c.ts >= since, t.traces.c.ts < until)
    if team is not None:  # one team's traces only (what a team's key may read)
        window = and_(window, t.traces.c.team == team)
    for name, value in (filters or {}).items():
        if name not in FILTERS:
            raise ValueError(f"filters take {', '.join(FILTERS)}; not {name!r}")
        window = and_(window, t.traces.c[name] == value)
    pg = conn.dialect.name == "postgresql"
    levels: list[tuple[str, ...]] = [()]
    if groups:
        levels.append(tuple(groups))
    if bucket_s is not None:
        levels.append(("bucket",))
        if groups:
            levels.append((*groups, "bucket"))
    from_rollups = None
    if rolled.eligible(since, until, bucket_s, groups, filters or {}, team):
        from_rollups = rolled.aggregate(conn, t, since, until, bucket_s, levels, team,
                                        filters or {})
    if from_rollups is not None:
        results, units = from_rollups
        for lv in levels:
            for key, fb in _feedback(conn, t, window, _keys(t, lv, bucket_s, pg), since).items():
                if key in results[lv]:
                    results[lv][key].update(fb)
        return _shape(results, since, until, bucket_s, groups,
                      {"percentiles": "histogram", "rolled_up_s": units * UNIT_S})
    # SQLite: the totals are the buckets' sums (one scan fewer); their percentiles come
    # from the sample below, as every level's do. Postgres computes them in the scan.
    derive = not pg and bucket_s is not None
    results = {lv: _aggregate(conn, t, window, lv, bucket_s, pg, since)
               for lv in levels if not (derive and lv == ())}
    if derive:
        results[()] = _summed(conn, t, window, results[("bucket",)], since)
    how = "exact"
    if not pg:
        how = _sqlite_percentiles(conn, t, window, levels, bucket_s, results)
    return _shape(results, since, until, bucket_s, groups,
                  {"percentiles": how, "rolled_up_s": 0})


def values(conn: Connection, t: Tables, dimension: str, since: float, until: float,
           team: str | None, limit: int) -> list[dict[str, Any]]:
    """The values ``dimension`` (a filter, or team) took in the window, with how many
    requests had each, most first: the dashboard's filter suggestions, without the
    metrics of a grouped query."""
    if dimension not in FILTERS:
        raise ValueError(f"dimension takes {', '.join(FILTERS)}; not {dimension!r}")
    c = t.traces.c
    where = [c.ts >= since, c.ts < until, c[dimension].is_not(None)]
    if team is not None:
        where.append(c.team == team)
    n = func.count().label("requests")
    query = (select(c[dimension], n).where(*where).group_by(c[dimension])
             .order_by(n.desc(), c[dimension]).limit(limit))
    return [{"value": v, "requests": int(k)} for v, k in conn.execute(query)]


def _keys(t: Tables, level: tuple[str, ...], bucket_s: int | None, pg: bool) -> list[Any]:
    c = t.traces.c
    out: list[Any] = []
    for name in level:
        if name == "bucket":
            assert bucket_s is not None
            out.append(bucket_of(c.ts, bucket_s, pg))
        else:
            out.append(c[name])
    return out


def _aggregate(
    conn: Connection, t: Tables, window: ColumnElement[bool], level: tuple[str, ...],
    bucket_s: int | None, pg: bool, since: float,
) -> dict[Key, dict[str, Any]]:
    c = t.traces.c
    keys = _keys(t, level, bucket_s, pg)
    columns: list[Any] = sum_columns(t)
    if pg:
        columns += [
            func.percentile_cont(q).within_group(c[col]).label(name) for name, col, q in _PCT
        ]
    query: Select[Any] = select(*keys, *columns).where(window).group_by(*keys)
    out = {tuple(row[: len(keys)]): dict(row._mapping) for row in conn.execute(query)}
    for key, fb in _feedback(conn, t, window, keys, since).items():
        if key in out:
            out[key].update(fb)
    return out


def _summed(conn: Connection, t: Tables, window: ColumnElement[bool],
            rows: dict[Key, dict[str, Any]], since: float) -> dict[Key, dict[str, Any]]:
    """The totals of a window from its buckets' sums (and its feedback, which is not a
    sum: the mean score is read again)."""
    if not rows:
        return {}
    total: dict[str, Any] = {name: sum(r.get(name) or 0 for r in rows.values())
                             for name in ADDITIVE}
    total.update(_feedback(conn, t, window, [], since).get((), {}))
    return {(): total}


FEEDBACK_SKEW_S = 3600.0


def _feedback(
    conn: Connection, t: Tables, window: ColumnElement[bool], keys: list[Any], since: float,
) -> dict[Key, dict[str, Any]]:
    """The feedback on the window's traces. Feedback comes after its answer, so only that
    given since the window began (less ``FEEDBACK_SKEW_S`` for clocks) is joined, and the
    traces are looked up by the ids it names: the feedback leads the join, instead of a
    probe of the feedback for every trace of the window."""
    f = t.feedback.c
    query = (
        select(
            *keys,
            func.sum(case((f.value == "up", 1), else_=0)).label("feedback_up"),
            func.sum(case((f.value == "down", 1), else_=0)).label("feedback_down"),
            func.avg(f.score).label("feedback_score_mean"),
        )
        .select_from(t.feedback.join(t.traces, t.traces.c.id == f.request_id))
        .where(f.ts >= since - FEEDBACK_SKEW_S, window, t.traces.c.id.in_(
            select(f.request_id).where(f.ts >= since - FEEDBACK_SKEW_S)))
        .group_by(*keys)
    )
    return {tuple(row[: len(keys)]): dict(row._mapping) for row in conn.execute(query)}


def _sqlite_percentiles(
    conn: Connection, t: Tables, window: ColumnElement[bool], levels: list[tuple[str, ...]],
    bucket_s: int | None, results: dict[tuple[str, ...], dict[Key, dict[str, Any]]],
) -> str:
    """percentile_cont for SQLite, from one (sampled) read of the window's latencies:
    "exact", or "sampled" when the window holds more than ``SAMPLE_MAX`` traces."""
    total = sum(m["requests"] for m in results[()].values())
    if total == 0:
        return "exact"
    c = t.traces.c
    widest = max(levels, key=len)
    keys = _keys(t, widest, bucket_s, pg=False)
    query = select(*keys, c.latency_ms, c.ttft_ms).where(window)
    if total > SAMPLE_MAX:  # the sample's seqs from the ts index alone, then those rows
        sampled = select(c.seq).where(window, c.seq % math.ceil(total / SAMPLE_MAX) == 0)
        query = select(*keys, c.latency_ms, c.ttft_ms).where(c.seq.in_(sampled))
    values: dict[tuple[str, ...], dict[Key, dict[str, list[float]]]] = {
        lv: defaultdict(lambda: {"latency_ms": [], "ttft_ms": []}) for lv in levels
    }
    positions = {lv: [widest.index(name) for name in lv] for lv in levels}
    width = len(keys)
    for row in conn.execute(query):
        latency, ttft = row[width], row[width + 1]
        for lv in levels:
            slot = values[lv][tuple(row[i] for i in positions[lv])]
            if latency is not None:
                slot["latency_ms"].append(latency)
            if ttft is not None:
                slot["ttft_ms"].append(ttft)
    for lv in levels:
        for key, lists in values[lv].items():
            sorted_lists = {col: sorted(vals) for col, vals in lists.items()}
            metrics = results[lv].get(key)
            if metrics is not None:
                for name, col, q in _PCT:
                    metrics[name] = percentile(sorted_lists[col], q)
    return "sampled" if total > SAMPLE_MAX else "exact"


def percentile(values: Sequence[float], q: float) -> float | None:
    """``percentile_cont``: linear interpolation between the closest ranks of sorted values."""
    if not values:
        return None
    pos = (len(values) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)


def _shape(
    results: dict[tuple[str, ...], dict[Key, dict[str, Any]]], since: float, until: float,
    bucket_s: int | None, groups: list[str], source: dict[str, Any],
) -> dict[str, Any]:
    seconds = until - since
    out: dict[str, Any] = {
        "since": since, "until": until, "bucket_s": bucket_s, "group_by": groups,
        "totals": _metrics(results[()].get((), {}), seconds), **source,
    }
    if bucket_s is not None:
        out["buckets"] = _buckets(results[("bucket",)], (), since, until, bucket_s)
    if groups:
        rows = []
        for key, raw in results[tuple(groups)].items():
            entry = {"key": dict(zip(groups, key, strict=True)), **_metrics(raw, seconds)}
            if bucket_s is not None:
                entry["buckets"] = _buckets(
                    results[(*groups, "bucket")], key, since, until, bucket_s
                )
            rows.append(entry)
        rows.sort(key=lambda e: (-e["requests"], [str(v) for v in e["key"].values()]))
        out["groups"] = rows
    return out


def _buckets(
    rows: dict[Key, dict[str, Any]], prefix: Key, since: float, until: float, bucket_s: int
) -> list[dict[str, Any]]:
    out = []
    for index in _bucket_range(since, until, bucket_s):
        start = index * bucket_s
        seconds = min(start + bucket_s, until) - max(start, since)
        raw = rows.get((*prefix, index), {})
        out.append({"ts": float(start), **_metrics(raw, seconds)})
    return out


def _bucket_range(since: float, until: float, bucket_s: int) -> Iterable[int]:
    first = math.floor(since / bucket_s)
    last = math.ceil(until / bucket_s)
    return range(first, last)


def _metrics(raw: dict[str, Any], seconds: float) -> dict[str, Any]:
    requests = int(raw.get("requests") or 0)
    server = int(raw.get("server_errors") or 0)
    gen_ms = raw.get("gen_ms") or 0.0
    gen_tokens = raw.get("gen_tokens") or 0
    score = raw.get("feedback_score_mean")
    return {
        "requests": requests,
        "errors": int(raw.get("errors") or 0),
        "client_disconnects": int(raw.get("client_disconnects") or 0),
        "server_errors": server,
        "availability": None if requests == 0 else 1.0 - server / requests,
        "qps": requests / seconds if seconds > 0 else 0.0,
        **{name: _float(raw.get(name)) for name, _, _ in _PCT},
        "input_tokens": int(raw.get("input_tokens") or 0),
        "output_tokens": int(raw.get("output_tokens") or 0),
        "output_tokens_per_s": gen_tokens / (gen_ms / 1000) if gen_ms > 0 else None,
        "cost": float(raw.get("cost") or 0.0),
        "feedback_up": int(raw.get("feedback_up") or 0),
        "feedback_down": int(raw.get("feedback_down") or 0),
        "feedback_score_mean": _float(score),
        "guarded": int(raw.get("guarded") or 0),
        "guard_blocked": int(raw.get("guard_blocked") or 0),
    }


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
