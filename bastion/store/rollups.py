"""Rollups: the traces' aggregates per half hour, so that a week or a month of stats reads
a few thousand rows instead of every trace.

A *unit* is the half hour ``[unit * UNIT_S, (unit + 1) * UNIT_S)``. For each unit,
``trace_rollups`` holds the additive aggregates of its traces (requests, errors, tokens,
cost, generation time, guard counts) and log histograms of latency and time to first
token (:mod:`bastion.store.histogram`), at five levels of detail (``LEVELS``): the whole
unit, per team, per model and deployment, per team, model and deployment, and per team,
model, deployment and key.
No user is in them: erasing a user changes their counts, never their content.

``rollup_units`` says which units' rows can be trusted: ``version`` is bumped by every
change to a unit's traces (a late insert into a closed unit, an erasure, retention, a
repricing), in the transaction of that change; ``rolled`` is the version the rows count.
A unit is rolled from its traces once it has been closed for ``GRACE_S`` (so that the
inserts of its last seconds have committed): its traces are read (outside the write lock),
then its rows written in one transaction that holds the unit's row (``FOR UPDATE`` on
Postgres, the write lock on SQLite): two workers rolling the same unit take turns, and the
second finds it done. The stats use the rows of units whose
``rolled == version`` and read the traces of every other part of a range
(:mod:`bastion.store.rolled_stats`).

Inserts into the open unit (almost all of them) touch no rollup table: only a batch with
traces of a closed unit bumps those units. The rolling runs off the hot path, in a thread
of the ingest process (``Store.roll_up``, from ``Ingest``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from bastion.store import histogram
from bastion.store.schema import Tables

UNIT_S = 1800
GRACE_S = 120
DIMS = ("team", "model", "deployment", "key_id")
# the levels of detail, coarsest first (a query reads the first that has its dimensions);
# a row's ``level`` is its index here, so a change to this list clears the rollups first
LEVELS: tuple[tuple[str, ...], ...] = ((), ("team",), ("model", "deployment"),
                                       ("team", "model", "deployment"), DIMS)
ADDITIVE = ("requests", "errors", "client_disconnects", "server_errors", "input_tokens",
            "output_tokens", "cost", "gen_tokens", "gen_ms", "guarded", "guard_blocked")


class Acc:
    """The aggregates of some traces: additive sums and the two histograms."""

    __slots__ = ("latency", "sums", "ttft")

    def __init__(self) -> None:
        self.sums: list[Any] = [0] * len(ADDITIVE)
        self.latency: histogram.Hist = {}
        self.ttft: histogram.Hist = {}

    def merge(self, sums: Sequence[Any], latency: histogram.Hist, ttft: histogram.Hist) -> None:
        s = self.sums
        for i, value in enumerate(sums):
            s[i] += value or 0
        histogram.merge(self.latency, latency)
        histogram.merge(self.ttft, ttft)

    def metrics(self) -> dict[str, Any]:
        """The raw metrics :func:`bastion.store.stats._metrics` shapes (percentiles from
        the histograms)."""
        out: dict[str, Any] = dict(zip(ADDITIVE, self.sums, strict=True))
        for name, hist, q in (("latency_p50_ms", self.latency, 0.5),
                              ("latency_p95_ms", self.latency, 0.95),
                              ("latency_p99_ms", self.latency, 0.99),
                              ("ttft_p50_ms", self.ttft, 0.5), ("ttft_p95_ms", self.ttft, 0.95)):
            out[name] = histogram.percentile(hist, q)
        return out


def sum_columns(t: Tables) -> list[Any]:
    """The additive aggregates (``ADDITIVE``, in order) as SQL: what counts as an error, a
    disconnect, generation time. The stats' scans and the rollups share them."""
    c = t.traces.c
    disconnect = c.status == 499
    error = and_(or_(c.status >= 400, c.error.is_not(None)), or_(c.status.is_(None), ~disconnect))
    gen_ms = c.latency_ms - func.coalesce(c.queue_ms, 0)
    generating = and_(c.output_tokens > 0, gen_ms > 0)
    return [
        func.count().label("requests"),
        func.sum(case((error, 1), else_=0)).label("errors"),
        func.sum(case((disconnect, 1), else_=0)).label("client_disconnects"),
        func.sum(case((c.status >= 500, 1), else_=0)).label("server_errors"),
        func.sum(c.input_tokens).label("input_tokens"),
        func.sum(c.output_tokens).label("output_tokens"),
        func.sum(c.cost).label("cost"),
        func.sum(case((generating, c.output_tokens), else_=None)).label("gen_tokens"),
        func.sum(case((generating, gen_ms), else_=None)).label("gen_ms"),
        func.sum(case((c.guard_action.is_not(None), 1), else_=0)).label("guarded"),
        func.sum(case((c.guard_action == "block", 1), else_=0)).label("guard_blocked"),
    ]


