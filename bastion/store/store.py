"""The trace store: traces, feedback and their aggregates over SQLite or Postgres.

Every method is synchronous and thread-safe (one Engine, one connection pool): the trace
writer calls it from its thread, the admin API through ``asyncio.to_thread``. Each call is
one transaction, and any failure to reach or use the database leaves as
:class:`StoreUnavailable` (the driver's error is its ``__cause__``).
"""

from __future__ import annotations

import contextlib
import math
import operator
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    false,
    func,
    literal,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import ARRAY, Text

from bastion.store import engine as engines
from bastion.store import rollups
from bastion.store import stats as aggregates
from bastion.store.audit import AuditRows
from bastion.store.crypto import StoreKeys
from bastion.store.datakeys import BodyKeys
from bastion.store.erase import SubjectRows
from bastion.store.errors import unavailable_as_store_error
from bastion.store.keys import KeyRows
from bastion.store.migrations import WRITE, migrate
from bastion.store.partitions import Partitions
from bastion.store.query import (
    TraceQuery,
    after,
    conditions,
    decode_cursor,
    encode_cursor,
    like_pattern,
)
from bastion.store.records import from_row, to_row
from bastion.store.reprice import reprice as reprice_traces
from bastion.store.retention import RetentionRows
from bastion.store.schema import (
    BODY_KEYS,
    FEEDBACK_KEYS,
    HEAVY_KEYS,
    JSON_KEYS,
    TRACE_KEYS,
    Tables,
    build,
)
from bastion.store.signouts import SignoutRows
from bastion.store.teams import TeamRows

