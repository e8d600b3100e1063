"""Stats of long ranges from the rollups (:mod:`bastion.store.rollups`), with the traces
read only where no current rollup covers the range.

A range qualifies when it is at least ``MIN_WINDOW_S`` long, its bucket width (if any)
is a whole number of units, and it groups and filters only by the rollups' dimensions
(team, model, deployment, key): a user filter, or grouping by guard action, reads the
traces as before. The half hours of the range whose rollups are current are read from
the coarsest level that has the dimensions asked; the rest (the partial half hours at
its ends, the open one, any not yet rolled or changed since) from the traces, folded the
same way. Percentiles come from the merged histograms (within 2 %); every sum is exact.
A range whose part since the oldest trace is less than half covered by current rollups (a
store not rolled up yet) is read from the traces alone, as a range that does not qualify.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from bastion.store import histogram
from bastion.store.rollups import (
    ADDITIVE,
    DIMS,
    LEVELS,
    UNIT_S,
    Acc,
    coarsen,
    fold,
    oldest_ts,
    usable,
)
from bastion.store.schema import Tables

MIN_WINDOW_S = 6 * 3600
MIN_COVER = 0.5
Key = tuple[Any, ...]


def eligible(since: float, until: float, bucket_s: int | None, groups: Sequence[str],
             filters: dict[str, str], team: str | None) -> bool:
    if until - since < MIN_WINDOW_S or (bucket_s is not None and bucket_s % UNIT_S):
        return False
    return set(groups) | set(filters) | ({"team"} if team is not None else set()) <= set(DIMS)


def aggregate(
    conn: Connection, t: Tables, since: float, until: float, bucket_s: int | None,
    levels: Sequence[tuple[str, ...]], team: str | None, filters: dict[str, str],
) -> tuple[dict[tuple[str, ...], dict[Key, dict[str, Any]]], int] | None:
    """The raw metrics of every level (as :mod:`bastion.store.stats` builds them, without
    feedback), and how many units came from the rollups; None when current rollups cover
    less than ``MIN_COVER`` of the range."""
    wanted = dict(filters)
    if team is not None:
        wanted["team"] = team
    needed = {name for lv in levels for name in lv if name != "bucket"} | set(wanted)
    index = next(i for i, lv in enumerate(LEVELS) if needed <= set(lv))
    first, last = math.ceil(since / UNIT_S), math.floor(until / UNIT_S)
    ok = usable(conn, t, first, last) if first < last else set()
    if len(ok) * UNIT_S < (until - since) * MIN_COVER:
        # before the oldest trace there is nothing to roll: the part of the range that
        # holds traces is what must be covered
        oldest = oldest_ts(conn, t)
        start = since if oldest is None else max(since, oldest)
        if len(ok) * UNIT_S < (until - start) * MIN_COVER:
            return None  # mostly not rolled yet (a new store, a backfill): the traces' path
    widest = max(levels, key=len)  # every other level's names are among its names
    top: dict[Key, Acc] = {}

    def fold_into(dims: dict[str, Any], bucket: int | None) -> Acc:
        key = tuple(bucket if name == "bucket" else dims[name] for name in widest)
        acc = top.get(key)
        if acc is None:
            acc = top[key] = Acc()
        return acc

    if ok:
        r = t.rollups.c
        names = LEVELS[index]
        query = select(r.unit, *(r[d] for d in names), *(r[n] for n in ADDITIVE),
                       r.latency_hist, r.ttft_hist).where(
            r.level == index, r.unit >= min(ok), r.unit <= max(ok),
            *(r[name] == value for name, value in wanted.items()))
        width = len(names)
        for row in conn.execute(query):
            unit = row[0]
            if unit not in ok:
                continue
            dims = dict(zip(names, row[1:1 + width], strict=True))
            sums = row[1 + width:1 + width + len(ADDITIVE)]
            latency, ttft = histogram.loads(row[-2]), histogram.loads(row[-1])
            bucket = None if bucket_s is None else math.floor(unit * UNIT_S / bucket_s)
            fold_into(dims, bucket).merge(sums, latency, ttft)
    spans = _uncovered(since, until, ok)
    if spans:  # the traces outside current rollups, folded by the database
        c = t.traces.c
        where = and_(or_(*(and_(c.ts >= a, c.ts < b) for a, b in spans)),
                     *(c[name] == value for name, value in wanted.items()))
        names = LEVELS[index]
        for key, part in fold(conn, t, where, names, bucket_s).items():
            dims = dict(zip(names, key, strict=False))
            bucket = key[-1] if bucket_s is not None else None
            fold_into(dims, bucket).merge(part.sums, part.latency, part.ttft)
    out: dict[tuple[str, ...], dict[Key, dict[str, Any]]] = {}
    for lv in levels:  # the coarser levels from the widest one's (few) aggregates
        if lv == widest:
            out[lv] = {key: acc.metrics() for key, acc in top.items()}
            continue
        coarse = coarsen(top, [widest.index(name) for name in lv])
        out[lv] = {key: acc.metrics() for key, acc in coarse.items()}
    return out, len(ok)


def _uncovered(since: float, until: float, ok: set[int]) -> list[tuple[float, float]]:
    """The parts of ``[since, until)`` outside the units in ``ok``, as few spans as can be."""
    spans: list[tuple[float, float]] = []
    start = since
    for unit in sorted(ok):
        a, b = unit * UNIT_S, (unit + 1) * UNIT_S
        if a > start:
            spans.append((start, a))
        start = max(start, b)
    if start < until:
        spans.append((start, until))
    return spans
