"""Postgres: the range partitions of ``traces`` (by ``ts``, float8 epoch seconds).

A partition covers ``[lo, hi)``, ``partition_days`` long, aligned to UTC midnight of epoch
days (``traces_p20261201`` holds 2026-12-01). The store creates the current one and the next
two when it opens, and, before an insert, any that a batch needs and the partition list it
keeps does not show. ``traces_default`` catches whatever still slips through (a partition
another process dropped meanwhile); when a partition is created for a range that already
has rows in the default one, they move into it. An insert that fails because no partition
(not even the default) takes its rows makes the store refresh the list, create and retry.

``trace_bodies`` is partitioned the same way: each ``traces_p...`` has a
``trace_bodies_p...`` with the same bounds (and ``trace_bodies_default``), created, filled
from the default partition and dropped together with it.

All partition DDL runs under one advisory transaction lock, after re-reading the catalog:
worker processes racing to create the same partition create it once. Retention drops whole
partitions that end before the cut-off (no row-by-row delete, no bloat).
"""

from __future__ import annotations

import bisect
import math
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, func, select, text

from bastion.store.migrations import PARTITION_LOCK

DAY_S = 86_400.0
DEFAULT = "traces_default"
PARENTS = ("traces", "trace_bodies")
AHEAD = 2  # partitions created past the current one when the store opens
_BOUND = re.compile(r"FROM \('?([^')]+)'?\) TO \('?([^')]+)'?\)")


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    lo: float
    hi: float


class Partitions:
    """What this process knows of the partitions (refreshed whenever it creates one)."""

    def __init__(self, days: int) -> None:
        self.span = days * DAY_S
        # (lower bounds, partitions), both sorted by lower bound; replaced whole, never
        # edited, so threads read it without the lock
        self._view: tuple[list[float], list[Partition]] = ([], [])
        self.has_default = False
        self._lock = threading.Lock()

    @property
    def known(self) -> list[Partition]:
        return list(self._view[1])

    def covers(self, ts: float) -> bool:
        los, known = self._view
        i = bisect.bisect_right(los, ts) - 1
        return i >= 0 and ts < known[i].hi

    def missing(self, timestamps: Iterable[float]) -> list[float]:
        """Slot starts that the given timestamps need and no known partition covers."""
        return sorted({self.slot(ts) for ts in timestamps if not self.covers(ts)})

    def slot(self, ts: float) -> float:
        return math.floor(ts / self.span) * self.span

    def ranges(self) -> list[tuple[float, float]]:
        """``[lo, hi)`` ranges covering every ts, oldest first: each known partition, and
        the gaps between (which only the default partition holds). A query limited to one
        of them reads one partition (or the default one)."""
        out: list[tuple[float, float]] = []
        edge = -math.inf
        for part in self._view[1]:
            if part.lo > edge:
                out.append((edge, part.lo))
            out.append((part.lo, part.hi))
            edge = max(edge, part.hi)
        if edge < math.inf:
            out.append((edge, math.inf))
        return out

    def load(self, conn: Connection) -> None:
        parts, has_default = _read(conn)
        with self._lock:
            self._set(parts, has_default)

    def ensure_ahead(self, conn: Connection, now: float | None = None) -> None:
        start = self.slot(time.time() if now is None else now)
        self.ensure(conn, [start + i * self.span for i in range(AHEAD + 1)])

    def ensure(self, conn: Connection, slots: list[float]) -> None:
        """Creates the partitions for these slot starts, one transaction each."""
        for start in slots:
            with conn.begin():
                self._create(conn, start)

    def drop_before(self, conn: Connection, cutoff: float) -> int:
        """Drops the partitions that end at or before ``cutoff`` (inside the caller's
        transaction); returns how many rows they held."""
        conn.execute(select(func.pg_advisory_xact_lock(PARTITION_LOCK)))
        parts, has_default = _read(conn)
        removed = 0
        for part in parts:
            if part.hi <= cutoff:
                quoted = conn.dialect.identifier_preparer.quote(part.name)
                count = text(f"SELECT count(*) FROM {quoted}")  # noqa: S608 - a catalog name
                removed += conn.execute(count).scalar_one()
                conn.execute(text(f"DROP TABLE {quoted}"))
                body = conn.dialect.identifier_preparer.quote(body_name(part.name))
                conn.execute(text(f"DROP TABLE IF EXISTS {body}"))
        with self._lock:
            self._set([p for p in parts if p.hi > cutoff], has_default)
        return int(removed)

    def merge_text_pending(self, conn: Connection, before: float) -> None:
        """Merges the GIN pending list of the text index into the index proper on every
        ``trace_bodies`` partition that ends by ``before`` (days no longer written): a
        search reads each pending list whole, and only VACUUM merges a list below its
        limit (autovacuum may be off). Quick when there is nothing to merge."""
        closed = {body_name(p.name) for p in self._view[1] if p.hi <= before}
        indexes = conn.execute(text(
            "SELECT t.relname, h.inhrelid::regclass::text FROM pg_inherits h "
            "JOIN pg_index i ON i.indexrelid = h.inhrelid JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE h.inhparent = to_regclass('ix_trace_bodies_search')"
        )).all()
        for table_name, index in indexes:
            if table_name in closed:
                conn.execute(text("SELECT gin_clean_pending_list(CAST(:i AS regclass))"),
                             {"i": index})
                conn.commit()

    def _create(self, conn: Connection, ts: float) -> None:
        conn.execute(select(func.pg_advisory_xact_lock(PARTITION_LOCK)))
        parts, has_default = _read(conn)
        if not any(p.lo <= ts < p.hi for p in parts):
            lo, hi = self._bounds(ts, parts)
            name = _name(lo, self.slot(lo) == lo)
            _create_partition(conn, name, lo, hi, has_default)
            parts.append(Partition(name, lo, hi))
        with self._lock:
            self._set(parts, has_default)

    def _bounds(self, ts: float, parts: list[Partition]) -> tuple[float, float]:
        """The slot around ``ts``, clipped to the neighbours (partition_days may have
        changed since they were made)."""
        lo = self.slot(ts)
        hi = lo + self.span
        for part in parts:
            if part.hi <= ts:
                lo = max(lo, part.hi)
            elif part.lo > ts:
                hi = min(hi, part.lo)
        return lo, hi

    def _set(self, parts: list[Partition], has_default: bool) -> None:
        known = sorted(parts, key=lambda p: p.lo)
        self._view = ([p.lo for p in known], known)
        self.has_default = has_default