def bucket_of(ts: Any, bucket_s: int, pg: bool) -> Any:
    """A timestamp's bucket: whole multiples of ``bucket_s`` since the epoch (ts > 0)."""
    whole = func.floor(ts / bucket_s) if pg else ts / bucket_s
    return cast(whole, BigInteger).label("bucket")


def _bin(value: Any) -> Any:
    """:func:`bastion.store.histogram.bin_of` in SQL (``ln``: Postgres', SQLite's math
    functions, or the store's own where SQLite was built without them)."""
    return case((value >= histogram.MIN_MS,
                 cast(func.floor(func.ln(value) / math.log(histogram.RATIO)), BigInteger)),
                else_=histogram.ZERO).label("bin")


def coarsen(accs: dict[tuple[Any, ...], Acc],
            positions: Sequence[int]) -> dict[tuple[Any, ...], Acc]:
    """``accs`` merged by part of their key: the key's items at ``positions``."""
    out: dict[tuple[Any, ...], Acc] = {}
    for key, acc in accs.items():
        short = tuple(key[i] for i in positions)
        into = out.get(short)
        if into is None:
            into = out[short] = Acc()
        into.merge(acc.sums, acc.latency, acc.ttft)
    return out


def fold(conn: Connection, t: Tables, where: Any, dims: Sequence[str],
         bucket_s: int | None) -> dict[tuple[Any, ...], Acc]:
    """The aggregates of the traces ``where`` selects, per ``dims`` (and bucket, last in
    the key, when ``bucket_s``), computed by the database: one grouped scan for the sums,
    one for each histogram."""
    c = t.traces.c
    keys: list[Any] = [c[d] for d in dims]
    if bucket_s is not None:
        keys.append(bucket_of(c.ts, bucket_s, conn.dialect.name == "postgresql"))
    out: dict[tuple[Any, ...], Acc] = {}
    width = len(keys)
    for row in conn.execute(select(*keys, *sum_columns(t)).where(where).group_by(*keys)):
        acc = out[tuple(row[:width])] = Acc()
        acc.merge(row[width:], {}, {})
    for column, slot in ((c.latency_ms, "latency"), (c.ttft_ms, "ttft")):
        b = _bin(column)
        query = (select(*keys, b, func.count()).where(where, column.is_not(None))
                 .group_by(*keys, b))
        for row in conn.execute(query):
            found = out.get(tuple(row[:width]))
            if found is not None:
                hist = found.latency if slot == "latency" else found.ttft
                hist[int(row[width])] = int(row[width + 1])
    return out


def units_of(stamps: Iterable[float]) -> set[int]:
    return {math.floor(ts / UNIT_S) for ts in stamps}


def bump(conn: Connection, t: Tables, units: Iterable[int]) -> None:
    """Marks units as changed (their rows are stale until rolled again), inside the
    caller's transaction."""
    values = [{"unit": u, "version": 1} for u in sorted(set(units))]
    if not values:
        return
    u = t.rollup_units
    stmt = (postgresql.insert(u) if conn.dialect.name == "postgresql" else sqlite.insert(u))
    conn.execute(stmt.values(values).on_conflict_do_update(
        index_elements=["unit"], set_={"version": u.c.version + 1}))


def bump_closed(conn: Connection, t: Tables, stamps: Sequence[float], now: float) -> None:
    """An insert's share: the units of ``stamps`` that had closed by ``now`` (traces that
    came late, or from a spool replayed after an outage); nothing for the open unit."""
    if not stamps:
        return
    open_unit = math.floor(now / UNIT_S)
    if math.floor(min(stamps) / UNIT_S) >= open_unit:
        return
    bump(conn, t, (u for u in units_of(stamps) if u < open_unit))


def drop_before(conn: Connection, t: Tables, ts: float) -> None:
    """Retention's share: the rows of units wholly before ``ts`` go, the unit that holds
    ``ts`` is stale."""
    cut = math.floor(ts / UNIT_S)
    conn.execute(delete(t.rollups).where(t.rollups.c.unit < cut))
    conn.execute(delete(t.rollup_units).where(t.rollup_units.c.unit < cut))
    bump(conn, t, [cut])


