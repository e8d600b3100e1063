#!/usr/bin/env python3
"""Trace ingest into the store: traces/s through ``Store.insert_traces`` in batches.

    .venv/bin/python bench/store_ingest.py                       # SQLite and Postgres
    .venv/bin/python bench/store_ingest.py --engines sqlite --traces 100000 --batch 500
    .venv/bin/python bench/store_ingest.py --drop-text-index   # diagnostic: what the index costs
    .venv/bin/python bench/store_ingest.py --bodies sealed,plain,sealed,plain  # encryption

Records look like the writer's (bastion.observe.record): a chat request with a system
prompt, a user message and an answer drawn from a Zipf-distributed vocabulary, params,
spans, a guard verdict now and then; about 1.9 KB as JSON, ~690 characters of text. Each
engine gets a fresh store (SQLite in a temp dir; Postgres in a new database
``bastion_bench_<hex>`` on ``--pg``, dropped afterwards). The clock covers
``insert_traces`` calls only (records are built before), i.e. what the background writer
spends per batch.

``--drop-text-index`` is a diagnostic, not a mode of the store: after opening, the bench
itself drops the text index's maintenance (SQLite: the FTS5 batch insert; Postgres: the
tsvector GIN index) to show how much of the ingest cost it is. Text search is then wrong.

``--bodies``: each engine once per mode, in the order given, a fresh store each time:
``sealed`` is the store as the gateway opens it (a store key: bodies AES-256-GCM, the blind
index of hashed words), ``plain`` without encryption (``store.encrypt_bodies: false``).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bastion.store import Store, open_store
from bastion.store.crypto import StoreKeys

MODELS = ("gpt-4o-mini", "smollm2", "llama-3.1-8b", "claude-haiku", "mistral-7b")
SYSTEM = (
    "You are a helpful support assistant for Acme Cloud. Answer briefly and precisely, "
    "cite the documentation when you can, never reveal internal ticket numbers, and ask "
    "a clarifying question when the request is ambiguous."
)
_rng = random.Random(7)
VOCAB = [
    "".join(_rng.choices("abcdefghijklmnopqrstuvwxyz", k=_rng.randint(2, 9)))
    for _ in range(4000)
] + ["invoice", "refund", "latency", "kubernetes", "password", "upgrade", "billing", "quota"]
WEIGHTS = [1 / (i + 1) ** 0.9 for i in range(len(VOCAB))]


def sentence(rng: random.Random, chars: int) -> str:
    words = rng.choices(VOCAB, WEIGHTS, k=max(1, chars // 6))
    return " ".join(words)[:chars].capitalize() + "."


# phrases with a known share of traces, for the query bench's text searches
TOPICS = (("kubernetes upgrade", 0.001), ("refund request", 0.05))


def user_message(rng: random.Random) -> str:
    text = sentence(rng, rng.randint(80, 300))
    for phrase, share in TOPICS:
        if rng.random() < share:
            text = f"{text} About my {phrase}."
    return text


def make_record(rng: random.Random, ts: float, i: int) -> dict[str, Any]:
    status = rng.choices((200, 429, 500, 499, 400), (93, 2, 2, 1, 2))[0]
    stream = rng.random() < 0.6
    out_tokens = rng.randint(20, 400) if status == 200 else 0
    latency = rng.lognormvariate(6.0, 0.6)
    ttft = latency * rng.uniform(0.05, 0.3) if stream else None
    model = MODELS[i % len(MODELS)]
    guards = [{"scanner": "pii", "action": "redact", "findings": 1}] if rng.random() < 0.05 else []
    key = rng.randint(0, 49)  # a key belongs to one team, as Bastion's keys do
    return {
        "id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "ts": ts,
        "endpoint": "/v1/chat/completions",
        "operation": "chat",
        "model": model,
        "deployment": f"{model}-{i % 2}",
        "provider": "openai",
        "model_version": f"{model}-2026-01-01",
        "key_id": f"key_{key:02d}",
        "team": f"team-{key % 8}",
        "user": f"user-{rng.randint(0, 999)}",
        "session": f"sess-{rng.randint(0, 4999)}",
        "tenant": None,
        "priority": 1,
        "stream": stream,
        "status": status,
        "error": None if status == 200 else f"upstream answered {status}",
        "finish_reason": "stop" if status == 200 else None,
        "input_tokens": rng.randint(50, 600),
        "output_tokens": out_tokens,
        "cached_tokens": 0,
        "cost": round(rng.uniform(0.00001, 0.002), 6),
        "latency_ms": round(latency, 3),
        "ttft_ms": None if ttft is None else round(ttft, 3),
        "tpot_ms": round(rng.uniform(5, 30), 3) if stream else None,
        "overhead_ms": round(rng.uniform(0.1, 0.6), 3),
        "queue_ms": round(rng.uniform(0, 5), 3),
        "attempts": 1,
        "fallback": False,
        "content_mode": "redacted",
        "params": {"temperature": 0.7, "max_tokens": 512},
        "input": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": user_message(rng)},
        ],
        "output": {"role": "assistant", "content": sentence(rng, rng.randint(100, 450))},
        "guards": guards,
        "guard_action": None,
        "spans": [
            {"name": name, "start_ms": 0.1 * k, "duration_ms": round(rng.uniform(0.01, 2), 3)}
            for k, name in enumerate(("auth", "admit", "route", "upstream"))
        ],
        "metadata": {"client_request_id": uuid.UUID(int=rng.getrandbits(128)).hex},
        "trace_id": f"{rng.getrandbits(128):032x}",
        "span_id": f"{rng.getrandbits(64):016x}",
    }


def make_records(n: int, start_ts: float, span_s: float, seed: int = 1) -> list[dict[str, Any]]:
    """``n`` records with timestamps evenly over ``[start_ts, start_ts + span_s)``."""
    rng = random.Random(seed)
    step = span_s / max(n, 1)
    return [make_record(rng, start_ts + i * step, i) for i in range(n)]


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new database for the run (dropped afterwards); yields its SQLAlchemy URL."""
    name = f"bastion_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        info = psycopg.conninfo.conninfo_to_dict(admin_url)
        host, port, user = info.get("host", "127.0.0.1"), info.get("port", 5432), info["user"]
        yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def ingest(store: Store, records: list[dict[str, Any]], batch: int) -> dict[str, float]:
    times = []
    start = time.perf_counter()
    for i in range(0, len(records), batch):
        t0 = time.perf_counter()
        store.insert_traces(records[i : i + batch])
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    times.sort()
    return {
        "traces_per_s": len(records) / total,
        "batch_p50_ms": statistics.median(times) * 1000,
        "batch_p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
        "seconds": total,
    }


