"""Data subjects: every row the store holds tied to one ``user``, exported or erased.

A user's data is their traces (``traces.user``: the request's ``user`` field), each with
its body (``trace_bodies``), its text index entry (SQLite's FTS5 ``trace_text``; on
Postgres the body's own ``search_tsv``) and the feedback on it, plus the feedback they
gave (``feedback.user``) on any trace.

:meth:`SubjectRows.erase` deletes all of it in batches of ``ERASE_CHUNK`` traces, one
transaction each (so the ingest and the API get turns), then
:meth:`SubjectRows.remaining` counts what is still there: the verification, all zeros
after a complete erasure. Deleted rows leave their bytes behind unless something
overwrites them:

- SQLite: the erasing connection runs with ``PRAGMA secure_delete = ON`` (freed cells and
  pages are zeroed), the FTS5 index is merged (``optimize``: its segments still hold the
  deleted documents' words until then; a rewrite of the index, ~3 s at 1M traces) and the
  WAL is checkpointed and truncated (it holds earlier page images). A raw read of the
  files then finds nothing of the user.
- Postgres: a deleted row is a dead tuple until VACUUM; the partitions (and ``feedback``)
  that held the user's rows are vacuumed at the end. VACUUM makes the space reusable, it
  does not overwrite it, and the WAL segments and any base backup keep the rows until they
  are recycled: the physical guarantee there is encryption (of the disk, or of the bodies).

Only ``user`` identifies a subject here; the keys issued to a user (``api_keys.user``) are
exported, not erased (revoke them through the key API: their ids stay for the audit log).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    column,
    delete,
    func,
    literal_column,
    or_,
    select,
    table,
    tuple_,
)
from sqlalchemy import exc as sa_exc

from bastion.store import rollups
from bastion.store.errors import unavailable_as_store_error
from bastion.store.migrations import WRITE
from bastion.store.partitions import body_name
from bastion.store.query import decode_cursor, encode_cursor
from bastion.store.schema import API_KEY_KEYS, FEEDBACK_KEYS, Tables

ERASE_CHUNK = 500  # traces per transaction
IN_CHUNK = 500  # ids per IN (...) list of a verification query
TOMBSTONE = "user.erase.start"  # the audit action that marks a subject as erased
COUNTED = ("traces", "bodies", "text_index", "feedback")
CHECKPOINT_TRIES = 5  # each waits up to the busy timeout for a reader
# SQLite: FTS5's own table of the documents it indexes (one row per rowid = trace seq)
DOCSIZE = table("trace_text_docsize", column("id"))


@dataclass
class Removed:
    """Rows deleted, by table (``text_index``: SQLite's FTS5 documents, Postgres' stored
    vectors), and the trace keys they had (for the verification)."""

    traces: int = 0
    bodies: int = 0
    text_index: int = 0
    feedback: int = 0
    keys: list[tuple[Any, ...]] = field(default_factory=list)  # (id, ts[, seq])
    partitions: set[str] = field(default_factory=set)  # Postgres: where the rows were

    def counts(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in COUNTED}


@dataclass
class Erasure:
    """What :meth:`SubjectRows.erase` did: counts by table, the verification (rows still
    tied to the user, by table: all zeros when complete), the recent traces' (id, key_id,
    session) for erasers of in-memory state, and what was done to the storage itself."""

    erased: dict[str, int]
    remaining: dict[str, int]
    recent: list[tuple[str, str | None, str | None]]
    storage: dict[str, Any]

    @property
    def verified(self) -> bool:
        return not any(self.remaining.values())


class Purge:
    """Deletes given traces with their bodies, text index entries and feedback, inside the
    caller's transaction (shared by erasure and per-team retention)."""

    def __init__(self, t: Tables, dialect: str) -> None:
        self._t = t
        self.pg = dialect == "postgresql"
        c = t.traces.c
        self.key_columns = [c.id, c.ts] if self.pg else [c.id, c.ts, c.seq]

    def delete(self, conn: Connection, rows: Sequence[Any], fts: bool) -> Removed:
        """``rows``: (id, ts[, seq]) of the traces (``key_columns``)."""
        t, out = self._t, Removed()
        if not rows:
            return out
        ids = [r[0] for r in rows]
        out.keys = [tuple(r[:3]) for r in rows]
        rollups.bump(conn, t, rollups.units_of(r[1] for r in rows))
        f = t.feedback
        out.feedback = _count(conn.execute(delete(f).where(f.c.request_id.in_(ids))))
        if self.pg:
            pairs = [(r[0], r[1]) for r in rows]
            low, high = min(r[1] for r in rows), max(r[1] for r in rows)
            b, c = t.bodies.c, t.traces.c
            found: Sequence[Any] = conn.execute(
                delete(t.bodies).where(tuple_(b.id, b.ts).in_(pairs), b.ts >= low,
                                       b.ts <= high)
                .returning(b.search.is_not(None))).all()
            out.bodies = len(found)
            out.text_index = sum(1 for r in found if r[0])
            where = and_(tuple_(c.id, c.ts).in_(pairs), c.ts >= low, c.ts <= high)
            gone: Sequence[Any] = conn.execute(delete(t.traces).where(where).returning(
                literal_column("tableoid::regclass::text"))).all()
            out.traces = len(gone)
            out.partitions = {r[0] for r in gone}
            return out
        seqs = [r[2] for r in rows]
        if fts:  # the documents the index holds for them (the delete trigger drops them)
            out.text_index = _scalar(conn, select(func.count()).where(DOCSIZE.c.id.in_(seqs)))
        out.bodies = _count(conn.execute(delete(t.bodies).where(t.bodies.c.seq.in_(seqs))))
        out.traces = _count(conn.execute(delete(t.traces).where(t.traces.c.seq.in_(seqs))))
        return out


