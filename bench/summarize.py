#!/usr/bin/env python3
"""Turn a peer-bench results.json into the ratios used in docs/benchmarks.md.

    python bench/summarize.py .peerbench/results-<ts>/results.json [--target bastion]
        [--peer litellm]

Everything is relative to baselines from the same run (the machine is noisy): added
latency = target - direct at the same percentile, throughput as a multiple of the peer's,
CPU microseconds per request = CPU% / 100 / requests per second, and the issue's targets
marked met / missed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def pick(results: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    for r in results:
        if r["name"].startswith(prefix):
            return r
    sys.exit(f"no result named {prefix}* in this file")


def us_per_req(phase: dict[str, Any]) -> float | None:
    cpu, rps = phase.get("cpu_pct"), phase.get("rps")
    if not cpu or not rps:
        return None
    return cpu / 100 / rps * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--target", default="bastion")
    ap.add_argument("--peer", default="litellm")
    a = ap.parse_args()
    with open(a.results) as fh:
        data = json.load(fh)
    res = data["results"]
    d, t = pick(res, "direct"), pick(res, a.target)
    p = next((r for r in res if r["name"].startswith(a.peer)), None)
    P = lambda r, k: r["phases"][k]  # noqa: E731
    rows: list[tuple[str, str]] = []
    verdicts: list[tuple[str, bool, str]] = []

    if "closed_c1" in t["phases"]:
        c1 = (P(t, "closed_c1")["p50_ms"] - P(d, "closed_c1")["p50_ms"],
              P(t, "closed_c1")["p99_ms"] - P(d, "closed_c1")["p99_ms"])
        rows.append(("added latency c=1 (closed loop) p50 / p99 ms",
                     f"{c1[0]:.2f} / {c1[1]:.2f}"))
        verdicts.append(("added p50 <= 1 ms at c=1", c1[0] <= 1.0, f"{c1[0]:.2f} ms"))
        verdicts.append(("added p99 <= 3 ms at c=1", c1[1] <= 3.0, f"{c1[1]:.2f} ms"))
    for k in sorted(k for k in t["phases"] if k.startswith("open_r")):
        lt, ld = P(t, k)["latency"], P(d, k)["latency"]
        rows.append((f"added latency {k[6:]} req/s open loop p50 / p95 / p99 ms",
                     " / ".join(f"{lt[q] - ld[q]:.2f}" for q in ("p50_ms", "p95_ms", "p99_ms"))))
    for c in (16, 64):
        k = f"closed_c{c}"
        if k in t["phases"]:
            line = f"{P(t, k)['rps']:,.0f} RPS"
            if p is not None:
                mult = P(t, k)["rps"] / P(p, k)["rps"]
                line += f" = {mult:,.0f}x {p['name']} ({P(p, k)['rps']:,.1f})"
                if c == 64:
                    verdicts.append(
                        ("throughput c=64 >= 100x LiteLLM", mult >= 100, f"{mult:.0f}x"))
            rows.append((f"throughput c={c}, pinned to 1 core", line))
    sk = next(k for k in t["phases"] if k.startswith("stream_open"))
    tt, td = P(t, sk)["ttft"], P(d, sk)["ttft"]
    added = [tt[q] - td[q] for q in ("p50_ms", "p95_ms", "p99_ms")]
    rows.append(("added time to first chunk (stream, open loop) p50 / p95 / p99 ms",
                 " / ".join(f"{x:.2f}" for x in added)))
    verdicts.append(("stream adds <= 1 ms to first chunk (p50)", added[0] <= 1.0,
                     f"{added[0]:.2f} ms"))
    for k in ("closed_c16", "closed_c64", "open_r20", "open_r50", sk,
              next(k for k in t["phases"] if k.startswith("stream_closed"))):
        if k in t["phases"]:
            u = us_per_req(P(t, k))
            pu = us_per_req(P(p, k)) if p is not None and k in p["phases"] else None
            rows.append((f"CPU us per request, {k}",
                         f"{u:,.0f}" + (f"  ({p['name']}: {pu:,.0f})" if pu else "")))
    hot = us_per_req(P(t, "closed_c64")) if "closed_c64" in t["phases"] else None
    if hot is not None:
        verdicts.append(("hot-path CPU <= 80 us/request (c=64, saturated)", hot <= 80,
                         f"{hot:.0f} us"))
    sc = next(k for k in t["phases"] if k.startswith("stream_closed"))
    line = f"{P(t, sc)['rps']:,.0f} streams/s"
    if p is not None:
        line += f" = {P(t, sc)['rps'] / P(p, sc)['rps']:,.0f}x {p['name']} ({P(p, sc)['rps']:.1f})"
    rows.append((f"streams/s {sc[7:]}", line))
    peak = max((ph.get("rss_max_mb") or 0) for ph in t["phases"].values())
    rows.append(("RSS MB idle / after warm-up / peak",
                 f"{t.get('rss_idle_mb')} / {t.get('rss_after_warmup_mb')} / {peak}"))
    verdicts.append(("idle RSS <= 100 MB (no embedded model)", (t.get("rss_idle_mb") or 1e9) <= 100,
                     f"{t.get('rss_idle_mb')} MB"))
    print(f"run started {data['meta']['started']}, hardware {data['meta']['hardware']}")
    print("| metric | value |\n|---|---|")
    for m, v in rows:
        print(f"| {m} | {v} |")
    print("\n| target | met? | measured |\n|---|---|---|")
    for m, ok, v in verdicts:
        print(f"| {m} | {'met' if ok else 'MISSED'} | {v} |")


if __name__ == "__main__":
    main()