def roll_unit(engine: Engine, t: Tables, write_options: dict[str, Any], unit: int,
              now: float) -> bool:
    """Rolls one unit from its traces; False when it was current already. The traces are
    read outside the write lock (a busy half hour takes a while), after the unit's version:
    a change committed after that read bumps the version past the one written with the
    rows, so they are stale at once and rolled again. The rows are written, in one
    transaction holding the unit's row, only when no current ones are there."""
    u = t.rollup_units
    pg = engine.dialect.name == "postgresql"
    with engine.connect() as conn, conn.begin():  # one snapshot on SQLite
        found = conn.execute(select(u.c.version, u.c.rolled).where(u.c.unit == unit)).first()
        version = 0 if found is None else found[0]
        if found is not None and found[1] == version:
            return False
        c = t.traces.c
        finest = fold(conn, t, and_(c.ts >= unit * UNIT_S, c.ts < (unit + 1) * UNIT_S),
                      DIMS, None)
    out = []
    for index, level in enumerate(LEVELS):
        for key, acc in coarsen(finest, [DIMS.index(d) for d in level]).items():
            row: dict[str, Any] = {"unit": unit, "level": index, **dict.fromkeys(DIMS),
                                   **dict(zip(level, key, strict=True))}
            row.update(zip(ADDITIVE, acc.sums, strict=True))
            row["latency_hist"] = histogram.dumps(acc.latency)
            row["ttft_hist"] = histogram.dumps(acc.ttft)
            out.append(row)
    with engine.connect().execution_options(**write_options) as conn, conn.begin():
        stmt = (postgresql.insert(u) if pg else sqlite.insert(u))
        conn.execute(stmt.values(unit=unit, version=0).on_conflict_do_nothing(
            index_elements=["unit"]))
        held = select(u.c.version, u.c.rolled).where(u.c.unit == unit)
        current, rolled = conn.execute(held.with_for_update() if pg else held).one()
        if rolled == current:
            return False  # another worker's rows, as current as these or more
        conn.execute(delete(t.rollups).where(t.rollups.c.unit == unit))
        if out:
            conn.execute(insert(t.rollups), out)
        conn.execute(update(u).where(u.c.unit == unit).values(rolled=version, rolled_at=now))
    return True


def pending(conn: Connection, t: Tables, now: float, limit: int) -> list[int]:
    """Closed units to roll: stale ones first, then never-rolled ones from the newest
    back to the oldest trace's unit."""
    closed = math.floor((now - GRACE_S) / UNIT_S)  # units below this one are closed
    u = t.rollup_units
    stale = [r[0] for r in conn.execute(
        select(u.c.unit).where(u.c.unit < closed, (u.c.rolled.is_(None))
                               | (u.c.rolled != u.c.version))
        .order_by(u.c.unit.desc()).limit(limit))]
    if len(stale) >= limit:
        return stale
    oldest = oldest_ts(conn, t)
    if oldest is None:
        return stale
    first = math.floor(oldest / UNIT_S)
    known = {r[0] for r in conn.execute(select(u.c.unit).where(u.c.unit >= first))}
    fresh = [unit for unit in range(closed - 1, first - 1, -1) if unit not in known]
    return stale + fresh[: limit - len(stale)]


def oldest_ts(conn: Connection, t: Tables) -> float | None:
    """The oldest trace's time (before it there is nothing to roll), from the ts index."""
    oldest = conn.execute(select(func.min(t.traces.c.ts))).scalar()
    return None if oldest is None else float(oldest)


def usable(conn: Connection, t: Tables, first: int, last: int) -> set[int]:
    """The units in ``[first, last)`` whose rows count every trace they hold."""
    u = t.rollup_units
    return {r[0] for r in conn.execute(select(u.c.unit).where(
        and_(u.c.unit >= first, u.c.unit < last, u.c.rolled == u.c.version)))}


def roll_up(engine: Engine, t: Tables, write_options: dict[str, Any], *,
            now: float | None = None, budget_s: float = 0.5, limit: int = 64) -> int:
    """Rolls pending units, one transaction each, for at most ``budget_s``; returns how
    many it rolled (0: none were pending)."""
    now = time.time() if now is None else now
    deadline = time.monotonic() + budget_s
    done = 0
    with engine.connect() as conn:
        units = pending(conn, t, now, limit)
        conn.rollback()
    for unit in units:
        done += roll_unit(engine, t, write_options, unit, now)
        if time.monotonic() >= deadline:
            break
    return done