MAX_LIMIT = 1000
_TEXT_ARRAY = ARRAY(Text())  # one array parameter for a page's ids (not 51 of them)
# text search: below this many index candidates, read the candidates and sort them;
# above it the term is common and the newest-first scan finds a page sooner
PREFILTER_MAX = 5000
# the same on Postgres, where the probe costs a heap read per match (~5 us) and the walk
# ~7 us per trace it passes. A term at the line costs 5 us x this + a walk of 51 / share
# traces: at 1M traces ~25 + ~70 ms at 5,000 (at 2,000: 10 + 180 ms); a 5 % term ~25 ms
# + a walk of ~1,000 traces
PG_PREFILTER_MAX = 5000
# Postgres, rare terms: candidates fetched newest first, a page's worth first, then 4x more
# each round while filters reject them
_WORD = re.compile(r"\w+")
DELETE_CHUNK = 5000
FEEDBACK_VALUES = (None, "up", "down")
class Store:
    """Open one with :func:`open_store`."""

    def __init__(self, engine: Engine, *, partition_days: int, applied: list[str],
                 keys: StoreKeys | None = None, encrypt_bodies: bool = True) -> None:
        self._engine = engine
        self.dialect: str = engine.dialect.name
        self._t: Tables = build(self.dialect)
        self._bodykeys = BodyKeys(engine, self._t, keys, encrypt_bodies)
        self._keys = KeyRows(engine, self._t.api_keys)
        self.teams = TeamRows(engine, self._t.teams)  # registered teams (``teams``)
        self._audit = AuditRows(engine, self._t.audit, self._t.audit_heads)
        self._subjects = SubjectRows(engine, self._t)
        self._retention = RetentionRows(engine, self._t)
        self._signouts = SignoutRows(engine, self._t.signouts)
        self._pg = self.dialect == "postgresql"
        self._partitions = Partitions(partition_days) if self._pg else None
        self._merged_before = -math.inf  # text pending lists merged for days before this
        self.migrations_applied = applied  # by this open (empty when already up to date)
        self.text_search = "scan"  # "fts5", "tsvector" or "scan" (LIKE / ILIKE)
        c, b = self._t.traces.c, self._t.bodies.c
        # a trace's body: same seq on SQLite, same (id, ts) on Postgres
        self._on = and_(b.id == c.id, b.ts == c.ts) if self._pg else b.seq == c.seq
        self._full = [*(c[k] for k in TRACE_KEYS), *(b[k] for k in sorted(HEAVY_KEYS)),
                      b.body_key, b.sealed]
        self._light = [c[k] for k in TRACE_KEYS]
        if not self._pg:
            self._light.append(c.seq)
        self._feedback_cols = [self._t.feedback.c[k] for k in FEEDBACK_KEYS]
        # Postgres: the statements compiled once and run by psycopg's pipelined
        # executemany (3x SQLAlchemy's multi-VALUES rendering of 500 rows x 42 columns)
        self._pg_insert_sql = [
            str(postgresql.insert(table).on_conflict_do_nothing().compile(
                dialect=engine.dialect, column_keys=list(keys)))
            for table, keys in ((self._t.traces, TRACE_KEYS),
                                (self._t.bodies, ("id", "ts", *BODY_KEYS)))
        ] if self._pg else []
        # SQLite: positional parameters straight to sqlite3's executemany, JSON by orjson
        # (SQLAlchemy's per-row parameter processing was a third of the insert's time);
        # the store gives each row its seq, so its body gets the same
        self._sqlite_pick = operator.itemgetter(*TRACE_KEYS)
        self._sqlite_json_at = [i for i, k in enumerate(TRACE_KEYS) if k in JSON_KEYS]
        self._sqlite_body_pick = operator.itemgetter(*BODY_KEYS)
        self._sqlite_body_json_at = [i for i, k in enumerate(BODY_KEYS) if k in JSON_KEYS]
        self._sqlite_insert_sql = _sqlite_insert(
            "traces", ("seq", *TRACE_KEYS), "ON CONFLICT DO NOTHING")
        self._sqlite_body_sql = _sqlite_insert("trace_bodies", ("seq", *BODY_KEYS), "")

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _prepare(self) -> None:
        """After migrations: learn the text index; on Postgres create partitions ahead."""
        with self._engine.connect() as conn:
            if self._pg:
                assert self._partitions is not None
                self._partitions.load(conn)
                conn.commit()
                self._partitions.ensure_ahead(conn)
                found = conn.execute(select(func.to_regclass("ix_trace_bodies_search")))
                self.text_search = "tsvector" if found.scalar() is not None else "scan"
            else:
                master = conn.exec_driver_sql(
                    "SELECT 1 FROM sqlite_master WHERE name = 'trace_text'"
                ).first()
                self.text_search = "fts5" if master is not None else "scan"
            self._bodykeys.open(conn)

    @property
    def audit(self) -> AuditRows:
        """The audit log's rows (``audit_log``, ``audit_heads``)."""
        return self._audit

    @property
    def keys(self) -> KeyRows:
        """Virtual keys' rows (``api_keys``)."""
        return self._keys

    @property
    def subjects(self) -> SubjectRows:
        """A user's rows, exported or erased (:mod:`bastion.store.erase`)."""
        return self._subjects

    @property
    def retention(self) -> RetentionRows:
        """Per-team retention's deletes (:mod:`bastion.store.retention`)."""
        return self._retention

    # --------------------------------------------------------- encryption at rest
    @property
    def body_keys(self) -> BodyKeys:
        """The data keys bodies are sealed under (:mod:`bastion.store.datakeys`)."""
        return self._bodykeys

    def open_body(self, trace_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """A ``trace_bodies`` row's bodies in the clear: ``input``, ``output``, ``spans``,
        ``preview_in``, ``preview_out`` (those ``row`` has, or whose sealed columns,
        ``sealed`` and ``sealed_preview``, it has, with ``body_key``), plus ``body_error``
        when it cannot be opened (never raises for a bad row)."""
        return self._bodykeys.open_body(trace_id, row)

    def reencrypt_bodies(self, limit: int = 500) -> int:
        """One batch of re-encryption (bodies under older data keys, or plaintext ones when
        bodies are encrypted); returns the rows looked at, 0 when none are left."""
        with unavailable_as_store_error("reencrypt_bodies"):
            return self._bodykeys.reencrypt(limit)

    def _write(self) -> contextlib.AbstractContextManager[Connection]:
        return self._engine.connect().execution_options(**WRITE)

    # ------------------------------------------------------------------------ health
    def ping(self) -> None:
        """Raises StoreUnavailable unless a query on the database's tables answers."""
        with unavailable_as_store_error("ping"), self._engine.connect() as conn:
            conn.execute(select(self._t.migrations.c.name).limit(1)).all()

    def close(self) -> None:
        self._engine.dispose()

    # ------------------------------------------------------------------------ traces
    def insert_traces(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Writes a batch in one transaction; a trace id already stored is skipped (so a
        replayed batch is harmless). Returns how many rows were new. A record without
        ``id`` or ``ts`` raises ValueError and writes nothing."""
        if not records:
            return 0
        rows = [to_row(r) for r in records]
        sealed_with = self._bodykeys.seal(rows)
        with unavailable_as_store_error("insert_traces"):
            if self._partitions is None:
                return self._insert(rows, sealed_with)
            self._ensure_partitions(rows)
            try:
                count = self._insert(rows, sealed_with)
            except sa_exc.IntegrityError as exc:
                if getattr(exc.orig, "sqlstate", None) != "23514":  # no partition for a row
                    raise
                with self._engine.connect() as conn:
                    self._partitions.load(conn)
                self._ensure_partitions(rows)
                count = self._insert(rows, sealed_with)
            self._merge_text_pending(rows)  # after: a batch across midnight is merged whole
            return count

    def _insert(self, rows: list[dict[str, Any]], sealed_with: int | None) -> int:
        with self._write() as conn, conn.begin():
            self._bodykeys.check(conn, sealed_with, rows)  # still the current data key
            # late traces make their closed half hours' rollups stale, in this transaction
            rollups.bump_closed(conn, self._t, [r["ts"] for r in rows], time.time())
            if self._pg:
                params = [
                    {k: Jsonb(v, engines.dumps) if k in JSON_KEYS and v is not None else v
                     for k, v in row.items()}
                    for row in rows
                ]
                result = conn.exec_driver_sql(self._pg_insert_sql[0], params)
                # the same (id, ts) conflicts in both tables: a replay skips both rows
                conn.exec_driver_sql(self._pg_insert_sql[1], params)
                return max(result.rowcount, 0)
            newest = conn.exec_driver_sql("SELECT coalesce(max(seq), 0) FROM traces")
            last = int(newest.scalar_one())
            traces, bodies = self._sqlite_params(rows, last + 1)
            inserted = max(conn.exec_driver_sql(self._sqlite_insert_sql, traces).rowcount, 0)
            if inserted < len(rows):  # some ids were stored already: bodies of the new only
                new = {r[0] for r in conn.exec_driver_sql(
                    "SELECT seq FROM traces WHERE seq > ?", (last,))}
                bodies = [body for body in bodies if body[0] in new]
            if bodies:
                conn.exec_driver_sql(self._sqlite_body_sql, bodies)
            if self.text_search == "fts5":  # the new rows' text, in one statement
                conn.exec_driver_sql(
                    "INSERT INTO trace_text(rowid, search) SELECT seq, search FROM trace_bodies "
                    "WHERE seq > ? AND search IS NOT NULL", (last,),
                )
            return inserted

    def _sqlite_params(
        self, rows: list[dict[str, Any]], first_seq: int
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """(traces rows, trace_bodies rows), positional, numbered from ``first_seq``."""
        dumps = engines.dumps
        out: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] = ([], [])
        picks = ((self._sqlite_pick, self._sqlite_json_at, out[0]),
                 (self._sqlite_body_pick, self._sqlite_body_json_at, out[1]))
        for seq, row in enumerate(rows, first_seq):
            for pick, json_at, params in picks:
                values = [seq, *pick(row)]
                for i in json_at:
                    if values[i + 1] is not None:
                        values[i + 1] = dumps(values[i + 1])
                params.append(tuple(values))
        return out

    def _merge_text_pending(self, rows: list[dict[str, Any]]) -> None:
        """Once a day a batch starts (and on the first batch): merge the text index's
        pending lists of the days before into the index (see Partitions)."""
        assert self._partitions is not None
        day = self._partitions.slot(max(row["ts"] for row in rows))
        if day > self._merged_before and self.text_search == "tsvector":
            self._merged_before = day  # tried once a day, whatever comes of it
            try:
                with self._engine.connect() as conn:
                    self._partitions.merge_text_pending(conn, day)
            except sa_exc.ProgrammingError:  # not the index's owner: searches read more
                pass

    def _ensure_partitions(self, rows: list[dict[str, Any]]) -> None:
        assert self._partitions is not None
        missing = self._partitions.missing(row["ts"] for row in rows)
        if missing:
            with self._engine.connect() as conn:
                self._partitions.ensure(conn, missing)

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """The whole record, with ``feedback``: its feedback rows, oldest first."""
        t = self._t
        b = t.bodies.c
        with unavailable_as_store_error("get_trace"), self._engine.connect() as conn:
            if self._pg:  # the row, then its body by (id, ts): one partition each
                query = select(*self._light).where(t.traces.c.id == trace_id)
                found = conn.execute(query.order_by(t.traces.c.ts.desc()).limit(1)).mappings()
                head = found.first()
                if head is None:
                    return None
                body = conn.execute(
                    select(*(b[k] for k in sorted(HEAVY_KEYS)), b.body_key, b.sealed)
                    .where(b.id == trace_id, b.ts == head["ts"])
                ).mappings().first()
                row: Mapping[str, Any] = {
                    **head, **(body or dict.fromkeys(HEAVY_KEYS))}
            else:
                query = (
                    select(*self._full)
                    .select_from(t.traces.outerjoin(t.bodies, self._on))
                    .where(t.traces.c.id == trace_id)
                )
                first = conn.execute(query.order_by(t.traces.c.ts.desc()).limit(1))
                sqlite_row = first.mappings().first()
                if sqlite_row is None:
                    return None
                row = dict(sqlite_row)
            opened = self._bodykeys.open_body(trace_id, row)
            record = from_row({**row, **opened})
            if "body_error" in opened:  # a sealed body that cannot be opened: said so
                record["body_error"] = opened["body_error"]
            f = t.feedback.c
            fb = select(*self._feedback_cols).where(f.request_id == trace_id)
            record["feedback"] = [
                _feedback_out(r) for r in conn.execute(fb.order_by(f.ts, f.id)).mappings()
            ]
            return record

    def trace_team(self, trace_id: str) -> tuple[bool, str | None]:
        """Whether a trace with this id is stored, and its team (one index probe)."""
        c = self._t.traces.c
        with unavailable_as_store_error("trace_team"), self._engine.connect() as conn:
            found = conn.execute(select(c.team).where(c.id == trace_id).limit(1)).first()
            return (True, found[0]) if found is not None else (False, None)

    def list_traces(
        self, q: TraceQuery, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of traces, newest first, and the cursor of the next page (None at the
        end). Rows leave out ``input``, ``output`` and ``spans``; they carry ``preview``
        (``{"input", "output"}``, a line each) instead. ValueError on a bad cursor."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        limit = min(limit, MAX_LIMIT)
        c = self._t.traces.c
        where = conditions(q, self._t.traces)
        top = None
        if cursor:
            where.append(after(cursor, self._t.traces))
            top = decode_cursor(cursor)[0]
        with unavailable_as_store_error("list_traces"), self._engine.connect() as conn:
            words = self._query_words(q.text) if q.text else []
            if q.text and words and self.text_search == "tsvector":
                window = Window(q.since, q.until, top)
                rows = self._pg_text_page(conn, words, where, window, limit + 1)
            else:
                if q.text:
                    where += self._text_terms(conn, q.text, words)
                query = (
                    select(*self._light)
                    .where(*where)
                    .order_by(c.ts.desc(), c.id.desc())
                    .limit(limit + 1)
                )
                rows = [dict(r) for r in conn.execute(query).mappings()]
            self._add_previews(conn, rows[:limit])
        page = [from_row(r, light=True) for r in rows[:limit]]
        more = len(rows) > limit
        return page, encode_cursor(page[-1]["ts"], page[-1]["id"]) if more else None

    @property
    def _blind(self) -> bool:
        """Text search over the blind index (bodies encrypted): exact words, hashed."""
        return self._bodykeys.encrypt and self._bodykeys.codec is not None

    def _query_words(self, text: str) -> list[str]:
        codec = self._bodykeys.codec
        if self._blind and codec is not None:
            return codec.query_tokens(text)
        return _WORD.findall(text.lower())

    def _add_previews(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """A page's previews from trace_bodies, by the page's keys (one indexed read)."""
        if not rows:
            return
        b = self._t.bodies.c
        if not self._pg:  # plain sqlite3: SQLAlchemy's expanding IN cost more than the read
            seqs = [r["seq"] for r in rows]
            sql = (
                "SELECT seq, body_key, sealed_preview, preview_in, preview_out "  # noqa: S608
                f"FROM trace_bodies WHERE seq IN ({', '.join('?' * len(seqs))})"
            )
            by_seq = {p[0]: p[1:] for p in conn.exec_driver_sql(sql, tuple(seqs))}
            for row in rows:
                self._set_previews(row, by_seq.get(row["seq"]))
            return
        stamps = [r["ts"] for r in rows]
        query = select(b.id, b.ts, b.body_key, b.sealed_preview, b.preview_in,
                       b.preview_out).where(
            b.id == any_(literal([r["id"] for r in rows], _TEXT_ARRAY)),
            b.ts >= min(stamps), b.ts <= max(stamps))
        found = {(p[0], p[1]): p[2:] for p in conn.execute(query)}
        for row in rows:
            self._set_previews(row, found.get((row["id"], row["ts"])))

    def _set_previews(self, row: dict[str, Any], stored: Sequence[Any] | None) -> None:
        """A listed row's previews from (body_key, sealed_preview, preview_in, preview_out)."""
        if stored is None:
            row["preview_in"] = row["preview_out"] = None
            return
        opened = self._bodykeys.open_body(row["id"], dict(zip(
            ("body_key", "sealed_preview", "preview_in", "preview_out"), stored, strict=True)))
        row["preview_in"], row["preview_out"] = opened["preview_in"], opened["preview_out"]

    def _text_terms(
        self, conn: Connection, term: str, words: list[str]
    ) -> list[ColumnElement[bool]]:
        """The WHERE terms of a text search on SQLite (or without a text index): every word
        of ``term`` must start a word of the trace's text. The plan is chosen by how common
        the words are: rare ones read the index's matches and sort them; common ones
        (``PREFILTER_MAX`` matches or more) walk newest first and stop at a page. Either plan
        alone is slow for the other case (seconds on a million traces)."""
        c, b = self._t.traces.c, self._t.bodies.c
        if not words or self.text_search == "scan":
            if self._blind and not words:
                return [false()]  # hashed words only: nothing to look for
            patterns = [like_pattern(w) for w in words] if self._blind else [like_pattern(term)]
            if self._pg:
                found = select(b.id, b.ts).where(
                    *(b.search.ilike(p, escape="\\") for p in patterns))
                return [tuple_(c.id, c.ts).in_(found)]
            return [c.seq.in_(select(b.seq).where(
                *(b.search.like(p, escape="\\") for p in patterns)))]
        fts = self._t.trace_text
        assert fts is not None
        expression = " ".join(f'"{w}"' if self._blind else f'"{w}"*' for w in words)
        candidates = select(fts.c.rowid).where(
            literal_column("trace_text").op("MATCH")(bindparam("fts_query", expression))
        )
        # The probe counts the traces holding the longest word exactly: an exact word is
        # read lazily, so the count stops at PREFILTER_MAX (a prefix or an AND is merged
        # whole first, costing what the search costs)
        longest = max(words, key=len)
        probe = select(fts.c.rowid).where(
            literal_column("trace_text").op("MATCH")(bindparam("fts_probe", f'"{longest}"'))
        ).limit(PREFILTER_MAX)
        if _count(conn, probe) < PREFILTER_MAX:
            return [c.seq.in_(candidates)]  # rare: read the matches, sort them
        # common: walk traces newest first, each checked against the matches ("+" keeps
        # SQLite from driving the query by the match list)
        return [literal_column("+traces.seq").in_(candidates)]

    def _pg_text_page(
        self, conn: Connection, words: list[str], where: list[ColumnElement[bool]],
        window: Window, n: int,
    ) -> list[dict[str, Any]]:
        """Postgres text search: up to ``n`` traces, newest first, whose text has every
        word (as a word prefix) and that pass ``where``.

        A probe reads the GIN index of ``trace_bodies.search_tsv`` (bitmap scans only, so a
        term with no match costs index lookups and nothing else) for up to
        ``PG_PREFILTER_MAX`` matches in the window. Fewer: they are all the matches; the
        newest are fetched by key, a page's worth at a time. More: the term is common, and
        each partition's range, newest first, is walked in (ts, id) order checking each
        trace's stored vector, until the page is full."""
        b = self._t.bodies.c
        query = func.to_tsquery(
            literal_column("'bastion_text'::regconfig"),
            " & ".join(w if self._blind else f"{w}:*" for w in words),
        )
        found = b.search_tsv.op("@@")(query)
        _planner(conn, _BITMAP_ONLY)
        probe = select(b.id, b.ts).where(found, *window.terms(b.ts)).limit(PG_PREFILTER_MAX)
        matches = [(m[0], m[1]) for m in conn.execute(probe).all()]
        if not matches:
            return []
        if len(matches) < PG_PREFILTER_MAX:
            _planner(conn, _DEFAULTS)
            return self._pg_fetch(conn, matches, where, n)
        _planner(conn, _WALK)
        out: list[dict[str, Any]] = []
        c = self._t.traces.c
        for lo, hi in window.clip(self._pg_ranges()):
            span = [*Window(lo, hi, None).terms(c.ts)]
            has_text = exists().where(
                b.id == c.id, b.ts == c.ts, *Window(lo, hi, None).terms(b.ts), found)
            page = (
                select(*self._light)
                .where(*where, *span, has_text)
                .order_by(c.ts.desc(), c.id.desc())
                .limit(n - len(out))
            )
            out += [dict(r) for r in conn.execute(page).mappings()]
            if len(out) >= n:
                break
        return out

    def _pg_ranges(self) -> list[tuple[float, float]]:
        assert self._partitions is not None
        return self._partitions.ranges()

    def _pg_fetch(
        self, conn: Connection, matches: list[tuple[str, float]],
        where: list[ColumnElement[bool]], n: int,
    ) -> list[dict[str, Any]]:
        """The first ``n`` traces, newest first, among the (id, ts) ``matches`` that pass
        ``where``: fetched by key in rounds, newest matches first (a round never splits
        matches of one ts, so SQL's order within a ts holds across rounds)."""
        c = self._t.traces.c
        ordered = sorted(matches, key=operator.itemgetter(1), reverse=True)
        out: list[dict[str, Any]] = []
        start, size = 0, n
        while start < len(ordered) and len(out) < n:
            end = min(len(ordered), start + size)
            while end < len(ordered) and ordered[end][1] == ordered[end - 1][1]:
                end += 1
            chunk = ordered[start:end]
            keys = set(chunk)
            query = (
                select(*self._light)
                .where(*where, c.id == any_(literal([k[0] for k in chunk], _TEXT_ARRAY)),
                       c.ts >= chunk[-1][1], c.ts <= chunk[0][1])
                .order_by(c.ts.desc(), c.id.desc())
            )
            out += [dict(r) for r in conn.execute(query).mappings() if (r["id"], r["ts"]) in keys]
            start, size = end, size * 4
        return out[:n]

    def count_traces(self) -> int:
        with unavailable_as_store_error("count_traces"), self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self._t.traces)).scalar_one())

    def delete_before(self, ts: float) -> int:
        """Retention: removes traces (and feedback) older than ``ts``; returns how many
        traces. Postgres drops whole partitions that end by ``ts`` and deletes the rest;
        SQLite deletes in chunks, one transaction each, so writers get turns."""
        t = self._t
        with unavailable_as_store_error("delete_before"):
            if self._partitions is not None:
                with self._write() as conn, conn.begin():
                    removed = self._partitions.drop_before(conn, ts)
                    removed += conn.execute(delete(t.traces).where(t.traces.c.ts < ts)).rowcount
                    conn.execute(delete(t.bodies).where(t.bodies.c.ts < ts))
                    conn.execute(delete(t.feedback).where(t.feedback.c.ts < ts))
                    rollups.drop_before(conn, t, ts)
                return removed
            removed = 0  # each trace's body goes with it (trigger), its text index entry too
            old = select(t.traces.c.seq).where(t.traces.c.ts < ts).limit(DELETE_CHUNK)
            while True:
                with self._write() as conn, conn.begin():
                    count = conn.execute(delete(t.traces).where(t.traces.c.seq.in_(old))).rowcount
                if count <= 0:
                    break
                removed += count
            with self._write() as conn, conn.begin():
                conn.execute(delete(t.feedback).where(t.feedback.c.ts < ts))
                rollups.drop_before(conn, t, ts)
            return removed

    # ------------------------------------------------------------------------- stats
    def stats(
        self, since: float, until: float, bucket_s: int | None, group_by: Sequence[str],
        team: str | None = None, filters: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Requests, errors, availability, QPS, latency and TTFT percentiles, tokens,
        tokens/s, cost and feedback over ``[since, until)``: ``totals``, ``groups`` (when
        ``group_by``: model, deployment, key_id, team, user) and ``buckets`` (when
        ``bucket_s``; each group then has its own); ``team``: that team's traces only;
        ``filters``: equal model, deployment, key_id, user. See :mod:`bastion.store.stats`."""
        with unavailable_as_store_error("stats"), self._engine.connect() as conn:
            return aggregates.compute(conn, self._t, since, until, bucket_s, group_by, team,
                                      filters)

    def values(self, dimension: str, since: float, until: float, team: str | None = None,
               limit: int = 200) -> list[dict[str, Any]]:
        """``[{"value", "requests"}]``: what ``dimension`` took in the window, most first."""
        with unavailable_as_store_error("values"), self._engine.connect() as conn:
            return aggregates.values(conn, self._t, dimension, since, until, team, limit)

    def roll_up(self, now: float | None = None, budget_s: float = 0.5) -> int:
        """Rolls the closed half hours whose rollups are missing or stale, for at most
        ``budget_s``; returns how many (0: all are current). See
        :mod:`bastion.store.rollups`."""
        with unavailable_as_store_error("roll_up"):
            return rollups.roll_up(self._engine, self._t, WRITE, now=now, budget_s=budget_s)

    # ---------------------------------------------------------------------- feedback
    def reprice(self, since: float, until: float,
                cost: Callable[[Mapping[str, Any]], float | None], version: str,
                chunk: int = 1000) -> int:
        """Recomputes the stored cost of the traces in ``[since, until)``
        (:func:`bastion.store.reprice.reprice`); returns how many."""
        with unavailable_as_store_error("reprice"):
            return reprice_traces(self._engine, self._t, since, until, cost, version, chunk)

    @property
    def signouts(self) -> SignoutRows:
        """Dashboard sessions signed out (:mod:`bastion.store.signouts`)."""
        return self._signouts

    def upsert_feedback(self, fb: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Stores feedback keyed by (request_id, key): a repeat keeps one row, a change
        updates it. The trace need not be stored yet. Returns (row, created)."""
        row = _feedback_row(fb)
        f = self._t.feedback
        dialect_insert = postgresql.insert if self._pg else sqlite.insert
        add = (
            dialect_insert(f)
            .values(row)
            .on_conflict_do_nothing(index_elements=["request_id", "key"])
            .returning(*self._feedback_cols)
        )
        change = (
            update(f)
            .where(f.c.request_id == row["request_id"], f.c.key == row["key"])
            .values({k: v for k, v in row.items() if k not in ("request_id", "key")})
            .returning(*self._feedback_cols)
        )
        with unavailable_as_store_error("upsert_feedback"), self._write() as conn, conn.begin():
            created = conn.execute(add).mappings().first()
            if created is not None:
                return _feedback_out(created), True
            return _feedback_out(conn.execute(change).mappings().one()), False


# Postgres planner settings for one transaction (set_config(..., true) = SET LOCAL) of a
# text search: the probe may only read the text index; the walk only walks (ts, id) order
# and looks bodies up by key; the fetch by key gets the planner's usual choices
_SCANS = ("seqscan", "indexscan", "indexonlyscan", "bitmapscan", "hashjoin", "mergejoin", "sort")
_DEFAULTS = dict.fromkeys(_SCANS, "on")
_BITMAP_ONLY = {**_DEFAULTS, "seqscan": "off", "indexscan": "off", "indexonlyscan": "off"}
_WALK = {**_DEFAULTS, **dict.fromkeys(
    ("bitmapscan", "seqscan", "hashjoin", "mergejoin", "sort"), "off")}


@dataclass(frozen=True, slots=True)
class Window:
    """The time bounds of a search: ``since <= ts < until`` and ``ts <= upto`` (a cursor's
    ts; the cursor's own term orders ties). None is no bound."""

    since: float | None
    until: float | None
    upto: float | None

    def terms(self, ts: ColumnElement[float]) -> list[ColumnElement[bool]]:
        out = []
        if self.since is not None and self.since != -math.inf:
            out.append(ts >= self.since)
        if self.until is not None and self.until != math.inf:
            out.append(ts < self.until)
        if self.upto is not None:
            out.append(ts <= self.upto)
        return out

    def clip(self, ranges: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """The ``[lo, hi)`` ranges that meet the window, newest first."""
        since = -math.inf if self.since is None else self.since
        until = math.inf if self.until is None else self.until
        upto = math.inf if self.upto is None else self.upto
        return [(lo, hi) for lo, hi in reversed(ranges)
                if hi > since and lo < until and lo <= upto]


def _planner(conn: Connection, settings: Mapping[str, str]) -> None:
    """Sets planner switches for the rest of the transaction, in one statement."""
    calls = ", ".join(f"set_config('enable_{k}', '{v}', true)" for k, v in settings.items())
    conn.execute(text(f"SELECT {calls}"))


def _sqlite_insert(table: str, keys: Sequence[str], conflict: str) -> str:
    columns = ", ".join('"' + k + '"' for k in keys)
    marks = ", ".join("?" * len(keys))
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}) {conflict}"  # noqa: S608 - our names


