"""The tables as the latest migration leaves them: what the store's queries are built on.

``migrations.py`` creates and changes the database; this module only describes the result
(a test checks that a freshly migrated database has exactly these columns, on both engines).

A trace is two rows. ``traces`` holds what filters, lists and aggregates read (a few hundred
bytes); ``trace_bodies`` holds the large columns: ``input``, ``output``, ``spans`` and the
three derived from the bodies, written by the store, never by callers: ``search`` (the text
of input and output, the haystack of text search), ``preview_in`` and ``preview_out`` (short
previews that trace lists return instead of the bodies). Encrypted at rest (migration
m006, :mod:`bastion.store.crypto`), a body row has ``body_key`` (the data key's id), the
bodies in ``sealed`` and the previews in ``sealed_preview`` (AES-256-GCM), the five plain
columns NULL, and in ``search`` the blind index's hashes of the words; ``body_key`` NULL is
a plaintext row. ``data_keys`` holds the data keys, wrapped. Split because a stats scan or a
newest-first walk reads whole rows: with the bodies inline a row was ~3 KB, one per SQLite
page, and 24 h of stats at 1M traces read 580 MB (docs/benchmarks.md).

``ts`` is ``float8`` epoch seconds on both engines, as in the records (no time-zone
conversions, the same arithmetic for buckets, and Postgres range partitions with plain
numeric bounds). The engines differ in keys:

- SQLite: ``traces.seq INTEGER PRIMARY KEY`` (a stable rowid; a VACUUM may renumber implicit
  rowids) and ``id`` unique; ``trace_bodies`` is keyed by the same ``seq`` (an append at the
  end of its b-tree, no second index), which is also the rowid of the FTS5 index. Deleting
  a trace deletes its body (trigger).
- Postgres: both tables partitioned ``BY RANGE (ts)`` with the same bounds and primary key
  ``(id, ts)`` (a unique key has to contain the partition key), plus a plain index on
  ``traces.id`` for lookups by id. ``trace_bodies.search_tsv`` is the stored, stripped
  ``tsvector`` of ``search`` (generated), with the GIN index text search uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Computed,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    column,
    table,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.types import TypeEngine

# The trace record's fields, in column order: (name, kind[, "body"]). The kind is text,
# int, float, bool or json; "body" marks the large ones, kept in trace_bodies. This is the
# one table of them: the record (bastion.observe.record) builds exactly these keys (a test
# checks it), and every list of keys below is derived from it. Migrations keep their own
# copies: they are history, frozen as they were written.
RECORD_FIELDS: tuple[tuple[str, ...], ...] = (
    ("id", "text"), ("ts", "float"), ("endpoint", "text"), ("operation", "text"),
    ("model", "text"), ("deployment", "text"), ("provider", "text"),
    ("model_version", "text"), ("key_id", "text"), ("team", "text"), ("user", "text"),
    ("session", "text"), ("tenant", "text"), ("priority", "int"), ("stream", "bool"),
    ("status", "int"), ("error", "text"), ("finish_reason", "text"),
    ("input_tokens", "int"), ("output_tokens", "int"), ("cached_tokens", "int"),
    ("cost", "float"), ("latency_ms", "float"), ("ttft_ms", "float"), ("tpot_ms", "float"),
    ("overhead_ms", "float"), ("queue_ms", "float"), ("attempts", "int"),
    ("fallback", "bool"), ("content_mode", "text"), ("params", "json"),
    ("input", "json", "body"), ("output", "json", "body"), ("guards", "json"),
    ("guard_action", "text"), ("spans", "json", "body"), ("metadata", "json"),
    ("trace_id", "text"), ("span_id", "text"),
    ("confidence", "float"),  # m011: the answer's mean token probability (logprobs)
)
RECORD_KEYS: tuple[str, ...] = tuple(f[0] for f in RECORD_FIELDS)


def _of_kind(kind: str) -> frozenset[str]:
    return frozenset(f[0] for f in RECORD_FIELDS if f[1] == kind)


INT_KEYS = _of_kind("int")
FLOAT_KEYS = _of_kind("float")
BOOL_KEYS = _of_kind("bool")
JSON_KEYS = _of_kind("json")
# the columns a trace list leaves out (the bodies); it returns a ``preview`` instead
HEAVY_KEYS = frozenset(f[0] for f in RECORD_FIELDS if f[2:] == ("body",))
DERIVED_KEYS: tuple[str, ...] = ("search", "preview_in", "preview_out")
# the columns of trace_bodies after its key, previews first (a list page reads only them:
# on SQLite they sit at the start of the row, before any overflow page); the sealed body
# last (Postgres: the three m006 columns come after search_tsv)
BODY_KEYS: tuple[str, ...] = ("body_key", "sealed_preview", "preview_in", "preview_out",
                              "search", "input", "output", "spans", "sealed")
SEALED_KEYS = frozenset({"sealed_preview", "sealed"})
# the record keys stored in traces
TRACE_KEYS: tuple[str, ...] = tuple(k for k in RECORD_KEYS if k not in HEAVY_KEYS)
# Postgres: the text search vector (immutable: the configuration is named by a constant)
TSVECTOR_SQL = "strip(to_tsvector('bastion_text'::regconfig, coalesce(search, '')))"
FEEDBACK_KEYS: tuple[str, ...] = ("request_id", "key", "value", "score", "comment", "user", "ts")
# a virtual key's record (the key itself is never stored: ``digest`` is its HMAC)
API_KEY_KEYS: tuple[str, ...] = (
    "id", "digest", "hint", "name", "team", "user", "role", "models", "limits", "budget",
    "guard_policy", "content_mode", "priority", "metadata", "created_at", "expires_at",
    "revoked_at", "updated_at", "rotated_from",
)
API_KEY_JSON = frozenset({"models", "limits", "budget", "metadata"})
# the audit log: one row per event, each hash chained to the one before
AUDIT_KEYS: tuple[str, ...] = ("seq", "ts", "actor", "action", "target", "detail", "prev",
                               "hash")
API_KEY_FLOATS = frozenset({"created_at", "expires_at", "revoked_at", "updated_at"})


def json_type() -> TypeEngine[Any]:
    """JSON on SQLite (TEXT), JSONB on Postgres; Python ``None`` is SQL NULL."""
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def column_type(key: str) -> TypeEngine[Any]:
    if key in INT_KEYS:
        return Integer()
    if key in FLOAT_KEYS:
        return Double()
    if key in BOOL_KEYS:
        return Boolean()
    if key in JSON_KEYS:
        return json_type()
    return Text()


@dataclass(frozen=True, slots=True)
class Tables:
    metadata: MetaData
    traces: Table
    bodies: Table
    feedback: Table
    api_keys: Table
    audit: Table
    audit_heads: Table
    migrations: Table
    # SQLite's FTS5 index over trace_bodies.search (rowid = seq); None elsewhere
    trace_text: TableClause | None
    data_keys: Table
    teams: Table
    rollups: Table
    rollup_units: Table
    signouts: Table


def build(dialect: str) -> Tables:
    """The tables for one engine (``"sqlite"`` or ``"postgresql"``)."""
    md = MetaData()
    pg = dialect == "postgresql"
    keys: list[Column[Any]] = []
    if not pg:
        keys.append(Column("seq", Integer, primary_key=True, autoincrement=True))
    keys.append(Column("id", String, nullable=False, primary_key=pg, unique=not pg))
    keys.append(Column("ts", Double, nullable=False, primary_key=pg))
    traces = Table(
        "traces", md, *keys, *(Column(k, column_type(k)) for k in TRACE_KEYS[2:])
    )
    body_keys: list[Column[Any]] = []
    if pg:
        body_keys.append(Column("id", String, primary_key=True))
        body_keys.append(Column("ts", Double, primary_key=True))
    else:
        body_keys.append(Column("seq", Integer, primary_key=True, autoincrement=False))
    body_columns = [Column(k, _body_type(k)) for k in BODY_KEYS]
    if pg:
        body_columns.append(Column("search_tsv", TSVECTOR, Computed(TSVECTOR_SQL, persisted=True)))
    bodies = Table("trace_bodies", md, *body_keys, *body_columns)
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
    api_keys = api_keys_table(md)
    audit, audit_heads = audit_tables(md)
    migrations = migrations_table(md)
    trace_text = None if pg else table("trace_text", column("rowid"), column("search"))
    rollups, rollup_units = rollup_tables(md)
    return Tables(md, traces, bodies, feedback, api_keys, audit, audit_heads, migrations,
                  trace_text, data_keys_table(md), teams_table(md), rollups, rollup_units,
                  signouts_table(md))


def _body_type(key: str) -> TypeEngine[Any]:
    if key == "body_key":
        return Integer()
    if key in SEALED_KEYS:
        return LargeBinary()
    return Text() if key in DERIVED_KEYS else column_type(key)


def data_keys_table(md: MetaData) -> Table:
    """The data keys trace bodies are sealed under: id (the newest is current), the key
    wrapped under the key-encryption key (:mod:`bastion.store.crypto`), when it was made."""
    return Table(
        "data_keys", md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("wrapped", LargeBinary, nullable=False),
        Column("created_at", Double, nullable=False),
    )


def audit_tables(md: MetaData) -> tuple[Table, Table]:
    """``audit_log`` (the chain) and ``audit_heads`` (signed (seq, hash) checkpoints)."""
    log = Table(
        "audit_log", md,
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("ts", Double, nullable=False),
        Column("actor", Text, nullable=False),
        Column("action", Text, nullable=False),
        Column("target", Text),
        Column("detail", json_type()),
        Column("prev", String, nullable=False),
        Column("hash", String, nullable=False),
    )
    heads = Table(
        "audit_heads", md,
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("hash", String, nullable=False),
        Column("ts", Double, nullable=False),
        Column("public_key", String, nullable=False),
        Column("signature", String, nullable=False),
    )
    return log, heads


def api_keys_table(md: MetaData) -> Table:
    """Virtual keys: one row per key, revoked ones kept (for audit and their id's traces)."""

    def col(key: str) -> Column[Any]:
        if key == "id":
            return Column("id", String, primary_key=True)
        if key == "digest":
            return Column("digest", String, nullable=False, unique=True)
        if key == "role":
            return Column("role", String, nullable=False)
        if key == "priority":
            return Column("priority", Integer)
        if key in API_KEY_JSON:
            return Column(key, json_type())
        if key in API_KEY_FLOATS:
            return Column(key, Double, nullable=key in ("expires_at", "revoked_at"))
        return Column(key, Text)

    return Table("api_keys", md, *(col(k) for k in API_KEY_KEYS))


# a registered team: its organisation and description (its keys, budget and limits are
# the keys' rows and the configuration; a team needs no row to have keys)
TEAM_KEYS: tuple[str, ...] = ("name", "org", "description", "metadata", "created_at",
                              "updated_at")


def teams_table(md: MetaData) -> Table:
    return Table(
        "teams", md,
        Column("name", String, primary_key=True), Column("org", Text),
        Column("description", Text), Column("metadata", json_type()),
        Column("created_at", Double, nullable=False), Column("updated_at", Double, nullable=False),
    )


ROLLUP_DIMS = ("team", "model", "deployment", "key_id")
ROLLUP_INTS = ("requests", "errors", "client_disconnects", "server_errors", "input_tokens",
               "output_tokens", "gen_tokens", "guarded", "guard_blocked")


def rollup_tables(md: MetaData) -> tuple[Table, Table]:
    """``trace_rollups`` (aggregates per half hour and level) and ``rollup_units`` (which
    half hours they are current for): :mod:`bastion.store.rollups`."""
    rollups = Table(
        "trace_rollups", md,
        Column("unit", BigInteger, nullable=False),
        Column("level", Integer, nullable=False),
        *(Column(d, Text) for d in ROLLUP_DIMS),
        *(Column(n, BigInteger, nullable=False) for n in ROLLUP_INTS),
        Column("cost", Double, nullable=False), Column("gen_ms", Double, nullable=False),
        Column("latency_hist", Text), Column("ttft_hist", Text),
        Index("ix_trace_rollups_level_unit", "level", "unit"),
    )
    units = Table(
        "rollup_units", md,
        Column("unit", BigInteger, primary_key=True, autoincrement=False),
        Column("version", Integer, nullable=False),
        Column("rolled", Integer),
        Column("rolled_at", Double),
    )
    return rollups, units


def signouts_table(md: MetaData) -> Table:
    """Dashboard sessions signed out before they expire (:mod:`bastion.store.signouts`)."""
    return Table(
        "ui_signouts", md,
        Column("sid", String, primary_key=True),
        Column("expires_at", Double, nullable=False),
        Column("created_at", Double, nullable=False),
        Index("ix_ui_signouts_created_at", "created_at"),
    )


def migrations_table(md: MetaData) -> Table:
    """The record of applied migrations: one row per name, written by the runner."""
    return Table(
        "bastion_migrations",
        md,
        Column("name", String, primary_key=True),
        Column("applied_at", Double, nullable=False),
    )
