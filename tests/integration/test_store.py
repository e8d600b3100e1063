"""The trace store, one suite over both engines: SQLite in a temp dir, Postgres in a
database made for this run (``bastion_test_<hex>``, dropped afterwards). Without a
reachable Postgres the Postgres half skips, or fails when CI=true."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from bastion.store import Store, StoreUnavailable, TraceQuery, open_store
from bastion.store import engine as engines
from bastion.store import store as store_module
from bastion.store.migrations import MIGRATIONS, migrate
from bastion.store.records import to_row
from bastion.store.schema import RECORD_KEYS, build
from bastion.store.stats import percentile
from tests.store_helpers import (
    T0,
    create_database,
    drop_database,
    fresh_database,
    open_concurrently,
    pg_url,
    psql,
    record,
    require_postgres,
    throwaway_postgres,
)

ENGINES = ["sqlite", "postgres"]
NAMES = [m.name for m in MIGRATIONS]
DAY = 86_400.0


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    require_postgres()
    name = create_database()
    yield name
    drop_database(name)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp_path}/data/bastion.db"
    return pg_url(request.getfixturevalue("pg_database"))


@pytest.fixture()
def store(url: str, engine: str, tmp_path: Path) -> Iterator[Store]:
    s = open_store(url, tmp_path)
    if engine == "postgres":  # the database is shared by the run: start empty
        psql(url, "TRUNCATE traces, trace_bodies, feedback, trace_rollups, rollup_units")
    yield s
    s.close()


@pytest.fixture()
def fresh_url(engine: str, tmp_path: Path) -> Iterator[str]:
    """A database no store has opened yet."""
    with fresh_database(engine, tmp_path / "fresh") as database:
        yield database


@pytest.fixture()
def fresh_pg_url() -> Iterator[str]:
    require_postgres()
    name = create_database()
    try:
        yield pg_url(name)
    finally:
        drop_database(name)


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]


def partitions(url: str) -> set[str]:
    return {r[0] for r in psql(url, "SELECT c.relname FROM pg_inherits i JOIN pg_class c "
                                    "ON c.oid = i.inhrelid WHERE i.inhparent = 'traces'::regclass")}


def partition_name(ts: float) -> str:
    return "traces_p" + time.strftime("%Y%m%d", time.gmtime(ts))


def recorded_migrations(url: str) -> list[tuple[str, float]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT name, applied_at FROM bastion_migrations")
            return sorted((r[0], r[1]) for r in rows)
    finally:
        engine.dispose()


# -------------------------------------------------------------------------- migrations
def test_migrations_apply_once_are_recorded_and_a_reopen_is_a_no_op(
    fresh_url: str, tmp_path: Path
) -> None:
    first = open_store(fresh_url, tmp_path)
    assert first.migrations_applied == NAMES
    first.close()
    recorded = recorded_migrations(fresh_url)
    assert [name for name, _ in recorded] == sorted(NAMES)

    second = open_store(fresh_url, tmp_path)
    assert second.migrations_applied == []
    assert second.count_traces() == 0
    second.close()
    assert recorded_migrations(fresh_url) == recorded  # nothing re-applied or re-recorded


def test_two_processes_opening_a_new_database_migrate_it_once(
    fresh_url: str, tmp_path: Path
) -> None:
    results = open_concurrently(fresh_url, tmp_path, processes=2)
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(NAMES), results  # each migration by exactly one process
    assert [n for n, _ in recorded_migrations(fresh_url)] == sorted(NAMES)


def test_migrated_database_has_the_columns_the_queries_use(fresh_url: str, tmp_path: Path) -> None:
    store = open_store(fresh_url, tmp_path)
    engine = create_engine(fresh_url)
    try:
        with engine.connect() as conn:
            db = inspect(conn)
            tables = build(store.dialect)
            for table in (tables.traces, tables.bodies, tables.feedback, tables.api_keys,
                          tables.audit, tables.audit_heads, tables.migrations,
                          tables.data_keys):
                in_db = {c["name"] for c in db.get_columns(table.name)}
                assert in_db == {c.name for c in table.columns}, table.name
    finally:
        engine.dispose()
        store.close()


def _old_layout_rows() -> list[dict[str, Any]]:
    """Traces as m002 stored them: bodies and derived columns inline in traces."""
    rows = []
    for i in range(6):
        row = to_row(record(i, ts=T0 + i * DAY / 2, output=f"legacy answer {i}"))
        row["seq"] = i + 1
        rows.append(row)
    return rows


def test_m003_moves_the_bodies_of_existing_traces(fresh_url: str, tmp_path: Path) -> None:
    engine = engines.create(engines.resolve_url(fresh_url, tmp_path), pool_size=1,
                            busy_timeout_ms=5000)  # the store's (SQLite: its BEGIN handling)
    try:
        assert migrate(engine, MIGRATIONS[:2]) == NAMES[:2]
        pg = engine.dialect.name == "postgresql"
        rows = _old_layout_rows()
        with engine.begin() as conn:
            if pg:  # the partitions m002's store would have made (and the default one)
                for day in sorted({math.floor(r["ts"] / DAY) * DAY for r in rows}):
                    conn.execute(text(
                        f"CREATE TABLE {partition_name(day)} PARTITION OF traces "
                        f"FOR VALUES FROM ({day!r}) TO ({day + DAY!r})"))
            old = [k for k in RECORD_KEYS if k != "confidence"]  # m002's columns (m011 adds it)
            keys = [*old, "search", "preview_in", "preview_out"] + ([] if pg else ["seq"])
            columns = ", ".join(f'"{k}"' for k in keys)
            marks = ", ".join(f":{k}" for k in keys)
            json_keys = ("params", "input", "output", "guards", "spans", "metadata")
            values = [{k: json.dumps(r[k]) if k in json_keys else r[k] for k in keys}
                      for r in rows]
            conn.execute(text(f"INSERT INTO traces ({columns}) VALUES ({marks})"), values)
            if not pg:
                conn.execute(text("INSERT INTO trace_text(trace_text) VALUES ('rebuild')"))
    finally:
        engine.dispose()
    store = open_store(fresh_url, tmp_path)
    try:
        assert store.migrations_applied == NAMES[2:]  # m003_trace_bodies and after
        for row in rows:
            got = store.get_trace(row["id"])
            assert got is not None
            assert {k: got[k] for k in ("input", "output", "spans")} == {
                k: row[k] for k in ("input", "output", "spans")}
        listed, _ = store.list_traces(TraceQuery(), limit=100)
        assert ids(listed) == [r["id"] for r in reversed(rows)]
        assert [r["preview"] for r in listed] == [
            {"input": r["preview_in"], "output": r["preview_out"]} for r in reversed(rows)]
        found, _ = store.list_traces(TraceQuery(text="legacy answer"), limit=100)
        assert ids(found) == ids(listed)
        store.insert_traces([record(100, ts=T0 + 3 * DAY, output="legacy too")])
        found, _ = store.list_traces(TraceQuery(text="legacy"), limit=100)
        assert ids(found) == ["req-00100", *ids(listed)]
        assert store.delete_before(T0 + DAY) == 2
        assert body_count(fresh_url) == store.count_traces() == 5
        if pg:  # each traces partition has its trace_bodies partition
            bodies = {r[0] for r in psql(fresh_url, "SELECT c.relname FROM pg_inherits i JOIN "
                      "pg_class c ON c.oid = i.inhrelid "
                      "WHERE i.inhparent = 'trace_bodies'::regclass")}
            assert bodies == {"trace_bodies" + n.removeprefix("traces") for n in partitions(
                fresh_url)}
            # the moved columns' data is gone from the traces rows, not only hidden
            assert "search" not in {c[0] for c in psql(
                fresh_url, "SELECT attname FROM pg_attribute WHERE attrelid = "
                "'traces'::regclass AND NOT attisdropped")}
    finally:
        store.close()


def body_count(url: str) -> int:
    """Rows of trace_bodies (every trace has one; a deleted trace none)."""
    if url.startswith("sqlite"):
        check = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return int(check.execute("SELECT count(*) FROM trace_bodies").fetchone()[0])
        finally:
            check.close()
    return int(psql(url, "SELECT count(*) FROM trace_bodies")[0][0])


def test_default_url_is_sqlite_under_home(tmp_path: Path) -> None:
    with open_store(None, tmp_path / "home") as store:
        assert store.dialect == "sqlite"
        assert store.text_search == "fts5"
        store.insert_traces([record(1)])
    assert (tmp_path / "home" / "bastion.db").is_file()
    with open_store(None, tmp_path / "home") as again:
        assert again.count_traces() == 1


# ----------------------------------------------------------------------------- inserts
def test_insert_is_idempotent_on_id_and_ignores_unknown_keys(store: Store) -> None:
    batch = [record(i) for i in range(10)]
    assert store.insert_traces(batch) == 10
    assert store.insert_traces(batch) == 0  # a replayed batch
    mixed = [record(i) for i in range(5, 15)] + [record(14)]  # 5 old, 5 new, one twice
    assert store.insert_traces(mixed) == 5
    assert store.insert_traces([record(20, surprise="ignored", another={"x": 1})]) == 1
    assert store.insert_traces([]) == 0
    assert store.count_traces() == 16


def test_a_record_without_id_or_ts_is_refused_and_nothing_is_written(store: Store) -> None:
    with pytest.raises(ValueError, match="id"):
        store.insert_traces([record(1), {"ts": T0}])
    with pytest.raises(ValueError, match="ts"):
        store.insert_traces([record(2, ts=None)])
    assert store.count_traces() == 0


def test_get_trace_returns_every_key_as_written(store: Store) -> None:
    full = record(
        7, stream=True, ttft_ms=12.5, tpot_ms=3.25, fallback=True, error=None, cached_tokens=4,
        guards=[{"scanner": "pii", "action": "redact"}], metadata={"a": [1, 2], "b": None},
    )
    store.insert_traces([full])
    got = store.get_trace("req-00007")
    assert got is not None
    assert got.pop("feedback") == []
    expected = {k: full[k] for k in RECORD_KEYS}
    expected["guard_action"] = "redact"  # derived from the guards
    assert got == expected
    assert store.get_trace("no-such-trace") is None


def test_list_leaves_bodies_out_and_gives_previews(store: Store) -> None:
    long_answer = "word " * 100
    store.insert_traces([record(1, output={"role": "assistant", "content": long_answer})])
    [row], _ = store.list_traces(TraceQuery())
    assert not {"input", "output", "spans"} & row.keys()
    assert row["preview"]["input"] == "Question number 1"  # the last user message
    assert row["preview"]["output"].startswith("word word")
    assert len(row["preview"]["output"]) <= 160
    assert row["params"] == {"temperature": 0.2}


# ----------------------------------------------------------------------------- filters
def filter_dataset() -> list[dict[str, Any]]:
    out = []
    for i in range(60):
        model = ("alpha", "beta", "gamma")[i % 3]
        status = {0: 500, 1: 429, 2: 499, 3: 502}.get(i % 10, 200)
        guards = {0: [{"action": "block"}], 1: [{"action": "flag"}, {"action": "redact"}],
                  2: [{"action": "allow"}]}.get(i % 7, [])
        out.append(record(
            i, ts=T0 + i * 10, model=model, deployment=f"{model}-{i % 2}", key_id=f"key-{i % 4}",
            team=("support", "sales", "ops")[(i // 3) % 3], user=f"u{i % 5}", session=f"s{i % 6}",
            status=status, error="failed" if status != 200 else "cut" if i % 10 == 4 else None,
            latency_ms=10.0 * (i + 1), cost=0.0001 * i, guards=guards,
        ))
    return out


FILTER_CASES: list[tuple[str, TraceQuery, Callable[[dict[str, Any]], bool]]] = [
    ("window", TraceQuery(since=T0 + 100, until=T0 + 300), lambda r: T0 + 100 <= r["ts"] < T0 + 300),
    ("model", TraceQuery(model="beta"), lambda r: r["model"] == "beta"),
    ("deployment", TraceQuery(deployment="beta-1"), lambda r: r["deployment"] == "beta-1"),
    ("key", TraceQuery(key_id="key-2"), lambda r: r["key_id"] == "key-2"),
    ("team", TraceQuery(team="ops"), lambda r: r["team"] == "ops"),
    ("user", TraceQuery(user="u3"), lambda r: r["user"] == "u3"),
    ("session", TraceQuery(session="s5"), lambda r: r["session"] == "s5"),
    ("status", TraceQuery(status=429), lambda r: r["status"] == 429),
    ("2xx", TraceQuery(status_class="2xx"), lambda r: 200 <= r["status"] < 300),
    ("4xx", TraceQuery(status_class="4xx"), lambda r: 400 <= r["status"] < 500),
    ("5xx", TraceQuery(status_class="5xx"), lambda r: r["status"] >= 500),
    ("error", TraceQuery(status_class="error"), lambda r: r["status"] >= 400 or r["error"]),
    ("min latency", TraceQuery(min_latency_ms=200), lambda r: r["latency_ms"] >= 200),
    ("max latency", TraceQuery(max_latency_ms=150), lambda r: r["latency_ms"] <= 150),
    ("min cost", TraceQuery(min_cost=0.003), lambda r: r["cost"] >= 0.003),
    ("max cost", TraceQuery(max_cost=0.001), lambda r: r["cost"] <= 0.001),
    ("blocked", TraceQuery(guard="block"), lambda r: r["guards"] == [{"action": "block"}]),
    ("redacted", TraceQuery(guard="redact"), lambda r: len(r["guards"]) == 2),
    ("flag is outranked", TraceQuery(guard="flag"), lambda r: False),
    ("any guard", TraceQuery(guard="any"), lambda r: len(r["guards"]) > 0 and r["guards"][0]["action"] != "allow"),
    ("combined", TraceQuery(model="alpha", status_class="5xx", since=T0 + 200),
     lambda r: r["model"] == "alpha" and r["status"] >= 500 and r["ts"] >= T0 + 200),
    ("nothing", TraceQuery(model="alpha", deployment="beta-0"), lambda r: False),
]


def test_every_filter_selects_exactly_its_traces(store: Store) -> None:
    data = filter_dataset()
    store.insert_traces(data)
    newest_first = sorted(data, key=lambda r: (r["ts"], r["id"]), reverse=True)
    for name, query, keep in FILTER_CASES:
        rows, cursor = store.list_traces(query, limit=1000)
        assert ids(rows) == [r["id"] for r in newest_first if keep(r)], name
        assert cursor is None
    with pytest.raises(ValueError, match="status_class"):
        TraceQuery(status_class="3xx")


TEXTS = {
    "a": {"input": [{"role": "user", "content": "The Quantum flux capacitor"}], "output": "ok"},
    "b": {"input": [{"role": "user", "content": "nothing here"}],
          "output": {"role": "assistant", "content": "quantum leap detected"}},
    "c": {"input": [{"role": "user", "content": "100% sure_thing"}], "output": "x"},
    "d": {"input": [{"role": "user", "content": "unrelated"}], "output": "unrelated"},
    "e": {"input": [{"role": "user", "content": [{"type": "text", "text": "multipart QUANTUM"}]}],
          "output": None},
    "f": {"operation": "text_completion", "input": "a prompt about quantumness", "output": ["done"]},
    "g": {"operation": "embeddings", "input": ["vector one", "vector two"],
          "output": {"embeddings": 2, "dimensions": 384}},
}
TEXT_CASES = [  # every word of the query starts a word of the text, any case or accent
    ("quantum", "abefh"), ("QUANTUM", "abefh"), ("flux cap", "a"), ("capacitor flux", "a"),
    ("sure", "c"), ("100", "c"), ("vector tw", "g"), ("zzz", ""), ("qu", "abefh"),
    ("assistant", ""), ("leap", "b"), ("uant", ""), ("cafe", "h"), ("quantum leap", "b"),
]


@pytest.mark.parametrize("prefilter_max", [5000, 2], ids=["index", "common-term-scan"])
def test_text_search_finds_words_of_input_and_output(
    store: Store, monkeypatch: pytest.MonkeyPatch, prefilter_max: int
) -> None:
    monkeypatch.setattr(store_module, "PREFILTER_MAX", prefilter_max)
    monkeypatch.setattr(store_module, "PG_PREFILTER_MAX", prefilter_max)
    assert store.text_search == ("tsvector" if store.dialect == "postgresql" else "fts5")
    texts = {**TEXTS, "h": {"input": [{"role": "user", "content": "Quantum Café"}], "output": None}}
    records = [record(i, id=key, **fields) for i, (key, fields) in enumerate(texts.items())]
    store.insert_traces(records)
    for term, expected in TEXT_CASES:
        rows, _ = store.list_traces(TraceQuery(text=term), limit=100)
        assert sorted(ids(rows)) == sorted(expected), term
    rows, _ = store.list_traces(TraceQuery(text="quantum", since=T0 + 2), limit=100)
    assert sorted(ids(rows)) == ["e", "f", "h"]  # with another filter
    rows, _ = store.list_traces(TraceQuery(text="%_"), limit=100)  # no word: a LIKE scan
    assert ids(rows) == []


@pytest.mark.parametrize("prefilter_max", [5000, 2], ids=["index", "common-term-scan"])
def test_text_search_pages_across_days_and_filters(
    store: Store, monkeypatch: pytest.MonkeyPatch, prefilter_max: int
) -> None:
    """Matches spread over four days (Postgres partitions), every third with another model:
    one-row pages with a filter walk every day (or fetch matches in several rounds)."""
    monkeypatch.setattr(store_module, "PREFILTER_MAX", prefilter_max)
    monkeypatch.setattr(store_module, "PG_PREFILTER_MAX", prefilter_max)
    day0 = math.floor(T0 / DAY) * DAY
    data = [record(i, ts=day0 + (i % 4) * DAY + i * 60, model="beta" if i % 3 else "alpha",
                   output="needle here" if i % 2 else "hay")
            for i in range(40)]
    data.append(record(99, ts=day0 + DAY + 5, output="needle"))  # a tie on ts ...
    data.append(record(98, ts=day0 + DAY + 5, output="needle"))  # ... the id orders it
    store.insert_traces(data)
    for query in (TraceQuery(text="needle"), TraceQuery(text="needle", model="beta"),
                  TraceQuery(text="needle", model="beta", since=day0 + DAY,
                             until=day0 + 3 * DAY)):
        def keep(r: dict[str, Any], q: TraceQuery = query) -> bool:
            return ("needle" in r["output"] and (q.model is None or r["model"] == q.model)
                    and (q.since is None or r["ts"] >= q.since)
                    and (q.until is None or r["ts"] < q.until))
        expected = newest_first([r for r in data if keep(r)])
        assert expected
        for limit in (1, 3, 100):
            seen, _ = page_through(store, query, limit, lambda _page: None)
            assert seen == expected, (query, limit)


# -------------------------------------------------------------------------- pagination
def newest_first(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in sorted(rows, key=lambda r: (r["ts"], r["id"]), reverse=True)]


def page_through(store: Store, query: TraceQuery, limit: int, between: Callable[[int], None]
                 ) -> tuple[list[str], int]:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        rows, cursor = store.list_traces(query, cursor, limit=limit)
        seen += ids(rows)
        pages += 1
        between(pages)
        if cursor is None:
            return seen, pages


def test_cursor_pages_have_no_duplicates_or_gaps_while_new_rows_arrive(store: Store) -> None:
    # ties on ts (three rows a second): the id orders them
    stored = [record(i, ts=T0 + i // 3, model="alpha" if i % 2 == 0 else "beta")
              for i in range(95)]
    store.insert_traces(stored)

    def traffic(page: int) -> None:  # newer rows between pages: they sort before page one
        fresh = [record(1000 + page * 10 + k, ts=T0 + 500 + page) for k in range(2)]
        fresh.append(record(1000 + page * 10 + 2, ts=T0 + 500 + page, model="beta"))
        store.insert_traces(fresh)
        stored.extend(fresh)

    expected = newest_first(stored)
    seen, pages = page_through(store, TraceQuery(), 10, traffic)
    assert seen == expected
    assert pages == 10

    expected = newest_first([r for r in stored if r["model"] == "alpha"])
    seen, _ = page_through(store, TraceQuery(model="alpha"), 7, traffic)
    assert seen == expected  # every alpha row so far, once, in order


def test_a_bad_cursor_or_limit_is_a_value_error(store: Store) -> None:
    with pytest.raises(ValueError, match="cursor"):
        store.list_traces(TraceQuery(), "not-a-cursor")
    with pytest.raises(ValueError, match="limit"):
        store.list_traces(TraceQuery(), None, 0)


# ---------------------------------------------------------------------------- feedback
def test_feedback_upsert_is_idempotent_and_shows_on_the_trace(store: Store) -> None:
    up = {"request_id": "req-00001", "value": "up", "score": 1, "user": "ann", "ts": T0 + 5}
    row, created = store.upsert_feedback(up)  # the trace is not stored yet: accepted
    assert created
    assert row == {"request_id": "req-00001", "key": "default", "value": "up", "score": 1.0,
                   "comment": None, "user": "ann", "ts": T0 + 5}
    assert isinstance(row["score"], float)
    again, created = store.upsert_feedback(up)
    assert not created
    assert again == row
    changed, created = store.upsert_feedback({**up, "value": "down", "score": 0.25,
                                              "comment": "wrong", "ts": T0 + 6})
    assert not created
    assert (changed["value"], changed["score"], changed["comment"]) == ("down", 0.25, "wrong")
    _, created = store.upsert_feedback({"request_id": "req-00001", "key": "rubric", "score": 0.5,
                                        "ts": T0 + 7})
    assert created

    store.insert_traces([record(1)])
    trace = store.get_trace("req-00001")
    assert trace is not None
    assert [(f["key"], f["value"], f["score"]) for f in trace["feedback"]] == [
        ("default", "down", 0.25), ("rubric", None, 0.5)
    ]
    for bad in ({"value": "up"}, {"request_id": "x", "value": "meh"},
                {"request_id": "x", "score": "high"}):
        with pytest.raises(ValueError):
            store.upsert_feedback(bad)


# ------------------------------------------------------------------------------- stats
def stats_dataset() -> list[dict[str, Any]]:
    out = []
    for i in range(100):
        status = 500 if i < 10 else 429 if i < 15 else 499 if i < 18 else 200
        out.append(record(
            i, ts=T0 + i, latency_ms=float(i + 1), ttft_ms=(i + 1) / 10 if i % 2 == 0 else None,
            model="a" if i < 60 else "b", status=status,
            error="cut" if 18 <= i < 20 else None if status == 200 else f"status {status}",
            input_tokens=10, output_tokens=20 if status == 200 else 0, cost=0.01, queue_ms=0.0,
        ))
    out.append(record(500, ts=T0 - 0.5))  # outside [since, until)
    out.append(record(501, ts=T0 + 120))
    return out


def test_stats_on_a_known_dataset(store: Store) -> None:
    data = stats_dataset()
    store.insert_traces(data)
    for rid, value, score in (("req-00020", "up", 1.0), ("req-00021", "up", None),
                              ("req-00022", "up", None), ("req-00063", "down", 0.0),
                              ("ghost", "down", 0.0)):
        store.upsert_feedback({"request_id": rid, "value": value, "score": score})
    result = store.stats(T0, T0 + 120, 10, ["model"])
    totals = result["totals"]
    window = [r for r in data if T0 <= r["ts"] < T0 + 120]
    generating = [r for r in window if r["output_tokens"]]
    assert {k: totals[k] for k in ("requests", "errors", "client_disconnects", "server_errors",
                                   "input_tokens", "output_tokens", "feedback_up",
                                   "feedback_down")} == {
        "requests": 100, "errors": 17, "client_disconnects": 3, "server_errors": 10,
        "input_tokens": 1000, "output_tokens": 20 * 82, "feedback_up": 3, "feedback_down": 1,
    }
    assert totals["availability"] == pytest.approx(0.9)
    assert totals["qps"] == pytest.approx(100 / 120)
    assert totals["cost"] == pytest.approx(1.0)
    assert totals["feedback_score_mean"] == pytest.approx(0.5)
    assert totals["output_tokens_per_s"] == pytest.approx(
        20 * len(generating) / (sum(r["latency_ms"] for r in generating) / 1000))
    latencies = sorted(r["latency_ms"] for r in window)
    ttfts = sorted(r["ttft_ms"] for r in window if r["ttft_ms"] is not None)
    assert totals["latency_p50_ms"] == pytest.approx(50.5)
    assert totals["latency_p95_ms"] == pytest.approx(percentile(latencies, 0.95))
    assert totals["latency_p99_ms"] == pytest.approx(99.01)
    assert totals["ttft_p50_ms"] == pytest.approx(percentile(ttfts, 0.5))
    assert totals["ttft_p95_ms"] == pytest.approx(percentile(ttfts, 0.95))

    buckets = result["buckets"]
    assert [b["ts"] for b in buckets] == [T0 + 10 * k for k in range(12)]
    assert [b["requests"] for b in buckets] == [10] * 10 + [0, 0]  # empty buckets listed
    assert buckets[0]["server_errors"] == 10 and buckets[0]["availability"] == 0.0
    assert buckets[3]["latency_p50_ms"] == pytest.approx(35.5)
    assert buckets[11]["latency_p50_ms"] is None and buckets[11]["qps"] == 0.0

    by_model = {g["key"]["model"]: g for g in result["groups"]}
    assert list(by_model) == ["a", "b"]  # most requests first
    assert by_model["a"]["requests"] == 60 and by_model["b"]["requests"] == 40
    assert by_model["b"]["latency_p50_ms"] == pytest.approx(80.5)
    assert (by_model["b"]["feedback_down"], by_model["a"]["feedback_up"]) == (1, 3)
    assert [b["requests"] for b in by_model["b"]["buckets"]] == [0] * 6 + [10] * 4 + [0, 0]


def test_stats_filters_and_guard_counts(store: Store) -> None:
    data = stats_dataset()
    for i, row in enumerate(data[:30]):
        row["guard_action"] = "block" if i % 3 == 0 else "redact"
    store.insert_traces(data)
    whole = store.stats(T0, T0 + 120, None, [])["totals"]
    assert (whole["guarded"], whole["guard_blocked"]) == (30, 10)
    only_b = store.stats(T0, T0 + 120, 10, [], filters={"model": "b"})
    assert only_b["totals"]["requests"] == 40
    assert sum(b["requests"] for b in only_b["buckets"]) == 40
    by_action = store.stats(T0, T0 + 120, None, ["guard_action"])
    assert {g["key"]["guard_action"]: g["requests"] for g in by_action["groups"]} == {
        "block": 10, "redact": 20, None: 70}
    with pytest.raises(ValueError):
        store.stats(T0, T0 + 120, None, [], filters={"status": "200"})


def test_stats_over_an_empty_window_and_bad_arguments(store: Store) -> None:
    result = store.stats(T0, T0 + 60, None, [])
    assert result["totals"]["requests"] == 0
    assert result["totals"]["latency_p50_ms"] is None
    assert "buckets" not in result and "groups" not in result
    with pytest.raises(ValueError):
        store.stats(T0, T0 + 60, None, ["status"])
    with pytest.raises(ValueError):
        store.stats(T0 + 60, T0, None, [])


# ---------------------------------------------------------------------------- retention
def test_delete_before_removes_old_traces_and_their_feedback(store: Store, url: str) -> None:
    day0 = math.floor(T0 / DAY) * DAY
    rows = [record(d * 100 + h, ts=day0 + d * DAY + h * 3600, output=f"day {d} hour {h} marker")
            for d in range(5) for h in (1, 13)]
    store.insert_traces(rows)
    store.upsert_feedback({"request_id": "req-00001", "value": "up", "ts": day0})
    store.upsert_feedback({"request_id": "req-00413", "value": "up", "ts": day0 + 5 * DAY})
    cutoff = day0 + 3 * DAY + 12 * 3600
    assert store.delete_before(cutoff) == 7  # days 0-2 whole, day 3 before noon
    assert store.count_traces() == 3
    remaining, _ = store.list_traces(TraceQuery(), limit=100)
    assert ids(remaining) == ["req-00413", "req-00401", "req-00313"]
    assert ids(store.list_traces(TraceQuery(text="marker"), limit=100)[0]) == ids(remaining)
    assert store.get_trace("req-00001") is None
    kept = store.get_trace("req-00413")
    assert kept is not None
    assert [f["request_id"] for f in kept["feedback"]] == ["req-00413"]
    assert store.delete_before(cutoff) == 0
    assert body_count(url) == 3  # the bodies went with their traces
    if store.dialect == "postgresql":
        names = partitions(url)
        days = [partition_name(day0 + d * DAY) for d in range(5)]
        assert not set(days[:3]) & names  # dropped whole
        assert {days[3], days[4], "traces_default"} <= names
    else:
        check = sqlite3.connect(url.removeprefix("sqlite:///"))
        check.execute("INSERT INTO trace_text(trace_text) VALUES ('integrity-check')")
        check.close()


# --------------------------------------------------------------------- partitions (pg)
def test_partitions_are_created_ahead_and_on_demand(fresh_pg_url: str, tmp_path: Path) -> None:
    fresh_url = fresh_pg_url
    store = open_store(fresh_url, tmp_path)
    try:
        now = time.time()
        ahead = {partition_name(now + d * DAY) for d in range(3)}
        assert ahead <= partitions(fresh_url)

        past, future = 1_577_880_000.0, 1_893_456_000.0 + 7 * 3600  # 2020-01-01, 2030-01-01
        # a row that reached the default partition (no partition for its day yet) ...
        psql(fresh_url, "INSERT INTO traces (id, ts) VALUES ('stray', %s)", (past + 60,))
        assert psql(fresh_url, "SELECT id FROM traces_default") == [("stray",)]
        assert store.insert_traces([record(1, ts=past), record(2, ts=future)]) == 2
        # ... moves into the day's partition when the store creates it
        assert {partition_name(past), partition_name(future)} <= partitions(fresh_url)
        assert psql(fresh_url, "SELECT count(*) FROM traces_default") == [(0,)]
        assert psql(fresh_url, f"SELECT id FROM {partition_name(past)} ORDER BY id") == [
            ("req-00001",), ("stray",)]

        # a partition dropped behind the store's back, and no default to catch the rows:
        # the insert fails, the store re-reads the catalog, creates the partition, retries
        psql(fresh_url, f"DROP TABLE {partition_name(future)}")
        psql(fresh_url, "DROP TABLE traces_default")
        assert store.insert_traces([record(3, ts=future + 60)]) == 1
        retried = store.get_trace("req-00003")
        assert retried is not None
        assert retried["input"] == record(3)["input"]  # the retry wrote the same values
        assert partition_name(future) in partitions(fresh_url)
    finally:
        store.close()


def test_text_index_pending_lists_of_past_days_are_merged(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    """GIN queues new entries in a pending list that every search reads; only VACUUM or
    the store merges one below its limit. A batch of a later day merges the days before."""
    day0 = math.floor(T0 / DAY) * DAY

    def pending_pages(day: float) -> int:  # merges it too: call once per partition
        name = "trace_bodies" + partition_name(day).removeprefix("traces")
        index = psql(fresh_pg_url, "SELECT i.indexrelid::regclass::text FROM pg_index i "
                     "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                     "WHERE i.indrelid = %s::regclass AND a.amname = 'gin'", (name,))[0][0]
        return int(psql(fresh_pg_url, "SELECT gin_clean_pending_list(%s::regclass)",
                        (index,))[0][0])

    with open_store(fresh_pg_url, tmp_path) as store:
        store.insert_traces([record(i, ts=day0 + 60 + i) for i in range(20)])
        store.insert_traces([record(100 + i, ts=day0 + DAY + 60 + i) for i in range(20)])
        store.insert_traces([record(200 + i, ts=day0 + 2 * DAY + 60 + i) for i in range(20)])
        assert pending_pages(day0) == 0  # merged by the store
        assert pending_pages(day0 + DAY) == 0
        assert pending_pages(day0 + 2 * DAY) > 0  # today's: still pending
        rows, _ = store.list_traces(TraceQuery(text="question"), limit=100)
        assert len(rows) == 60


def test_processes_racing_for_a_new_partition_create_it_once(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    fresh_url = fresh_pg_url
    stores = [open_store(fresh_url, tmp_path, pool_size=2) for _ in range(4)]  # like 4 workers
    day = 1_600_000_000.0
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def write(n: int, s: Store) -> None:
        try:
            barrier.wait()
            s.insert_traces([record(n * 100 + k, ts=day + n * 10 + k) for k in range(10)])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n, s)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert stores[0].count_traces() == 40
        assert partition_name(day) in partitions(fresh_url)
        assert psql(fresh_url, "SELECT count(*) FROM traces_default") == [(0,)]
    finally:
        for s in stores:
            s.close()


# ------------------------------------------------------------------------ unavailability
def test_store_unavailable_when_postgres_goes_down_and_back(tmp_path: Path) -> None:
    with throwaway_postgres() as server:
        store = open_store(server.url(), tmp_path)
        try:
            assert store.insert_traces([record(1)]) == 1
            store.upsert_feedback({"request_id": "req-00001", "value": "up"})
            server.stop()
            calls: list[Callable[[], object]] = [
                store.ping, lambda: store.insert_traces([record(2)]),
                lambda: store.get_trace("req-00001"), lambda: store.list_traces(TraceQuery()),
                lambda: store.stats(T0, T0 + 60, None, []), store.count_traces,
                lambda: store.upsert_feedback({"request_id": "req-00001", "value": "down"}),
                lambda: store.delete_before(T0),
            ]
            for call in calls:
                with pytest.raises(StoreUnavailable) as caught:
                    call()
                assert caught.value.__cause__ is not None
            with pytest.raises(StoreUnavailable):
                open_store(server.url(), tmp_path)

            server.start()  # same port: the pool's stale connections are replaced
            store.ping()
            assert store.insert_traces([record(2)]) == 1
            assert store.count_traces() == 2
        finally:
            store.close()


def test_store_unavailable_when_sqlite_is_locked_or_cannot_be_opened(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(StoreUnavailable):
        open_store(None, not_a_dir / "home")
    with pytest.raises(StoreUnavailable):
        open_store(f"sqlite:///{not_a_dir}/bastion.db", tmp_path)

    store = open_store(None, tmp_path / "home", busy_timeout_ms=50)
    try:
        store.insert_traces([record(1)])
        holder = sqlite3.connect(tmp_path / "home" / "bastion.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
        try:
            for call in (lambda: store.insert_traces([record(2)]),
                         lambda: store.upsert_feedback({"request_id": "req-00001", "value": "up"}),
                         lambda: store.delete_before(T0 + 10)):
                with pytest.raises(StoreUnavailable, match="locked"):
                    call()
            assert store.count_traces() == 1  # WAL: readers go on
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert store.insert_traces([record(2)]) == 1
    finally:
        store.close()


# ------------------------------------------------------------------------------ threads
def test_threads_share_one_store(store: Store) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for b in range(5):
                store.insert_traces([record(n * 1000 + b * 50 + k) for k in range(50)])
                store.list_traces(TraceQuery(model="alpha"), limit=20)
                store.upsert_feedback({"request_id": f"req-{n:05d}", "score": b})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count_traces() == 4 * 5 * 50


def test_derived_columns_of_a_record() -> None:
    row = to_row(record(3, guards=[{"action": "flag"}, {"action": "BLOCK"}, "junk"],
                        input=[{"role": "system", "content": "sys"},
                               {"role": "user", "content": "first"},
                               {"role": "assistant", "content": "reply"},
                               {"role": "user", "content": [{"type": "text", "text": "second"}]}]))
    assert row["guard_action"] == "block"
    assert row["preview_in"] == "second"
    assert row["search"] == "sys first reply second\nAnswer number 3"
    assert to_row(record(4, input=None, output=None))["search"] is None
