#!/usr/bin/env python3
"""What an open dashboard costs the hot path: throughput with the overview open and
polling, against none, in the same run.

    .venv/bin/python bench/dashboard_polling.py [--windows 10] [--duration 5] [--range 1h]

One gateway (``bench/bastion-bench.yaml``, tracing on, the master key) is pinned to the
last CPU; the fake upstream, wrk (c=--conc) and a headless Debian chromium (Playwright)
run on the others. Windows alternate: ``closed`` (the browser shows about:blank) and
``open`` (the overview page for --range, which polls /api/stats every
``ui.refresh_seconds``, 5 s by default). The report is the median of the per-pair
ratios open/closed of requests answered. The store grows while it runs (every answered
request is traced), so later windows' polls read more traces.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_per_request import bench_gateway, stop, wait_ok, wrk


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=10, help="pairs of windows")
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--range", default="1h", help="the overview's range (15m, 1h, ...)")
    ap.add_argument("--port", type=int, default=15600)
    ap.add_argument("--upstream-port", type=int, default=18600)
    args = ap.parse_args()
    chromium = shutil.which("chromium")
    if shutil.which("wrk") is None or chromium is None:
        sys.exit("needs wrk and chromium (apt-get install wrk chromium)")
    from playwright.sync_api import sync_playwright

    ncpu = os.cpu_count() or 1
    cpus_gw, cpus_load = str(ncpu - 1), (f"0-{ncpu - 2}" if ncpu > 2 else "0")
    tmp = Path(tempfile.mkdtemp(prefix="bastion-dash-poll-"))
    key, up, gw, base = bench_gateway(tmp, args.port, args.upstream_port, cpus_gw, cpus_load)
    url = f"{base}/v1/chat/completions"
    ratios: list[float] = []
    polls = 0
    try:
        wait_ok(url, key, timeout=120)
        os.sched_setaffinity(0, {int(c) for c in cpus_load.split("-")[0:1]})
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            seen: list[int] = []
            page.on("response", lambda r: seen.append(1) if "/api/stats" in r.url else None)
            page.goto(f"{base}/ui/login")
            page.fill("#key", key)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/ui/")
            overview = f"{base}/ui/?range={args.range}"
            wrk(url, key, args.conc, 2, False, cpus_load)  # warm-up
            for w in range(args.windows):
                result = {}
                for mode in (("closed", "open") if w % 2 == 0 else ("open", "closed")):
                    page.goto(overview if mode == "open" else "about:blank")
                    if mode == "open":
                        page.locator("[data-testid=tile-requests]").wait_for()
                    before = len(seen)
                    result[mode] = wrk(url, key, args.conc, args.duration, False, cpus_load)
                    if mode == "open":  # the page's events reach Python when it next
                        page.wait_for_timeout(100)  # calls Playwright: pump them, then count
                        polls += len(seen) - before
                ratio = result["open"]["rps"] / result["closed"]["rps"]
                ratios.append(ratio)
                print(f"pair {w}: closed {result['closed']['rps']:.0f} rps, open "
                      f"{result['open']['rps']:.0f} rps, open/closed {ratio:.3f}", flush=True)
            browser.close()
    finally:
        stop(gw)
        stop(up)
        time.sleep(0.1)
    print(f"open/closed throughput: median {statistics.median(ratios):.3f} over "
          f"{len(ratios)} pairs (min {min(ratios):.3f}, max {max(ratios):.3f}); "
          f"{polls} stats calls while open; target >= 0.97")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
