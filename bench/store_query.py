#!/usr/bin/env python3
"""Trace queries on a large store: list pages, filters, text search, deep cursors, by id.

    .venv/bin/python bench/store_query.py                         # SQLite, 1,000,000 traces
    .venv/bin/python bench/store_query.py --engine postgres --traces 1000000
    .venv/bin/python bench/store_query.py --runs 9 --dir /var/tmp/bastion-bench

The fill goes through ``Store.insert_traces`` (the real schema and indexes, text index
included) with the records of ``bench/store_ingest.py`` (~1.9 KB, spread evenly over the
last 7 days), 1,000 per call. It is kept: SQLite in ``--dir`` (a sidecar ``fill.json``
records what is there), Postgres in the database ``--pg-database`` (``bastion_bench_query``)
on ``--pg`` (created when missing, never dropped; ``fill-<database>.json`` in ``--dir``), so
the next run only queries. A fill made by an older schema is migrated when the store
opens. Each query runs ``--runs`` times after one warm-up; the report is the median (and
min / max) in ms.

Text searches: "kubernetes upgrade" is in ~0.1 % of the traces, "refund request" in ~5 %,
"xqzvw" in none (the worst case for a scan), "miemgbsxl" (a rare word of the vocabulary) in
~0.3 %: between what reads the matches and what walks newest first, the costliest share.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from store_ingest import make_record

from bastion.store import Store, TraceQuery, open_store
from bastion.store.query import encode_cursor

SPAN_S = 7 * 86_400.0
FILL_BATCH = 1000
PG_DATABASE = "bastion_bench_query"


def fill(store: Store, n: int, start: float, state: Path | None) -> list[list[Any]]:
    """Writes n records; returns samples [index, ts, id] (every 1,000th)."""
    rng = random.Random(11)
    step = SPAN_S / n
    samples: list[list[Any]] = []
    began = time.perf_counter()
    for first in range(0, n, FILL_BATCH):
        last = min(n, first + FILL_BATCH)
        batch = [make_record(rng, start + i * step, i) for i in range(first, last)]
        samples += [[first + k, r["ts"], r["id"]] for k, r in enumerate(batch)
                    if (first + k) % 1000 == 0]
        store.insert_traces(batch)
        done = first + len(batch)
        if done % 100_000 == 0 or done == n:
            rate = done / (time.perf_counter() - began)
            print(f"  filled {done:>9,} ({rate:,.0f}/s)", flush=True)
    if state is not None:
        state.write_text(json.dumps({"n": n, "start": start, "samples": samples}))
    return samples


def open_filled(args: argparse.Namespace) -> tuple[Store, list[list[Any]]]:
    if args.engine == "sqlite":
        directory = Path(args.dir)
        state = directory / "fill.json"
        store = open_store(None, directory)
        filled = state.exists() and json.loads(state.read_text())["n"] == args.traces
        if filled and store.count_traces() == args.traces:
            return store, json.loads(state.read_text())["samples"]
        if store.count_traces():
            raise SystemExit(f"{directory} holds another fill: remove it first")
        print(f"filling {args.traces:,} traces into {directory} ...", flush=True)
        return store, fill(store, args.traces, time.time() - SPAN_S, state)
    with psycopg.connect(args.pg, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (args.pg_database,))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.pg_database)))
    info = psycopg.conninfo.conninfo_to_dict(args.pg)
    url = f"postgresql+psycopg://{info['user']}@{info.get('host', '127.0.0.1')}:" \
          f"{info.get('port', 5432)}/{args.pg_database}"
    store = open_store(url, ".", partition_days=1)
    state = Path(args.dir) / f"fill-{args.pg_database}.json"
    if state.exists() and store.count_traces() == args.traces:
        return store, json.loads(state.read_text())["samples"]
    if store.count_traces():
        raise SystemExit(f"database {args.pg_database} holds another fill: drop it first")
    state.parent.mkdir(parents=True, exist_ok=True)
    print(f"filling {args.traces:,} traces into {args.pg_database} ...", flush=True)
    return store, fill(store, args.traces, time.time() - SPAN_S, state)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, float, Any]:
    result = fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times), max(times), result


def queries(store: Store, samples: list[list[Any]]) -> list[tuple[str, Callable[[], Any]]]:
    middle = samples[len(samples) // 2]
    deep = encode_cursor(middle[1], middle[2])
    ids = itertools.cycle([s[2] for s in random.Random(3).sample(samples, min(50, len(samples)))])
    newest = samples[-1][1]
    halfway = f"{middle[0]:,}"

    def by_id() -> bool:
        return store.get_trace(next(ids)) is not None  # a different trace each run

    return [
        ("list_traces: first page, no filter", lambda: store.list_traces(TraceQuery())),
        ("list_traces: first page, model", lambda: store.list_traces(TraceQuery(model="smollm2"))),
        ("list_traces: first page, status 5xx", lambda: store.list_traces(
            TraceQuery(status_class="5xx"))),
        ("list_traces: text 'kubernetes upgrade' (0.1 %)", lambda: store.list_traces(
            TraceQuery(text="kubernetes upgrade"))),
        ("list_traces: text 'refund request' (5 %)", lambda: store.list_traces(
            TraceQuery(text="refund request"))),
        ("list_traces: text 'xqzvw' (no match)", lambda: store.list_traces(
            TraceQuery(text="xqzvw"))),
        ("list_traces: text 'miemgbsxl' (0.3 %)", lambda: store.list_traces(
            TraceQuery(text="miemgbsxl"))),
        (f"list_traces: cursor page {halfway} rows deep", lambda: store.list_traces(
            TraceQuery(), deep)),
        ("list_traces: cursor deep, model", lambda: store.list_traces(
            TraceQuery(model="smollm2"), deep)),
        ("get_trace by id", by_id),
        ("stats: last hour, 1-min buckets, by model", lambda: store.stats(
            newest - 3600, newest + 1, 60, ["model"])),
        ("stats: last 24 h, no groups", lambda: store.stats(newest - 86_400, newest + 1, None, [])),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--traces", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--dir", default="/var/tmp/bastion-bench-store")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--pg-database", default=PG_DATABASE,
                    help="the fill's database (created when missing, never dropped)")
    args = ap.parse_args()
    store, samples = open_filled(args)
    print(f"{args.engine}: {store.count_traces():,} traces, text search: {store.text_search}, "
          f"median of {args.runs} runs")
    print(f"{'query':50} {'median ms':>10} {'min':>8} {'max':>8}  result")
    for name, fn in queries(store, samples):
        median, low, high, result = timed(fn, args.runs)
        if isinstance(result, tuple):
            shown = f"{len(result[0])} rows"
        elif isinstance(result, dict):
            shown = f"{result['totals']['requests']} requests"
        else:
            shown = str(result)
        print(f"{name:50} {median:10.1f} {low:8.1f} {high:8.1f}  {shown}", flush=True)
    store.close()


if __name__ == "__main__":
    main()