class SubjectRows:
    def __init__(self, engine: Engine, t: Tables) -> None:
        self._engine = engine
        self._t = t
        self._purge = Purge(t, engine.dialect.name)
        self._pg = self._purge.pg
        self._fts: bool | None = None

    # ------------------------------------------------------------------ erasure
    def erase(self, user: str, recent_since: float | None = None) -> Erasure:
        """Deletes everything tied to ``user`` and verifies; ``recent_since``: the traces
        from then on are returned as ``recent`` (what in-memory state may still hold)."""
        c = self._t.traces.c
        with unavailable_as_store_error("erase_user"):
            removed, recent, storage = self._erase(c.user == user, recent_since, user)
            remaining = self.remaining(user, removed.keys)
        return Erasure(removed.counts(), remaining, recent, storage)

    def delete_traces(self, ids: Sequence[str]) -> dict[str, int]:
        """Erases these traces as :meth:`erase` does a user's (the ingest, for traces of
        an erased user that it stored while the erasure ran)."""
        if not ids:
            return dict.fromkeys(COUNTED, 0)
        with unavailable_as_store_error("erase_traces"):
            return self._erase(self._t.traces.c.id.in_(list(ids)), None, None)[0].counts()

    def _erase(self, where: ColumnElement[bool], recent_since: float | None,
               user: str | None) -> tuple[Removed, list[tuple[str, str | None, str | None]],
                                          dict[str, Any]]:
        c = self._t.traces.c
        total, recent = Removed(), []
        page = select(*self._purge.key_columns, c.key_id, c.session).where(where)
        with self._secure() as conn:
            fts = self._has_fts()
            while True:
                with conn.begin():
                    rows = conn.execute(page.limit(ERASE_CHUNK)).all()
                    done = self._purge.delete(conn, rows, fts)
                    if user is not None and len(rows) < ERASE_CHUNK:  # the last batch
                        f = self._t.feedback
                        done.feedback += _count(conn.execute(
                            delete(f).where(f.c.user == user)))
                _merge(total, done)
                if recent_since is not None:
                    recent += [(r[0], r[-2], r[-1]) for r in rows if r[1] >= recent_since]
                if len(rows) < ERASE_CHUNK or not done.traces:  # (none gone: the
                    break  # verification shows what is left, never a loop on it)
            storage = self._scrub(conn, total, fts)
        return total, recent, storage

    @contextlib.contextmanager
    def _secure(self) -> Iterator[Connection]:
        """A write connection; on SQLite with ``secure_delete`` on (restored after)."""
        with self._engine.connect().execution_options(**WRITE) as conn:
            if self._pg:
                yield conn
                return
            raw = conn.connection.driver_connection
            assert raw is not None
            before = raw.execute("PRAGMA secure_delete").fetchone()
            raw.execute("PRAGMA secure_delete = ON")
            try:
                yield conn
            finally:
                raw.execute(f"PRAGMA secure_delete = {int(before[0]) if before else 0}")

    def _scrub(self, conn: Connection, removed: Removed, fts: bool) -> dict[str, Any]:
        """After the deletes: what makes the deleted bytes unreadable (see the module)."""
        if not (removed.traces or removed.feedback):
            return {}
        if self._pg:
            return {"vacuumed": self._vacuum(removed.partitions)}
        if fts and removed.traces:
            with conn.begin():  # merge the segments: the deleted documents' words go
                conn.exec_driver_sql("INSERT INTO trace_text(trace_text) VALUES ('optimize')")
        raw = conn.connection.driver_connection
        assert raw is not None
        truncated = False
        for _ in range(CHECKPOINT_TRIES):  # a reader of an older snapshot holds the WAL
            busy = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy is None or busy[0] == 0:
                truncated = True
                break
            time.sleep(0.05)
        return {"secure_delete": True, "text_index_merged": fts, "wal_truncated": truncated}

    def _vacuum(self, partitions: set[str]) -> list[str]:
        quote = self._engine.dialect.identifier_preparer.quote
        names = sorted({*partitions, *(body_name(p) for p in partitions), "feedback"})
        done = []
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in names:
                try:
                    conn.exec_driver_sql(f"VACUUM {quote(name)}")
                except (sa_exc.ProgrammingError, sa_exc.OperationalError):
                    continue  # gone meanwhile (retention dropped it), or not ours
                done.append(name)
        return done

    def _has_fts(self) -> bool:
        """SQLite: whether the FTS5 index is there (asked once, on a connection of its
        own: never opening a transaction on the caller's)."""
        if self._pg:
            return False
        if self._fts is None:
            with self._engine.connect() as conn:
                self._fts = conn.exec_driver_sql(
                    "SELECT 1 FROM sqlite_master WHERE name = 'trace_text_docsize'"
                ).first() is not None
        return self._fts

    # ------------------------------------------------------------- verification
    def remaining(self, user: str, erased: Sequence[tuple[Any, ...]] = ()) -> dict[str, int]:
        """Rows still tied to ``user``, by table: their traces, the bodies, text index
        entries and feedback of those and of the ``erased`` traces' keys ((id, ts[, seq])),
        and the feedback they gave. All zeros after a complete erasure."""
        t = self._t
        c, b, f = t.traces.c, t.bodies.c, t.feedback.c
        on = and_(b.id == c.id, b.ts == c.ts) if self._pg else b.seq == c.seq
        theirs = select(c.id).where(c.user == user)
        with unavailable_as_store_error("verify_erasure"), self._engine.connect() as conn:
            out = {"traces": _scalar(conn, select(func.count()).where(c.user == user))}
            joined = select(func.count()).select_from(t.bodies.join(t.traces, on))
            out["bodies"] = _scalar(conn, joined.where(c.user == user))
            fb = or_(f.user == user, f.request_id.in_(theirs))
            out["feedback"] = _scalar(conn, select(func.count()).where(fb))
            out["text_index"] = self._text_remaining(conn, user)
            for chunk in _chunks(list(erased), IN_CHUNK):
                ids = [k[0] for k in chunk]
                out["feedback"] += _scalar(
                    conn, select(func.count()).where(f.request_id.in_(ids)))
                if self._pg:
                    keys = tuple_(b.id, b.ts).in_([(k[0], k[1]) for k in chunk])
                    out["bodies"] += _scalar(conn, select(func.count()).where(keys))
                    out["text_index"] += _scalar(conn, select(func.count()).where(
                        keys, b.search_tsv.is_not(None)))
                else:
                    seqs = [int(k[2]) for k in chunk]
                    out["bodies"] += _scalar(conn, select(func.count()).where(
                        b.seq.in_(seqs)))
                    if self._has_fts():
                        out["text_index"] += _scalar(conn, select(func.count()).where(
                            DOCSIZE.c.id.in_(seqs)))
            return {k: out[k] for k in COUNTED}

    def _text_remaining(self, conn: Connection, user: str) -> int:
        c, b = self._t.traces.c, self._t.bodies.c
        if self._pg:
            joined = self._t.bodies.join(self._t.traces, and_(b.id == c.id, b.ts == c.ts))
            return _scalar(conn, select(func.count()).select_from(joined).where(
                c.user == user, b.search_tsv.is_not(None)))
        if not self._has_fts():
            return 0
        joined = DOCSIZE.join(self._t.traces, c.seq == DOCSIZE.c.id)
        return _scalar(conn, select(func.count()).select_from(joined).where(c.user == user))

    # ------------------------------------------------------------------- export
    def trace_page(self, user: str, team: str | None, cursor: str | None,
                   limit: int) -> tuple[list[str], str | None]:
        """Ids of ``user``'s traces (``team``'s only, when given), oldest first, and the
        cursor of the next page (None at the end). ValueError on a bad cursor."""
        c = self._t.traces.c
        query = select(c.id, c.ts).where(c.user == user)
        if team is not None:
            query = query.where(c.team == team)
        if cursor:
            ts, trace_id = decode_cursor(cursor)
            query = query.where(tuple_(c.ts, c.id) > tuple_(ts, trace_id))
        with unavailable_as_store_error("export_user"), self._engine.connect() as conn:
            rows = conn.execute(query.order_by(c.ts, c.id).limit(limit + 1)).all()
        nxt = encode_cursor(rows[limit - 1][1], rows[limit - 1][0]) if len(rows) > limit else None
        return [r[0] for r in rows[:limit]], nxt

    def feedback_given(self, user: str, team: str | None) -> list[dict[str, Any]]:
        """The feedback ``user`` gave, on any trace (``team``: on that team's traces)."""
        f, c = self._t.feedback.c, self._t.traces.c
        query = select(*(f[k] for k in FEEDBACK_KEYS)).where(f.user == user)
        if team is not None:
            query = query.where(f.request_id.in_(select(c.id).where(c.team == team)))
        with unavailable_as_store_error("export_user"), self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.order_by(f.ts, f.id)).mappings()]

    def keys_of(self, user: str, team: str | None) -> list[dict[str, Any]]:
        """The virtual keys issued to ``user`` (rows: the caller shows their public part)."""
        k = self._t.api_keys.c
        query = select(*(k[n] for n in API_KEY_KEYS)).where(k.user == user)
        if team is not None:
            query = query.where(k.team == team)
        with unavailable_as_store_error("export_user"), self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.order_by(k.created_at)).mappings()]

    # ------------------------------------------------------------- tombstones
    def tombstones(self, after: int) -> tuple[list[tuple[str, float]], int]:
        """Erasures recorded in the audit log after entry ``after``: (subject id, traces
        up to this ts are erased) each, and the newest entry's seq (the next ``after``)."""
        a = self._t.audit.c
        with unavailable_as_store_error("tombstones"), self._engine.connect() as conn:
            newest = conn.execute(select(func.max(a.seq)).where(a.seq > after)).scalar()
            if newest is None:
                return [], after
            rows = conn.execute(
                select(a.seq, a.target, a.detail)
                .where(a.seq > after, a.seq <= newest, a.action == TOMBSTONE)
                .order_by(a.seq)).all()
        found = []
        for _, target, detail in rows:
            before = (detail or {}).get("before") if isinstance(detail, dict) else None
            if isinstance(target, str) and isinstance(before, int | float):
                found.append((target, float(before)))
        return found, int(newest)


def _merge(total: Removed, part: Removed) -> None:
    for name in COUNTED:
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.keys += part.keys
    total.partitions |= part.partitions


def _count(result: Any) -> int:
    return max(int(result.rowcount), 0)


def _scalar(conn: Connection, query: Any) -> int:
    return int(conn.execute(query).scalar_one())


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
