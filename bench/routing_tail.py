#!/usr/bin/env python3
"""Tail latency by routing strategy when one of two upstreams is slower (same run).

    .peerbench/venv/bin/python bench/routing_tail.py                    # 100 req/s, 20 s each
    .peerbench/venv/bin/python bench/routing_tail.py --fast-ms 5 --slow-ms 50 --rate 100

Starts two fake OpenAI upstreams (shared fake_upstream.py; one with FAKE_DELAY_MS=--fast-ms,
one with --slow-ms), then for each strategy in turn (round_robin, least_in_flight, latency
by default) starts a fresh ``bastion serve`` with both as deployments of alias ``chat``,
drives the same open-loop load, and stops it. Reports p50/p95/p99 per strategy, the share
of requests each upstream served, and ratios against round_robin from the same run.
Helpers (process groups, config, open-loop client) come from bench/chaos.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos import (
    Proc,
    free_port,
    open_loop,
    start_bastion,
    start_upstream,
    summary,
    wait_http,
    write_config,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--fast-ms", type=float, default=5.0)
    ap.add_argument("--slow-ms", type=float, default=50.0)
    ap.add_argument("--strategies", default="round_robin,least_in_flight,latency")
    ap.add_argument("--json", type=Path, help="write the raw summary here")
    args = ap.parse_args()
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.duration * len(strategies) > 120:
        ap.error("keep duration x strategies <= 120 s")

    tmp = Path(tempfile.mkdtemp(prefix="bastion-routing-tail-"))
    pf, ps = free_port(), free_port()
    ups: list[Proc] = []
    results: dict[str, Any] = {}
    try:
        ups.append(start_upstream(pf, args.fast_ms, tmp / "fast.log"))
        ups.append(start_upstream(ps, args.slow_ms, tmp / "slow.log"))
        wait_http(f"http://127.0.0.1:{pf}/health")
        wait_http(f"http://127.0.0.1:{ps}/health")
        for strategy in strategies:
            cfg = tmp / f"{strategy}.yaml"
            # up1 = fast, up2 = slow
            write_config(cfg, [pf, ps], strategy)
            port = free_port()
            gw = start_bastion(cfg, port, tmp / "home", tmp / f"bastion-{strategy}.log")
            try:
                base = f"http://127.0.0.1:{port}"
                wait_http(base + "/health/ready", 60)
                poll: list[tuple[float, list[dict[str, Any]]]] = []
                res = asyncio.run(open_loop(base, args.rate, args.duration, poll=poll))
            finally:
                gw.stop()
            s = summary(res.recs)
            final = {d["name"]: d for d in poll[-1][1]} if poll else {}
            served = {n: final[n]["successes"] for n in final}
            total = sum(served.values()) or 1
            s["fast_share_pct"] = round(100 * served.get("up1", 0) / total, 1)
            s["slow_share_pct"] = round(100 * served.get("up2", 0) / total, 1)
            results[strategy] = s
    finally:
        for p in ups:
            p.stop()

    ref = results.get("round_robin")
    print(f"routing_tail: fast upstream {args.fast_ms:g} ms, slow upstream {args.slow_ms:g} ms, "
          f"{args.rate:g} req/s x {args.duration:g} s per strategy (open loop, same run)")
    print(f"{'strategy':<16} {'req':>6} {'ok%':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'fast/slow share %':>18} {'p50/p95/p99 vs RR':>20}")
    for name, s in results.items():
        if ref:
            ratio = "/".join(f"{s[k] / ref[k]:.2f}" for k in ("p50_ms", "p95_ms", "p99_ms"))
        else:
            ratio = "-"
        print(f"{name:<16} {s['requests']:>6} {s['success_pct']:>7} {s['p50_ms']:>8} "
              f"{s['p95_ms']:>8} {s['p99_ms']:>8} "
              f"{s['fast_share_pct']:>8}/{s['slow_share_pct']:<9} {ratio:>20}")
    if args.json:
        args.json.write_text(json.dumps({"config": vars(args) | {"json": None},
                                         "results": results}, indent=2))
    print(f"logs: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
