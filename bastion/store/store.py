"""The trace store: traces, feedback and their aggregates over SQLite or Postgres.

Every method is synchronous and thread-safe (one Engine, one connection pool): the trace
writer calls it from its thread, the admin API through ``asyncio.to_thread``. Each call is
one transaction, and any failure to reach or use the database leaves as
:class:`StoreUnavailable` (the driver's error is its ``__cause__``).
"""

from __future__ import annotations

import contextlib
import operator
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Insert,
    Select,
    bindparam,
    delete,
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

from bastion.store import engine as engines
from bastion.store import stats as aggregates
from bastion.store.errors import StoreUnavailable
from bastion.store.migrations import WRITE, migrate
from bastion.store.partitions import Partitions
from bastion.store.query import (
    TraceQuery,
    after,
    conditions,
    encode_cursor,
    like_pattern,
)
from bastion.store.records import from_row, to_row
from bastion.store.schema import (
    DERIVED_KEYS,
    FEEDBACK_KEYS,
    HEAVY_KEYS,
    JSON_KEYS,
    RECORD_KEYS,
    Tables,
    build,
)

MAX_LIMIT = 1000
# SQLite text search: below this many index candidates, read the candidates and sort them;
# above it the term is common and the newest-first scan finds a page sooner
PREFILTER_MAX = 5000
_WORD = re.compile(r"\w+")
DELETE_CHUNK = 5000
FEEDBACK_VALUES = (None, "up", "down")
UNAVAILABLE: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,  # connection refused or lost, database locked, disk full ...
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection in time
    sa_exc.DisconnectionError,
    sqlite3.OperationalError,  # raised by the connection setup, outside SQLAlchemy's wrapping
)