def _count(conn: Connection, query: Select[Any]) -> int:
    return int(conn.execute(select(func.count()).select_from(query.subquery())).scalar_one())


def _feedback_out(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = dict(row)
    if out["score"] is not None:  # SQLite's RETURNING gives 1 for a stored 1.0
        out["score"] = float(out["score"])
    return out


def _feedback_row(fb: Mapping[str, Any]) -> dict[str, Any]:
    request_id = fb.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise ValueError("feedback needs a string 'request_id'")
    if fb.get("value") not in FEEDBACK_VALUES:
        raise ValueError("feedback 'value' is 'up', 'down' or null")
    score = fb.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise ValueError("feedback 'score' is a number or null")
    ts = fb.get("ts")
    return {
        "request_id": request_id,
        "key": fb.get("key") or "default",
        "value": fb.get("value"),
        "score": None if score is None else float(score),
        "comment": fb.get("comment"),
        "user": fb.get("user"),
        "ts": time.time() if ts is None else float(ts),
    }


def open_store(
    url: str | None,
    home: str | Path,
    *,
    pool_size: int = 5,
    partition_days: int = 1,
    busy_timeout_ms: int = 5000,
    keys: StoreKeys | None = None,
    encrypt_bodies: bool = True,
) -> Store:
    """Opens (creating if needed) and migrates the store.

    ``url`` None is SQLite at ``<home>/bastion.db``; otherwise ``sqlite:///path`` or
    ``postgresql+psycopg://user@host/db`` (``postgresql://`` works too). ``pool_size``
    connections per process; ``partition_days`` sizes Postgres trace partitions;
    ``busy_timeout_ms`` is how long SQLite waits for another writer's lock.
    ``keys``: the store key (from the deployment secret) that opens the data keys; with it
    and ``encrypt_bodies``, bodies are sealed (AES-256-GCM) and text search uses the blind
    index (:mod:`bastion.store.crypto`); without it bodies are written in the clear and
    sealed ones read as unreadable.
    Raises StoreUnavailable when the database cannot be reached (DataKeyError, one, when
    ``keys`` do not open the store's data keys), ValueError for a bad URL.
    """
    if pool_size < 1 or partition_days < 1:
        raise ValueError("pool_size and partition_days must be at least 1")
    resolved = engines.resolve_url(url, home)
    engine = engines.create(resolved, pool_size=pool_size, busy_timeout_ms=busy_timeout_ms)
    try:
        with unavailable_as_store_error(f"opening {resolved.render_as_string()}"):
            store = Store(engine, partition_days=partition_days, applied=migrate(engine),
                          keys=keys, encrypt_bodies=encrypt_bodies)
            store._prepare()
    except BaseException:
        engine.dispose()
        raise
    return store
