#!/usr/bin/env python3
"""A noisy tenant overloads a model; does a quiet one still get answered promptly? (same run)

    .peerbench/venv/bin/python bench/admission_fairness.py                 # 15 s per mode
    .peerbench/venv/bin/python bench/admission_fairness.py --noisy-rate 150 --quiet-rate 10

One fake OpenAI upstream (shared fake_upstream.py, FAKE_DELAY_MS=--delay-ms) behind one
deployment with ``max_concurrency`` (capacity ≈ concurrency / delay req/s). A "noisy" tenant
sends more than that capacity, open loop, while a "quiet" tenant sends a trickle; both send
``x-bastion-tenant``. Three gateways in turn, same load:

- ``fifo``: ``admission.tenant_header: null`` — every request is one tenant: first come,
  first served (what a plain bounded queue does);
- ``fair``: tenants share the model equally (start-time fair queueing);
- ``priority``: as fair, and the quiet tenant's requests ask for ``x-bastion-priority: 0``.

Reports, per tenant and mode: requests, success %, p50/p99 latency from the *scheduled* send
time (no coordinated omission), and the quiet tenant's p50/p99 as a ratio of fifo's.
Loopback only; every process is stopped by its own process group.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos import Proc, free_port, pct, start_bastion, start_upstream, wait_http


def write_config(path: Path, upstream: int, concurrency: int, mode: str) -> None:
    cfg: dict[str, Any] = {
        "server": {"host": "127.0.0.1"},
        "models": [{
            "name": "up1", "alias": "chat", "backend": "openai",
            "base_url": f"http://127.0.0.1:{upstream}/v1", "upstream_model": "fake-model",
            "max_concurrency": concurrency, "read_timeout": 30.0,
        }],
        "routing": {"default": {"queue_wait": 30.0, "queue_size": 100000}},
        "admission": {"tenant_header": None} if mode == "fifo" else {},
    }
    path.write_text(json.dumps(cfg, indent=2))


async def drive(base: str, rates: dict[str, float], duration: float,
                headers: dict[str, dict[str, str]]) -> dict[str, list[tuple[bool, float]]]:
    url = base + "/v1/chat/completions"
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 16}).encode()
    out: dict[str, list[tuple[bool, float]]] = {t: [] for t in rates}
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:

        async def one(tenant: str, sched: float) -> None:
            ok = False
            try:
                async with session.post(url, data=body, headers={
                    "content-type": "application/json", **headers[tenant]}) as r:
                    ok = r.status == 200 and b'"choices"' in await r.read()
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            out[tenant].append((ok, time.monotonic() - sched))

        t0 = time.monotonic() + 0.2
        plan = sorted((t0 + i / rate, tenant) for tenant, rate in rates.items()
                      for i in range(int(rate * duration)))
        tasks = []
        for sched, tenant in plan:
            delay = sched - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(tenant, sched)))
        await asyncio.gather(*tasks)
    return out


def summarize(recs: list[tuple[bool, float]]) -> dict[str, Any]:
    lat = [d * 1000 for ok, d in recs if ok]
    ok = sum(ok for ok, _ in recs)
    return {"requests": len(recs), "success_pct": round(100 * ok / max(len(recs), 1), 2),
            "p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--delay-ms", type=float, default=40.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--noisy-rate", type=float, default=130.0)
    ap.add_argument("--quiet-rate", type=float, default=10.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.duration > 40:
        ap.error("keep --duration <= 40 s (three modes)")
    tmp = Path(tempfile.mkdtemp(prefix="bastion-fairness-"))
    up_port = free_port()
    upstream = start_upstream(up_port, args.delay_ms, tmp / "up.log")
    results: dict[str, dict[str, Any]] = {}
    try:
        wait_http(f"http://127.0.0.1:{up_port}/health")
        for mode in ("fifo", "fair", "priority"):
            cfg = tmp / f"{mode}.yaml"
            write_config(cfg, up_port, args.concurrency, mode)
            port = free_port()
            gw: Proc = start_bastion(cfg, port, tmp / "home", tmp / f"bastion-{mode}.log")
            try:
                base = f"http://127.0.0.1:{port}"
                wait_http(base + "/health/ready", 60)
                headers = {"noisy": {"x-bastion-tenant": "noisy"},
                           "quiet": {"x-bastion-tenant": "quiet"}}
                if mode == "priority":
                    headers["quiet"]["x-bastion-priority"] = "0"
                recs = asyncio.run(drive(base, {"noisy": args.noisy_rate,
                                                "quiet": args.quiet_rate},
                                         args.duration, headers))
            finally:
                gw.stop()
            results[mode] = {t: summarize(r) for t, r in recs.items()}
    finally:
        upstream.stop()

    capacity = args.concurrency * 1000 / args.delay_ms
    print(f"admission_fairness: capacity ~{capacity:.0f} req/s ({args.concurrency} x "
          f"{args.delay_ms:g} ms); noisy {args.noisy_rate:g} req/s + quiet {args.quiet_rate:g} "
          f"req/s for {args.duration:g} s per mode (open loop, same run)")
    print(f"{'mode':<9} {'tenant':<6} {'req':>5} {'ok%':>7} {'p50 ms':>9} {'p99 ms':>9} "
          f"{'p50/p99 vs fifo':>16}")
    ref = results["fifo"]["quiet"]
    for mode, per in results.items():
        for tenant, s in per.items():
            ratio = (f"{s['p50_ms'] / ref['p50_ms']:.3f}/{s['p99_ms'] / ref['p99_ms']:.3f}"
                     if tenant == "quiet" else "")
            print(f"{mode:<9} {tenant:<6} {s['requests']:>5} {s['success_pct']:>7} "
                  f"{s['p50_ms']:>9} {s['p99_ms']:>9} {ratio:>16}")
    if args.json:
        args.json.write_text(json.dumps({"config": vars(args) | {"json": None},
                                         "results": results}, indent=2))
    print(f"logs: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