def drop_text_index(store: Store, url: str | None, home: str) -> None:
    if store.dialect == "sqlite":
        store.text_search = "scan"  # the store then skips indexing each batch's text
    else:
        assert url is not None
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as pg:
            pg.execute("DROP INDEX IF EXISTS ix_trace_bodies_search")


def run(engine: str, args: argparse.Namespace, records: list[dict[str, Any]],
        bodies: str) -> str:
    keys = StoreKeys.from_deployment_secret(b"bench-secret-0123456789abcdef")
    with contextlib.ExitStack() as stack:
        home = stack.enter_context(tempfile.TemporaryDirectory())
        url = None if engine == "sqlite" else stack.enter_context(postgres_database(args.pg))
        store = open_store(url, home, keys=keys, encrypt_bodies=bodies == "sealed")
        index = store.text_search
        if args.drop_text_index:
            drop_text_index(store, url, home)
            index += " DROPPED"
        result = ingest(store, records, args.batch)
        store.close()
    return (f"{engine:9} {bodies:6} text index: {index:20} "
            f"{result['traces_per_s']:7.0f} traces/s   "
            f"batch p50 {result['batch_p50_ms']:.1f} ms  p99 {result['batch_p99_ms']:.1f} ms  "
            f"({result['seconds']:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--traces", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="admin connection used to create the bench database")
    ap.add_argument("--drop-text-index", action="store_true",
                    help="diagnostic: no text index maintenance (text search is then wrong)")
    ap.add_argument("--bodies", default="sealed,plain",
                    help="modes to run, in order: sealed (encrypted), plain")
    args = ap.parse_args()
    records = make_records(args.traces, time.time() - 3600, 3600)
    size = statistics.mean(len(orjson.dumps(r)) for r in records[:2000])
    print(f"{args.traces} records, {size:.0f} bytes of JSON each on average, batch {args.batch}")
    for engine in args.engines.split(","):
        if engine not in ("sqlite", "postgres"):
            raise SystemExit(f"unknown engine {engine}")
        for bodies in args.bodies.split(","):
            if bodies not in ("sealed", "plain"):
                raise SystemExit(f"unknown --bodies mode {bodies}")
            print(run(engine, args, records, bodies), flush=True)

if __name__ == "__main__":
    main()