@contextlib.contextmanager
def unavailable_as_store_error(what: str) -> Iterator[None]:
    try:
        yield
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"{what}: {_reason(exc)}") from exc
    except sa_exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        raise StoreUnavailable(f"{what}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split())[:300] or type(orig).__name__


class Store:
    """Open one with :func:`open_store`."""

    def __init__(self, engine: Engine, *, partition_days: int, applied: list[str]) -> None:
        self._engine = engine
        self.dialect: str = engine.dialect.name
        self._t: Tables = build(self.dialect)
        self._pg = self.dialect == "postgresql"
        self._partitions = Partitions(partition_days) if self._pg else None
        self.migrations_applied = applied  # by this open (empty when already up to date)
        self.text_search = "scan"  # "fts5", "tsvector" or "scan" (LIKE / ILIKE)
        c = self._t.traces.c
        self._full = [c[k] for k in RECORD_KEYS]
        self._light = [c[k] for k in RECORD_KEYS if k not in HEAVY_KEYS]
        self._light += [c.preview_in, c.preview_out]
        self._feedback_cols = [self._t.feedback.c[k] for k in FEEDBACK_KEYS]
        dialect_insert = postgresql.insert if self._pg else sqlite.insert
        self._insert_traces: Insert = dialect_insert(self._t.traces).on_conflict_do_nothing()
        # Postgres: the same statement, compiled once and run by psycopg's pipelined
        # executemany (3x SQLAlchemy's multi-VALUES rendering of 500 rows x 42 columns)
        self._pg_insert_sql = str(self._insert_traces.compile(
            dialect=engine.dialect, column_keys=[*RECORD_KEYS, *DERIVED_KEYS]
        ))
        # SQLite: positional parameters straight to sqlite3's executemany, JSON by orjson
        # (SQLAlchemy's per-row parameter processing was a third of the insert's time)
        self._sqlite_keys = (*RECORD_KEYS, *DERIVED_KEYS)
        self._sqlite_pick = operator.itemgetter(*self._sqlite_keys)
        self._sqlite_json_at = [i for i, k in enumerate(self._sqlite_keys) if k in JSON_KEYS]
        columns = ", ".join('"' + k + '"' for k in self._sqlite_keys)
        marks = ", ".join("?" * len(self._sqlite_keys))
        self._sqlite_insert_sql = (
            f"INSERT INTO traces ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"  # noqa: S608 - our column names
        )

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
                found = conn.execute(select(func.to_regclass("ix_traces_search_fts")))
                self.text_search = "tsvector" if found.scalar() is not None else "scan"
            else:
                master = conn.exec_driver_sql(
                    "SELECT 1 FROM sqlite_master WHERE name = 'trace_text'"
                ).first()
                self.text_search = "fts5" if master is not None else "scan"

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
        with unavailable_as_store_error("insert_traces"):
            if self._partitions is None:
                return self._insert(rows)
            self._ensure_partitions(rows)
            try:
                return self._insert(rows)
            except sa_exc.IntegrityError as exc:
                if getattr(exc.orig, "sqlstate", None) != "23514":  # no partition for a row
                    raise
            with self._engine.connect() as conn:
                self._partitions.load(conn)
            self._ensure_partitions(rows)
            return self._insert(rows)

    def _insert(self, rows: list[dict[str, Any]]) -> int:
        with self._write() as conn, conn.begin():
            if self._pg:
                params = [
                    {k: Jsonb(v, engines.dumps) if k in JSON_KEYS and v is not None else v
                     for k, v in row.items()}
                    for row in rows
                ]
                result = conn.exec_driver_sql(self._pg_insert_sql, params)
            else:
                last = conn.exec_driver_sql("SELECT coalesce(max(seq), 0) FROM traces").scalar()
                result = conn.exec_driver_sql(self._sqlite_insert_sql, self._sqlite_params(rows))
                if self.text_search == "fts5":  # the new rows' text, in one statement
                    conn.exec_driver_sql(
                        "INSERT INTO trace_text(rowid, search) SELECT seq, search FROM traces "
                        "WHERE seq > ? AND search IS NOT NULL", (last,),
                    )
            return max(result.rowcount, 0)

    def _sqlite_params(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        dumps, pick, json_at = engines.dumps, self._sqlite_pick, self._sqlite_json_at
        params = []
        for row in rows:
            values = list(pick(row))
            for i in json_at:
                if values[i] is not None:
                    values[i] = dumps(values[i])
            params.append(tuple(values))
        return params

    def _ensure_partitions(self, rows: list[dict[str, Any]]) -> None:
        assert self._partitions is not None
        missing = self._partitions.missing(row["ts"] for row in rows)
        if missing:
            with self._engine.connect() as conn:
                self._partitions.ensure(conn, missing)

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """The whole record, with ``feedback``: its feedback rows, oldest first."""
        t = self._t
        with unavailable_as_store_error("get_trace"), self._engine.connect() as conn:
            query = select(*self._full).where(t.traces.c.id == trace_id)
            row = conn.execute(query.order_by(t.traces.c.ts.desc()).limit(1)).mappings().first()
            if row is None:
                return None
            record = from_row(row)
            f = t.feedback.c
            fb = select(*self._feedback_cols).where(f.request_id == trace_id)
            record["feedback"] = [
                _feedback_out(r) for r in conn.execute(fb.order_by(f.ts, f.id)).mappings()
            ]
            return record

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
        if cursor:
            where.append(after(cursor, self._t.traces))
        with unavailable_as_store_error("list_traces"), self._engine.connect() as conn:
            if q.text:
                where += self._text_terms(conn, q.text, where)
            query = (
                select(*self._light)
                .where(*where)
                .order_by(c.ts.desc(), c.id.desc())
                .limit(limit + 1)
            )
            rows = conn.execute(query).mappings().all()
        page = [from_row(r, light=True) for r in rows[:limit]]
        more = len(rows) > limit
        return page, encode_cursor(page[-1]["ts"], page[-1]["id"]) if more else None

    def _text_terms(
        self, conn: Connection, term: str, where: list[ColumnElement[bool]]
    ) -> list[ColumnElement[bool]]:
        """The WHERE terms of a text search: every word of ``term`` must start a word of
        the trace's text (full-text index). On Postgres the plan is chosen by how common
        the words are: rare ones read the index's matches and sort them; common ones
        (``PREFILTER_MAX`` matches or more) scan newest first and stop at a page. Either
        plan alone is slow for the other case (seconds on a million traces)."""
        c = self._t.traces.c
        words = _WORD.findall(term.lower())
        if not words or self.text_search == "scan":
            match = c.search.ilike if self._pg else c.search.like
            return [match(like_pattern(term), escape="\\")]
        if self._pg:
            config: ColumnElement[Any] = literal_column("'bastion_text'")
            vector = func.to_tsvector(config, func.coalesce(c.search, ""))
            query = func.to_tsquery(config, " & ".join(f"{w}:*" for w in words))
            found = vector.op("@@")(query)
            _planner(conn, _BITMAP_ONLY)  # the probe may only use the text index
            probe = select(literal(1)).where(*where, found).limit(PREFILTER_MAX)
            if _count(conn, probe) >= PREFILTER_MAX:
                _planner(conn, _ORDERED_SCAN)
            return [found]
        fts = self._t.trace_text
        assert fts is not None
        expression = " ".join(f'"{w}"*' for w in words)
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
                    conn.execute(delete(t.feedback).where(t.feedback.c.ts < ts))
                return removed
            removed = 0
            old = select(t.traces.c.seq).where(t.traces.c.ts < ts).limit(DELETE_CHUNK)
            while True:
                with self._write() as conn, conn.begin():
                    count = conn.execute(delete(t.traces).where(t.traces.c.seq.in_(old))).rowcount
                if count <= 0:
                    break
                removed += count
            with self._write() as conn, conn.begin():
                conn.execute(delete(t.feedback).where(t.feedback.c.ts < ts))
            return removed

    # ------------------------------------------------------------------------- stats
    def stats(
        self, since: float, until: float, bucket_s: int | None, group_by: Sequence[str]
    ) -> dict[str, Any]:
        """Requests, errors, availability, QPS, latency and TTFT percentiles, tokens,
        tokens/s, cost and feedback over ``[since, until)``: ``totals``, ``groups`` (when
        ``group_by``: model, deployment, key_id, team, user) and ``buckets`` (when
        ``bucket_s``; each group then has its own). See :mod:`bastion.store.stats`."""
        with unavailable_as_store_error("stats"), self._engine.connect() as conn:
            return aggregates.compute(conn, self._t, since, until, bucket_s, group_by)

    # ---------------------------------------------------------------------- feedback
    def reprice(
        self,
        since: float,
        until: float,
        cost: Callable[[Mapping[str, Any]], float | None],
        version: str,
        chunk: int = 1000,
    ) -> int:
        """Recomputes the cost of the traces in ``[since, until)``: ``cost(row)`` gets
        ``deployment``, ``input_tokens``, ``output_tokens``, ``cached_tokens`` and
        ``latency_ms``; the trace's ``metadata.price_version`` becomes ``version``.
        Returns how many traces were repriced (in transactions of ``chunk``)."""
        c = self._t.traces.c
        columns = (c.id, c.ts, c.deployment, c.input_tokens, c.output_tokens,
                   c.cached_tokens, c.latency_ms, c.metadata)
        done = 0
        after: tuple[float, str] = (since, "")
        with unavailable_as_store_error("reprice"):
            while True:
                page = (
                    select(*columns)
                    .where(c.ts < until, tuple_(c.ts, c.id) > tuple_(*after))
                    .order_by(c.ts, c.id)
                    .limit(chunk)
                )
                with self._write() as conn, conn.begin():
                    rows = conn.execute(page).mappings().all()
                    for row in rows:
                        metadata = dict(row["metadata"] or {})
                        metadata["price_version"] = version
                        conn.execute(
                            update(self._t.traces)
                            .where(c.id == row["id"], c.ts == row["ts"])
                            .values(cost=cost({str(k): v for k, v in row.items()}),
                                    metadata=metadata)
                        )
                if not rows:
                    return done
                done += len(rows)
                after = (rows[-1]["ts"], rows[-1]["id"])

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


# Postgres planner settings for one transaction (SET LOCAL) of a text search
_BITMAP_ONLY = ("enable_seqscan = off", "enable_indexscan = off", "enable_indexonlyscan = off")
_ORDERED_SCAN = ("enable_indexscan = on", "enable_indexonlyscan = on", "enable_bitmapscan = off")


def _planner(conn: Connection, settings: tuple[str, ...]) -> None:
    for setting in settings:
        conn.execute(text(f"SET LOCAL {setting}"))


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
) -> Store:
    """Opens (creating if needed) and migrates the store.

    ``url`` None is SQLite at ``<home>/bastion.db``; otherwise ``sqlite:///path`` or
    ``postgresql+psycopg://user@host/db`` (``postgresql://`` works too). ``pool_size``
    connections per process; ``partition_days`` sizes Postgres trace partitions;
    ``busy_timeout_ms`` is how long SQLite waits for another writer's lock.
    Raises StoreUnavailable when the database cannot be reached, ValueError for a bad URL.
    """
    if pool_size < 1 or partition_days < 1:
        raise ValueError("pool_size and partition_days must be at least 1")
    resolved = engines.resolve_url(url, home)
    engine = engines.create(resolved, pool_size=pool_size, busy_timeout_ms=busy_timeout_ms)
    try:
        with unavailable_as_store_error(f"opening {resolved.render_as_string()}"):
            store = Store(engine, partition_days=partition_days, applied=migrate(engine))
            store._prepare()
    except BaseException:
        engine.dispose()
        raise
    return store
