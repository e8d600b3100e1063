"""Ordered, named migrations, recorded in the database and applied when the store opens.

Each migration is a function of one connection, run inside the runner's transaction; the
runner records its name in ``bastion_migrations`` in that same transaction, so a migration
is applied whole or not at all. A migration is frozen once released: it spells out the
columns and indexes it creates instead of importing ``schema.py`` (which describes the
latest state), and a change of schema is a new migration appended to ``MIGRATIONS``.

Several worker processes may open the store at once. The runner takes one lock before it
reads what is applied: ``pg_advisory_xact_lock`` on Postgres, ``BEGIN IMMEDIATE`` (the
database's write lock) on SQLite. The second process waits, then finds nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import OperationalError, ProgrammingError

from bastion.store.schema import json_type, migrations_table

# pg_advisory_xact_lock keys: one for migrations, one for partition DDL ("bastion\0m", "\0p")
MIGRATION_LOCK = 0x62617374696F6E6D
PARTITION_LOCK = 0x62617374696F6E70
WRITE = {"bastion_write": True}  # execution option: SQLite opens the transaction IMMEDIATE


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    apply: Callable[[Connection], None]


# ------------------------------------------------------------------------- m001_initial
_J = "json"
_M001_TRACE_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("endpoint", Text), ("operation", Text), ("model", Text), ("deployment", Text),
    ("provider", Text), ("model_version", Text), ("key_id", Text), ("team", Text),
    ("user", Text), ("session", Text), ("tenant", Text), ("priority", Integer),
    ("stream", Boolean), ("status", Integer), ("error", Text), ("finish_reason", Text),
    ("input_tokens", Integer), ("output_tokens", Integer), ("cached_tokens", Integer),
    ("cost", Double), ("latency_ms", Double), ("ttft_ms", Double), ("tpot_ms", Double),
    ("overhead_ms", Double), ("queue_ms", Double), ("attempts", Integer),
    ("fallback", Boolean), ("content_mode", Text), ("params", _J), ("input", _J),
    ("output", _J), ("guards", _J), ("guard_action", Text), ("spans", _J),
    ("metadata", _J), ("trace_id", Text), ("span_id", Text),
    ("search", Text), ("preview_in", Text), ("preview_out", Text),
)
# filters that get an index (column, ts, id): equality plus the newest-first keyset order
_M001_FILTER_INDEXES = ("model", "deployment", "key_id", "team", "user", "session", "status")


def m001_initial(conn: Connection) -> None:
    """traces (partitioned by ts on Postgres, with a DEFAULT partition) and feedback."""
    pg = conn.dialect.name == "postgresql"
    md = MetaData()
    keys: list[Column[Any]] = []
    if not pg:
        keys.append(Column("seq", Integer, primary_key=True, autoincrement=True))
    keys.append(Column("id", String, nullable=False, primary_key=pg, unique=not pg))
    keys.append(Column("ts", Double, nullable=False, primary_key=pg))
    rest = [Column(n, json_type() if t == _J else t) for n, t in _M001_TRACE_COLUMNS]
    partition_by = "RANGE (ts)" if pg else None
    traces = Table("traces", md, *keys, *rest, postgresql_partition_by=partition_by)
    c = traces.c
    Index("ix_traces_ts_id", c.ts.desc(), c.id.desc())
    if pg:
        Index("ix_traces_id", c.id)
    for name in _M001_FILTER_INDEXES:
        Index(f"ix_traces_{name}", c[name], c.ts, c.id)
    Index(
        "ix_traces_guard_action", c.guard_action, c.ts, c.id,
        sqlite_where=c.guard_action.is_not(None), postgresql_where=c.guard_action.is_not(None),
    )
    feedback = Table(
        "feedback",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("request_id", String, nullable=False),
        Column("key", String, nullable=False),
        Column("value", String),
        Column("score", Double),
        Column("comment", Text),
        Column("user", String),
        Column("ts", Double, nullable=False),
        UniqueConstraint("request_id", "key", name="uq_feedback_request_key"),
    )
    Index("ix_feedback_ts", feedback.c.ts)
    md.create_all(conn)
    if pg:  # rows no partition covers land here; the store creates partitions ahead
        conn.execute(text("CREATE TABLE traces_default PARTITION OF traces DEFAULT"))


# --------------------------------------------------------------------- m002_text_search
def m002_text_search(conn: Connection) -> None:
    """A full-text index over ``traces.search``, by words (case- and accent-insensitive;
    a query's words match words that start with them): SQLite FTS5 with the unicode61
    tokenizer (external content: the index only, rowid = traces.seq, kept by triggers),
    Postgres a GIN index on ``to_tsvector('simple', search)``. Words, not trigrams: a
    trigram index cost 80 % of every insert (1,768 against 8,701 traces/s into SQLite,
    docs/benchmarks.md); words cost a fraction of that. Where FTS5 is missing, text search
    scans with LIKE."""
    if conn.dialect.name == "postgresql":
        _pg_text_config(conn)
        conn.execute(text(
            "CREATE INDEX ix_traces_search_fts ON traces "
            "USING gin (to_tsvector('bastion_text', coalesce(search, '')))"
        ))
    else:
        _sqlite_fts(conn)


def _pg_text_config(conn: Connection) -> None:
    """The ``bastion_text`` search configuration: words as they are (``simple``), accents
    removed when the unaccent extension can be had (contrib; else accents count)."""
    conn.execute(text("CREATE TEXT SEARCH CONFIGURATION bastion_text (COPY = simple)"))
    try:
        with conn.begin_nested():
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS unaccent"))
            conn.execute(text(
                "ALTER TEXT SEARCH CONFIGURATION bastion_text ALTER MAPPING "
                "FOR hword, hword_part, word WITH unaccent, simple"
            ))
    except (ProgrammingError, OperationalError):  # not installed, or not allowed
        return


def _sqlite_fts(conn: Connection) -> None:
    try:
        with conn.begin_nested():
            conn.execute(text(
                "CREATE VIRTUAL TABLE trace_text USING fts5(search, content='traces', "
                "content_rowid='seq', tokenize='unicode61 remove_diacritics 2', "
                "detail='none')"
            ))
    except OperationalError:  # no FTS5 in this SQLite: LIKE scans
        return
    # No AFTER INSERT trigger: the store indexes each inserted batch with one INSERT ...
    # SELECT (17 us a trace here, against 135 us through a per-row trigger).
    conn.execute(text(
        "CREATE TRIGGER traces_text_ad AFTER DELETE ON traces WHEN old.search IS NOT NULL "
        "BEGIN INSERT INTO trace_text(trace_text, rowid, search) "
        "VALUES ('delete', old.seq, old.search); END"
    ))
    conn.execute(text(
        "CREATE TRIGGER traces_text_au AFTER UPDATE OF search ON traces BEGIN "
        "INSERT INTO trace_text(trace_text, rowid, search) "
        "SELECT 'delete', old.seq, old.search WHERE old.search IS NOT NULL; "
        "INSERT INTO trace_text(rowid, search) "
        "SELECT new.seq, new.search WHERE new.search IS NOT NULL; END"
    ))
    conn.execute(text("INSERT INTO trace_text(trace_text) VALUES ('rebuild')"))


# ------------------------------------------------------------------- m003_trace_bodies
_M003_MOVED: tuple[tuple[str, Any], ...] = (
    ("preview_in", Text), ("preview_out", Text), ("search", Text),
    ("input", _J), ("output", _J), ("spans", _J),
)


def m003_trace_bodies(conn: Connection) -> None:
    """The large columns move out of ``traces`` into ``trace_bodies``, one row per trace
    (SQLite: keyed by ``seq``; Postgres: by ``(id, ts)``, partitioned like ``traces``, the
    partitions made and dropped together). Every existing row is moved and ``traces`` is
    rewritten without them: a stats scan read every body (24 h of 1M traces: 414 ms on
    SQLite, one 3 KB row a page). The text index follows ``search``: SQLite's FTS5 table is
    rebuilt over ``trace_bodies``; Postgres gets a stored, stripped tsvector column with the
    GIN index on it (a newest-first walk then checks a stored vector, not a to_tsvector of
    each row it passes). A rewrite of every trace: minutes at a million."""
    if conn.dialect.name == "postgresql":
        _m003_postgres(conn)
    else:
        _m003_sqlite(conn)


def _quoted(names: Any) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _m003_sqlite(conn: Connection) -> None:
    moved = [n for n, _ in _M003_MOVED]
    fts = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE name = 'trace_text'"
    ).first() is not None
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS traces_text_ad")
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS traces_text_au")
    if fts:
        conn.exec_driver_sql("DROP TABLE trace_text")
    md = MetaData()
    bodies = Table(
        "trace_bodies", md, Column("seq", Integer, primary_key=True, autoincrement=False),
        *(Column(n, json_type() if t == _J else t) for n, t in _M003_MOVED),
    )
    bodies.create(conn)
    conn.exec_driver_sql(
        f"INSERT INTO trace_bodies (seq, {_quoted(moved)}) "  # noqa: S608 - constant names
        f"SELECT seq, {_quoted(moved)} FROM traces"
    )
    # one copy into a new table (six DROP COLUMNs would rewrite every row six times)
    kept = [(n, t) for n, t in _M001_TRACE_COLUMNS if n not in moved]

    def traces_table(name: str) -> Table:
        return Table(
            name, MetaData(),
            Column("seq", Integer, primary_key=True, autoincrement=True),
            Column("id", String, nullable=False, unique=True),
            Column("ts", Double, nullable=False),
            *(Column(n, json_type() if t == _J else t) for n, t in kept),
        )

    traces_table("traces_m003").create(conn)
    columns = _quoted(["seq", "id", "ts", *(n for n, _ in kept)])
    conn.exec_driver_sql(
        f"INSERT INTO traces_m003 ({columns}) SELECT {columns} FROM traces"  # noqa: S608
    )
    conn.exec_driver_sql("DROP TABLE traces")
    conn.exec_driver_sql("ALTER TABLE traces_m003 RENAME TO traces")
    traces = traces_table("traces")
    c = traces.c
    indexes = [Index("ix_traces_ts_id", c.ts.desc(), c.id.desc())]
    indexes += [Index(f"ix_traces_{n}", c[n], c.ts, c.id) for n in _M001_FILTER_INDEXES]
    indexes.append(Index("ix_traces_guard_action", c.guard_action, c.ts, c.id,
                         sqlite_where=c.guard_action.is_not(None)))
    for index in indexes:
        index.create(conn)
    conn.exec_driver_sql(
        "CREATE TRIGGER traces_bodies_ad AFTER DELETE ON traces BEGIN "
        "DELETE FROM trace_bodies WHERE seq = old.seq; END"
    )
    if fts:
        _m003_sqlite_fts(conn)


def _m003_sqlite_fts(conn: Connection) -> None:
    conn.exec_driver_sql(
        "CREATE VIRTUAL TABLE trace_text USING fts5(search, content='trace_bodies', "
        "content_rowid='seq', tokenize='unicode61 remove_diacritics 2', detail='none')"
    )
    conn.exec_driver_sql(
        "CREATE TRIGGER trace_bodies_text_ad AFTER DELETE ON trace_bodies "
        "WHEN old.search IS NOT NULL BEGIN INSERT INTO trace_text(trace_text, rowid, search) "
        "VALUES ('delete', old.seq, old.search); END"
    )
    conn.exec_driver_sql(
        "CREATE TRIGGER trace_bodies_text_au AFTER UPDATE OF search ON trace_bodies BEGIN "
        "INSERT INTO trace_text(trace_text, rowid, search) "
        "SELECT 'delete', old.seq, old.search WHERE old.search IS NOT NULL; "
        "INSERT INTO trace_text(rowid, search) "
        "SELECT new.seq, new.search WHERE new.search IS NOT NULL; END"
    )
    # the rows with text only, as the store indexes each batch ('rebuild' would add
    # empty documents that the delete trigger never removes)
    conn.exec_driver_sql(
        "INSERT INTO trace_text(rowid, search) SELECT seq, search FROM trace_bodies "
        "WHERE search IS NOT NULL"
    )
    # one insert of every trace leaves ~25,000 small segments (at 1M traces), which each
    # search merges: rare terms took 1.5-2x as long until this merge into one (3 s)
    conn.exec_driver_sql("INSERT INTO trace_text(trace_text) VALUES ('optimize')")


def _m003_postgres(conn: Connection) -> None:
    moved = [n for n, _ in _M003_MOVED]
    conn.execute(text(
        "CREATE TABLE trace_bodies (id text NOT NULL, ts float8 NOT NULL, "
        "preview_in text, preview_out text, search text, "
        "input jsonb, output jsonb, spans jsonb, "
        "search_tsv tsvector GENERATED ALWAYS AS "
        "(strip(to_tsvector('bastion_text'::regconfig, coalesce(search, '')))) STORED, "
        "PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)"
    ))
    parts = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'traces'::regclass"
    )).all()
    quote = conn.dialect.identifier_preparer.quote
    for name, bound in parts:  # traces_p20261201 -> trace_bodies_p20261201, same bounds
        body = quote("trace_bodies" + name.removeprefix("traces"))
        conn.execute(text(f"CREATE TABLE {body} PARTITION OF trace_bodies {bound}"))
    conn.execute(text(
        f"INSERT INTO trace_bodies (id, ts, {_quoted(moved)}) "  # noqa: S608 - constant names
        f"SELECT id, ts, {_quoted(moved)} FROM traces"
    ))
    conn.execute(text("DROP INDEX IF EXISTS ix_traces_search_fts"))
    conn.execute(text("ALTER TABLE traces " + ", ".join(f'DROP COLUMN "{n}"' for n in moved)))
    # A smaller pending list (1 MB, not 4): GIN's fast update queues new entries there and
    # every search reads all of it, on every partition; without autovacuum (off on the
    # bench server) nothing merges a list below its limit: 8 full lists, read twice, made
    # a word with no match take 200 ms at 1M traces. The store merges the lists of past
    # days itself (Partitions.merge_text_pending); 256 kB cost ~30 % of the ingest rate.
    conn.execute(text(
        "CREATE INDEX ix_trace_bodies_search ON trace_bodies USING gin (search_tsv) "
        "WITH (gin_pending_list_limit = 1024)"
    ))
    # a dropped column's data stays in each row until the row is rewritten: CLUSTER each
    # partition by its (ts, id) index (which also leaves it in time order)
    children = conn.execute(text(
        "SELECT t.relname, ix.relname FROM pg_inherits i "
        "JOIN pg_class ix ON ix.oid = i.inhrelid "
        "JOIN pg_index x ON x.indexrelid = ix.oid JOIN pg_class t ON t.oid = x.indrelid "
        "WHERE i.inhparent = 'ix_traces_ts_id'::regclass"
    )).all()
    for table_name, index_name in children:
        conn.execute(text(f"CLUSTER {quote(table_name)} USING {quote(index_name)}"))


def m004_api_keys(conn: Connection) -> None:
    """Virtual keys (HMAC digests, never the keys), and their change order: workers poll
    ``updated_at`` to pick up a change made through any of them."""
    md = MetaData()
    floats = ("created_at", "updated_at")
    columns: list[Column[Any]] = [
        Column("id", String, primary_key=True),
        Column("digest", String, nullable=False, unique=True),
        *(Column(n, Text) for n in ("hint", "name", "team", "user")),
        Column("role", String, nullable=False),
        *(Column(n, json_type()) for n in ("models", "limits", "budget")),
        Column("guard_policy", Text), Column("content_mode", Text),
        Column("priority", Integer), Column("metadata", json_type()),
        *(Column(n, Double, nullable=n not in floats)
          for n in ("created_at", "expires_at", "revoked_at", "updated_at")),
        Column("rotated_from", Text),
    ]
    keys = Table("api_keys", md, *columns)
    Index("ix_api_keys_updated_at", keys.c.updated_at)
    Index("ix_api_keys_team", keys.c.team)
    md.create_all(conn)


def m005_audit_log(conn: Connection) -> None:
    """The tamper-evident audit log: entries hash-chained by ``seq``, and signed heads."""
    md = MetaData()
    Table("audit_log", md,
          Column("seq", Integer, primary_key=True, autoincrement=False),
          Column("ts", Double, nullable=False), Column("actor", Text, nullable=False),
          Column("action", Text, nullable=False), Column("target", Text),
          Column("detail", json_type()), Column("prev", String, nullable=False),
          Column("hash", String, nullable=False))
    Table("audit_heads", md,
          Column("seq", Integer, primary_key=True, autoincrement=False),
          Column("hash", String, nullable=False), Column("ts", Double, nullable=False),
          Column("public_key", String, nullable=False),
          Column("signature", String, nullable=False))
    md.create_all(conn)


# --------------------------------------------------------------- m006_sealed_bodies
_M006_BODIES: tuple[tuple[str, Any], ...] = (
    ("body_key", Integer), ("sealed_preview", LargeBinary), ("preview_in", Text),
    ("preview_out", Text), ("search", Text), ("input", _J), ("output", _J), ("spans", _J),
    ("sealed", LargeBinary),
)


def m006_sealed_bodies(conn: Connection) -> None:
    """Encryption at rest (:mod:`bastion.store.crypto`): ``data_keys`` (the data keys,
    wrapped), and three columns of ``trace_bodies``: ``body_key`` (the data key's id; NULL:
    a plaintext row), ``sealed_preview`` and ``sealed`` (the previews and the bodies,
    AES-256-GCM), with an index on ``body_key`` (what re-encryption after a rotation walks,
    and counts). SQLite copies the table into the new column order (the key and sealed
    previews at the start of the row, where a list page reads; the sealed body last): a
    rewrite of every body, as in m003. Postgres adds the columns (no rewrite). Existing
    rows stay plaintext until ``bastion keys rotate-data-key`` (or the ingest, when bodies
    are to be encrypted) seals them."""
    md = MetaData()
    Table("data_keys", md,
          Column("id", Integer, primary_key=True, autoincrement=False),
          Column("wrapped", LargeBinary, nullable=False),
          Column("created_at", Double, nullable=False))
    md.create_all(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(text(
            "ALTER TABLE trace_bodies ADD COLUMN body_key integer, "
            "ADD COLUMN sealed_preview bytea, ADD COLUMN sealed bytea"))
        conn.execute(text(
            "CREATE INDEX ix_trace_bodies_body_key ON trace_bodies (body_key, ts, id)"))
        return
    fts = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE name = 'trace_text'").first() is not None
    for trigger in ("traces_bodies_ad", "trace_bodies_text_ad", "trace_bodies_text_au"):
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
    Table("trace_bodies_m006", MetaData(),
          Column("seq", Integer, primary_key=True, autoincrement=False),
          *(Column(n, json_type() if t == _J else t) for n, t in _M006_BODIES)).create(conn)
    old = _quoted(["seq", *(n for n, _ in _M003_MOVED)])
    conn.exec_driver_sql(
        f"INSERT INTO trace_bodies_m006 ({old}) SELECT {old} FROM trace_bodies"  # noqa: S608
    )
    conn.exec_driver_sql("DROP TABLE trace_bodies")
    conn.exec_driver_sql("ALTER TABLE trace_bodies_m006 RENAME TO trace_bodies")
    conn.exec_driver_sql("CREATE INDEX ix_trace_bodies_body_key ON trace_bodies (body_key)")
    conn.exec_driver_sql(
        "CREATE TRIGGER traces_bodies_ad AFTER DELETE ON traces BEGIN "
        "DELETE FROM trace_bodies WHERE seq = old.seq; END"
    )
    if fts:  # the index's rowids and text are unchanged: only its triggers come back
        conn.exec_driver_sql(
            "CREATE TRIGGER trace_bodies_text_ad AFTER DELETE ON trace_bodies "
            "WHEN old.search IS NOT NULL BEGIN INSERT INTO trace_text(trace_text, rowid, "
            "search) VALUES ('delete', old.seq, old.search); END"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER trace_bodies_text_au AFTER UPDATE OF search ON trace_bodies "
            "BEGIN INSERT INTO trace_text(trace_text, rowid, search) "
            "SELECT 'delete', old.seq, old.search WHERE old.search IS NOT NULL; "
            "INSERT INTO trace_text(rowid, search) "
            "SELECT new.seq, new.search WHERE new.search IS NOT NULL; END"
        )


def m007_feedback_user(conn: Connection) -> None:
    """Feedback by the user who gave it: erasure, its verification and export filter on it."""
    conn.exec_driver_sql('CREATE INDEX ix_feedback_user ON feedback ("user")')


def m008_teams(conn: Connection) -> None:
    """Registered teams and the organisation each belongs to."""
    md = MetaData()
    teams = Table("teams", md,
                  Column("name", String, primary_key=True), Column("org", Text),
                  Column("description", Text), Column("metadata", json_type()),
                  Column("created_at", Double, nullable=False),
                  Column("updated_at", Double, nullable=False))
    Index("ix_teams_org", teams.c.org)
    md.create_all(conn)


def m009_rollups(conn: Connection) -> None:
    """Aggregates per half hour (:mod:`bastion.store.rollups`); empty until rolled. As
    written here (a migration is frozen), not as the schema reads today."""
    md = MetaData()
    ints = ("requests", "errors", "client_disconnects", "server_errors", "input_tokens",
            "output_tokens", "gen_tokens", "guarded", "guard_blocked")
    rollups = Table(
        "trace_rollups", md,
        Column("unit", BigInteger, nullable=False), Column("level", Integer, nullable=False),
        *(Column(d, Text) for d in ("team", "model", "deployment", "key_id")),
        *(Column(n, BigInteger, nullable=False) for n in ints),
        Column("cost", Double, nullable=False), Column("gen_ms", Double, nullable=False),
        Column("latency_hist", Text), Column("ttft_hist", Text))
    Index("ix_trace_rollups_level_unit", rollups.c.level, rollups.c.unit)
    Table("rollup_units", md,
          Column("unit", BigInteger, primary_key=True, autoincrement=False),
          Column("version", Integer, nullable=False), Column("rolled", Integer),
          Column("rolled_at", Double))
    md.create_all(conn)


def m010_ui_signouts(conn: Connection) -> None:
    """Dashboard sessions signed out, for every worker to refuse."""
    md = MetaData()
    signouts = Table("ui_signouts", md, Column("sid", String, primary_key=True),
                     Column("expires_at", Double, nullable=False),
                     Column("created_at", Double, nullable=False))
    Index("ix_ui_signouts_created_at", signouts.c.created_at)
    md.create_all(conn)


def m011_trace_confidence(conn: Connection) -> None:
    """The answer's mean token probability, where the backend gave log-probabilities
    (:mod:`bastion.observe.confidence`): a column, so that traces filter on it."""
    kind = "DOUBLE PRECISION" if conn.dialect.name == "postgresql" else "REAL"
    conn.execute(text(f"ALTER TABLE traces ADD COLUMN confidence {kind}"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration("m001_initial", m001_initial),
    Migration("m002_text_search", m002_text_search),
    Migration("m003_trace_bodies", m003_trace_bodies),
    Migration("m004_api_keys", m004_api_keys),
    Migration("m005_audit_log", m005_audit_log),
    Migration("m006_sealed_bodies", m006_sealed_bodies),
    Migration("m007_feedback_user", m007_feedback_user),
    Migration("m008_teams", m008_teams),
    Migration("m009_rollups", m009_rollups),
    Migration("m010_ui_signouts", m010_ui_signouts),
    Migration("m011_trace_confidence", m011_trace_confidence),
)


# ------------------------------------------------------------------------------ runner
def migrate(engine: Engine, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[str]:
    """Applies the pending migrations in order, under the lock; returns the names applied
    (empty when the database was up to date: a second open changes nothing)."""
    with engine.connect() as conn:
        with conn.begin():
            pending = _pending(conn, migrations)
        if not pending:
            return []
        conn.execution_options(**WRITE)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            table = migrations_table(MetaData())
            table.create(conn, checkfirst=True)
            pending = _pending(conn, migrations)  # again, now that no one else can apply
            for migration in pending:
                migration.apply(conn)
                conn.execute(insert(table).values(name=migration.name, applied_at=time.time()))
        if pending and conn.dialect.name == "sqlite":
            # a migration that rewrote the traces left them all in the WAL file: copy it
            # back and shrink it now, not when the last connection closes
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return [m.name for m in pending]


def applied(conn: Connection) -> list[tuple[str, float]]:
    """(name, applied_at) of every recorded migration, oldest first."""
    table = migrations_table(MetaData())
    if not inspect(conn).has_table(table.name):
        return []
    query = select(table.c.name, table.c.applied_at).order_by(table.c.applied_at, table.c.name)
    rows = conn.execute(query)
    return [(r.name, r.applied_at) for r in rows]


def _pending(conn: Connection, migrations: tuple[Migration, ...]) -> list[Migration]:
    done = {name for name, _ in applied(conn)}
    return [m for m in migrations if m.name not in done]