def _read(conn: Connection) -> tuple[list[Partition], bool]:
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'traces'::regclass"
    )).all()
    parts: list[Partition] = []
    has_default = False
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match is None:
            has_default = has_default or "DEFAULT" in (bound or "")
            continue
        parts.append(Partition(name, _float(match.group(1)), _float(match.group(2))))
    return parts, has_default


def _float(bound: str) -> float:
    if bound == "MINVALUE":
        return -math.inf
    if bound == "MAXVALUE":
        return math.inf
    return float(bound)


def body_name(name: str) -> str:
    """The trace_bodies partition beside a traces partition (same bounds)."""
    return "trace_bodies" + name.removeprefix("traces")


def _name(lo: float, aligned: bool) -> str:
    stamp = "%Y%m%d" if aligned else "%Y%m%d_%H%M%S"
    return "traces_p" + time.strftime(stamp, time.gmtime(lo))


# the f-strings below splice constants and quoted catalog names, never input (S608)
def _create_partition(conn: Connection, name: str, lo: float, hi: float, default: bool) -> None:
    """The traces partition and its trace_bodies partition."""
    for parent in PARENTS:
        own = name if parent == "traces" else body_name(name)
        _create_one(conn, parent, own, lo, hi, default)


def _create_one(
    conn: Connection, parent: str, name: str, lo: float, hi: float, default: bool
) -> None:
    quoted = conn.dialect.identifier_preparer.quote(name)
    fallback = DEFAULT if parent == "traces" else parent + "_default"
    if parent != "traces":  # its own default partition, whatever happened to traces'
        default = conn.execute(select(func.to_regclass(fallback))).scalar() is not None
    create = text(
        f"CREATE TABLE IF NOT EXISTS {quoted} PARTITION OF {parent} "
        f"FOR VALUES FROM ({lo!r}) TO ({hi!r})"
    )
    window = {"lo": lo, "hi": hi}
    stranded = default and conn.execute(
        text(f"SELECT EXISTS (SELECT 1 FROM {fallback} WHERE ts >= :lo AND ts < :hi)"),  # noqa: S608
        window,
    ).scalar_one()
    if not stranded:
        conn.execute(create)
        return
    # rows of this range already sit in the default partition: move them in
    conn.execute(text(f"ALTER TABLE {parent} DETACH PARTITION {fallback}"))
    conn.execute(create)
    columns = ", ".join(
        conn.dialect.identifier_preparer.quote(r[0]) for r in conn.execute(text(
            "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) "
            "AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum"
        ), {"t": parent})
    )
    moved = f"SELECT {columns} FROM {fallback} WHERE ts >= :lo AND ts < :hi"  # noqa: S608
    conn.execute(text(f"INSERT INTO {parent} ({columns}) {moved}"), window)
    conn.execute(text(f"DELETE FROM {fallback} WHERE ts >= :lo AND ts < :hi"), window)  # noqa: S608
    conn.execute(text(f"ALTER TABLE {parent} ATTACH PARTITION {fallback} DEFAULT"))
