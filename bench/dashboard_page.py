#!/usr/bin/env python3
"""The dashboard's page weight and time to interactive on loopback.

    .venv/bin/python bench/dashboard_page.py [--loads 15]

Starts a gateway (a master key, tracing on, one model in front of the shared harness's
fake upstream), sends it 200 requests so the pages have data, then loads each page in a
fresh headless Debian chromium context (empty cache) --loads times and reports:

- weight: the bytes on the wire of the scripts and styles the page loads, as the gateway
  sends them to a browser (gzip-compressed; target <= 300 KB);
- time to interactive: from the start of navigation to the page's data drawn (the
  overview's tiles filled and its charts' canvases made; the trace list's rows), median
  and max (target <= 1 s).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_per_request import bench_gateway, stop, wait_ok

READY = {
    "/ui/": "() => document.querySelector('[data-testid=tile-requests-value]')?.textContent"
            " !== '—' && document.querySelectorAll('.chart canvas').length === 4",
    "/ui/traces": "() => document.querySelectorAll('#traces-table tbody tr').length > 0",
}


def wire_sizes(base: str, html: str) -> dict[str, int]:
    """The compressed bytes the gateway sends for each script and style the page loads."""
    out = {}
    for path in sorted(set(re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', html))):
        if not path.split("?")[0].endswith((".js", ".css")):
            continue
        req = urllib.request.Request(base + path, headers={"accept-encoding": "gzip"})
        with urllib.request.urlopen(req) as r:
            out[path.split("/ui/static/")[1].split("?")[0]] = len(r.read())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", type=int, default=15)
    ap.add_argument("--port", type=int, default=15700)
    ap.add_argument("--upstream-port", type=int, default=18700)
    args = ap.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bastion-dash-page-"))
    key, up, gw, base = bench_gateway(tmp, args.port, args.upstream_port, None, None)
    try:
        wait_ok(f"{base}/v1/chat/completions", key, timeout=120)
        body = b'{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}'
        for _ in range(200):
            urllib.request.urlopen(urllib.request.Request(
                f"{base}/v1/chat/completions", body, method="POST", headers={
                    "content-type": "application/json", "authorization": f"Bearer {key}"}))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            for path, ready in READY.items():
                times: list[float] = []
                for _ in range(args.loads):
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(f"{base}/ui/login")
                    page.fill("#key", key)
                    page.click("button[type=submit]")
                    page.wait_for_url(f"{base}/ui/")
                    page.goto("about:blank")
                    client = context.new_cdp_session(page)
                    client.send("Network.setCacheDisabled", {"cacheDisabled": True})
                    page.goto(f"{base}{path}")
                    page.wait_for_function(ready, timeout=10_000)
                    elapsed = page.evaluate("() => performance.now()")
                    times.append(elapsed)
                    html = page.content()  # the shell names the assets it loads
                    context.close()
                assets = wire_sizes(base, html)
                print(f"{path}: time to interactive median {statistics.median(times):.0f} ms, "
                      f"max {max(times):.0f} ms over {args.loads} loads (target <= 1000); "
                      f"JS + CSS {sum(assets.values()) / 1024:.1f} KB compressed "
                      f"(target <= 300)")
                for url, n in sorted(assets.items()):
                    print(f"    {url:28} {n:>8,} bytes")
            browser.close()
    finally:
        stop(gw)
        stop(up)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
