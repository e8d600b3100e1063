#!/usr/bin/env python3
"""What a budgeted request pays when budgets are shared through Redis: the reservation's
round trip (one pipeline, batched with the other requests in flight) and the settlement
(queued, sent in the background), against the in-memory ledger.

    .venv/bin/python bench/shared_budgets.py                      # Redis at 127.0.0.1:6379
    .venv/bin/python bench/shared_budgets.py --redis redis://h:6379/0 --concurrency 256

Each run uses key names of its own (deleted afterwards). ``sequential``: one request at a
time (reserve, then settle). ``concurrent``: ``--concurrency`` tasks doing the same on one
event loop for ``--seconds``, as one process's requests in flight. Latencies are of
``SharedLedger.reserve`` (what a request waits for); settlements are counted once sent.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bastion.config_access import Budget, BudgetSettings
from bastion.governance.budgets import Account, Budgets, window
from bastion.governance.shared_budgets import SharedLedger
from bastion.observe.pricing import Price, PriceBook


def accounts(n: int) -> list[Account]:
    start, end = window("monthly", time.time())
    rule = Budget(limit=1e12, period="monthly")
    return [Account(("key", "team", "user")[i], f"bench-{i}", rule, start, end)
            for i in range(n)]


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1e6


async def sequential(ledger: SharedLedger, n: int, per_request: int) -> list[float]:
    mine = accounts(per_request)
    took = []
    for _ in range(n):
        t = time.perf_counter()
        hold = await ledger.reserve(mine, 0.01)
        took.append(time.perf_counter() - t)
        ledger.settle(hold, 0.005)
    await ledger.drained()
    return took


async def concurrent(ledger: SharedLedger, tasks: int, seconds: float, per_request: int
                     ) -> tuple[list[float], float]:
    mine = accounts(per_request)
    took: list[float] = []
    end = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < end:
            t = time.perf_counter()
            hold = await ledger.reserve(mine, 0.01)
            took.append(time.perf_counter() - t)
            await asyncio.sleep(0)  # the request's upstream call, here none
            ledger.settle(hold, 0.005)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(tasks)))
    await ledger.drained()
    return took, time.perf_counter() - start


def in_memory(n: int) -> float:
    b = Budgets()
    prices = PriceBook({"m": Price(1.0, 2.0)})
    b.configure({}, {}, prices, {"m": Price(1.0, 2.0)}, 4096, "USD")
    b.loaded = True
    rule = Budget(limit=1e12, period="monthly")
    body = {"model": "m", "max_tokens": 100}
    t = time.perf_counter()
    for _ in range(n):
        hold = b.reserve("k", rule, None, None, "m", body, 400)
        assert hold is not None
        b.settle(hold, 0.005)
    return (time.perf_counter() - t) / n * 1e6


async def run(args: argparse.Namespace) -> None:
    prefix = f"bastion:bench:{uuid.uuid4().hex}:budget:"
    ledger = SharedLedger(BudgetSettings(timeout=2.0), args.redis, prefix=prefix)
    await ledger.seed([])
    try:
        for per_request in (1, 3):
            took = await sequential(ledger, args.requests, per_request)
            print(f"sequential, {per_request} budget(s) a request: reserve median "
                  f"{statistics.median(took) * 1e6:.0f} us, p99 {pct(took, 0.99):.0f} us "
                  f"({args.requests} requests)")
            took, elapsed = await concurrent(ledger, args.concurrency, args.seconds,
                                             per_request)
            print(f"concurrent c={args.concurrency}, {per_request} budget(s): "
                  f"{len(took) / elapsed:,.0f} requests/s, reserve median "
                  f"{statistics.median(took) * 1e6:.0f} us, p99 {pct(took, 0.99):.0f} us")
        print(f"in memory, 1 budget: reserve + settle {in_memory(200_000):.2f} us")
    finally:
        await ledger.close()
        client = redis.Redis.from_url(args.redis)
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
