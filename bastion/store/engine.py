"""One SQLAlchemy Engine per store: the URL, the pool and each engine's connection setup.

SQLite: every pooled connection gets WAL, ``synchronous=NORMAL``, a busy timeout, foreign
keys and a larger page cache. pysqlite's own transaction handling is switched off (its
implicit BEGIN comes too late for SAVEPOINTs and cannot ask for the write lock); the engine
emits ``BEGIN`` itself, and ``BEGIN IMMEDIATE`` for connections carrying the ``bastion_write``
execution option, so a writer takes the lock before reading and never hits a deadlock
that the busy timeout cannot resolve.

Postgres (psycopg 3): a pool of ``pool_size`` connections, pre-pinged at checkout so a
restarted server costs no failed request, and a connect timeout so an unreachable host
fails fast with :class:`StoreUnavailable`.
"""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from bastion.store.errors import StoreUnavailable

SQLITE_FILE = "bastion.db"
CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 10


def resolve_url(url: str | None, home: str | Path) -> URL:
    """``None`` is SQLite at ``<home>/bastion.db``; ``postgresql://`` and ``postgres://``
    mean psycopg 3. The directory of a SQLite file is created."""
    if url is None:
        path = Path(home).expanduser() / SQLITE_FILE
        parsed = URL.create("sqlite", database=str(path))
    else:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ValueError(f"store URL {url!r} is not a database URL") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername != "sqlite" and parsed.drivername != "sqlite+pysqlite":
            raise ValueError(f"store URL: SQLite goes through pysqlite, not {parsed.drivername}")
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("store URL: SQLite needs a file (sqlite:///path/to/bastion.db)")
        _make_parent(Path(parsed.database))
    elif parsed.drivername != "postgresql+psycopg":
        raise ValueError(
            f"store URL: {parsed.drivername} is not supported "
            "(sqlite:///path or postgresql+psycopg://user@host/db)"
        )
    return parsed


def _make_parent(path: Path) -> None:
    try:
        path.expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create the directory of {path}: {exc}") from exc


def create(url: URL, *, pool_size: int, busy_timeout_ms: int) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite(url, pool_size, busy_timeout_ms)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_S,
        pool_pre_ping=True,
        pool_recycle=1800,
        json_serializer=dumps,
        json_deserializer=orjson.loads,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "bastion"},
    )


def dumps(value: Any) -> str:
    """JSON for the database: orjson, non-string keys allowed, anything else as str()."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _set_wal(cursor: sqlite3.Cursor, busy_timeout_ms: int) -> None:
    """``PRAGMA journal_mode = WAL``, retried: while another process converts a new
    database it fails at once with "database is locked" (the busy handler does not wait
    for it), e.g. when several workers open the store together."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _math_functions(dbapi_conn: sqlite3.Connection, cursor: sqlite3.Cursor) -> None:
    """``ln``, which the rollups' histograms use: SQLite's own where it was built with its
    math functions (3.35+, as Debian's is), else Python's (slower, the same results)."""
    try:
        cursor.execute("SELECT ln(1.0)")
    except sqlite3.OperationalError:
        dbapi_conn.create_function("ln", 1, _ln, deterministic=True)


def _ln(value: float | None) -> float | None:
    return None if value is None or value <= 0 else math.log(value)


def _sqlite(url: URL, pool_size: int, busy_timeout_ms: int) -> Engine:
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=POOL_TIMEOUT_S,
        json_serializer=dumps,
        json_deserializer=orjson.loads,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _setup(dbapi_conn: sqlite3.Connection, _entry: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # the "begin" listener below opens transactions
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            _set_wal(cursor, busy_timeout_ms)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA cache_size = -32768")  # KiB: 32 MiB per connection
            _math_functions(dbapi_conn, cursor)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("bastion_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
