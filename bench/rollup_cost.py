#!/usr/bin/env python3
"""What the stats' rollups cost the ingest: the version bumps of late inserts, and
rolling half hours up.

    .venv/bin/python bench/rollup_cost.py                     # SQLite
    .venv/bin/python bench/rollup_cost.py --engine postgres --rounds 5

Traces in the open half hour (the gateway's case) touch no rollup table. Late ones (a
spool replayed after an outage, or this bench's records, spread over the past 7 days)
bump their half hours' versions in the insert's transaction: that is the cost measured.
Each round makes two fresh stores and inserts the same ``--traces`` records (those of
``bench/store_ingest.py``) in batches of ``--batch``: once as the store does, once with
the bump turned off (a diagnostic: the bench replaces ``rollups.bump_closed`` with a
no-op). Then it rolls the first store's half hours up with ``Store.roll_up`` and times
that. The report: traces/s of each insert, their ratio per round (same run), and rolled
traces/s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_ingest import make_record, postgres_database

from bastion.store import Store, open_store, rollups


def records(n: int, start: float, span: float) -> list[dict[str, Any]]:
    rng = random.Random(5)
    return [make_record(rng, start + span * i / n, i) for i in range(n)]


def insert_rate(store: Store, rows: list[dict[str, Any]], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        store.insert_traces(rows[i:i + batch])
    return len(rows) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--traces", type=int, default=30_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    now = time.time()
    late = records(args.traces, now - 7 * 86400, 7 * 86400 - 3600)  # closed half hours
    ratios, rolled = [], []
    print(f"{args.engine}: {args.traces:,} traces a store, batches of {args.batch}")
    real_bump = rollups.bump_closed
    for r in range(args.rounds):
        rates = {}
        for name in ("bumps", "no bumps"):
            rollups.bump_closed = real_bump if name == "bumps" else (lambda *a: None)
            with tempfile.TemporaryDirectory(prefix="bastion-rollup-bench-") as tmp, \
                    opened(args, Path(tmp)) as store:
                rates[name] = insert_rate(store, late, args.batch)
                if name == "bumps":
                    rolled.append(roll_rate(store))
        rollups.bump_closed = real_bump
        ratios.append(rates["bumps"] / rates["no bumps"])
        print(f"round {r + 1}: with bumps {rates['bumps']:,.0f}/s, without "
              f"{rates['no bumps']:,.0f}/s, ratio {ratios[-1]:.3f}; "
              f"rolled {rolled[-1]:,.0f} traces/s", flush=True)
    print(f"insert rate with / without bumps, median of {args.rounds}: "
          f"{statistics.median(ratios):.3f}; rolling, median: "
          f"{statistics.median(rolled):,.0f} traces/s")


@contextmanager
def opened(args: argparse.Namespace, home: Path) -> Iterator[Store]:
    if args.engine == "sqlite":
        store = open_store(None, home)
        try:
            yield store
        finally:
            store.close()
        return
    with postgres_database(args.pg) as url:
        store = open_store(url, home)
        try:
            yield store
        finally:
            store.close()


def roll_rate(store: Store) -> float:
    total = store.count_traces()
    t0 = time.perf_counter()
    while store.roll_up(now=time.time(), budget_s=60):
        pass
    return total / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
