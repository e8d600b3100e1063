#!/usr/bin/env python3
"""The dashboard's API calls at 1,000,000 stored traces, through a real gateway.

    .venv/bin/python bench/dashboard_api.py                      # SQLite fill of store_query.py
    .venv/bin/python bench/dashboard_api.py --engine postgres    # its Postgres fill
    .venv/bin/python bench/dashboard_api.py --runs 20 --dir /var/tmp/bastion-bench-store

It serves the fill that ``bench/store_query.py`` made and keeps (run that first: SQLite
in ``--dir``, Postgres in the database ``bastion_bench_query``) with ``bastion serve``
(tracing off, so the fill stays as it is), and times over HTTP, as the pages ask:

- the overview: ``/api/stats`` with the range and its bucket width (about 60 buckets),
  for every range of the page's selector, with and without a filter, and the filters'
  suggestions (``/api/stats/values``, a dimension's 200 most used values, last hour);
- the trace list: the first page, a filtered page, a chart bucket's page, a text search.

The calls are timed twice in one run: first with the traces alone (the rollups deleted),
then after rolling them up (``Store.roll_up``, timed: what the ingest does in the
background), and the p95s compared side by side; ``--keep-rollups`` skips the first pass.
Each call runs ``--runs`` times after one warm-up; the report is p50 and p95 in ms. The
fill spreads its traces over the 7 days before it was made: ranges are taken back from
the newest trace, so a 30-day range reads all of them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import text

from bastion.store import open_store

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-bench-dashboard-master-key"
RANGES = (("15m", 900, 15), ("1h", 3600, 60), ("6h", 21600, 300), ("24h", 86400, 1800),
          ("7d", 604800, 10800), ("30d", 2592000, 43200))  # as app.js's range selector


def start(args: argparse.Namespace, port: int, home: Path) -> subprocess.Popen[bytes]:
    config = {"server": {"port": port, "master_key": KEY}, "tracing": {"enabled": False},
              "models": [{"name": "m", "backend": "openai", "base_url": "http://127.0.0.1:9"}]}
    if args.engine == "sqlite":
        config["home"] = args.dir  # its bastion.db is the fill
    else:
        config["home"] = str(home)
        config["store"] = {"url": f"postgresql+psycopg://postgres@127.0.0.1:5432/"
                                  f"{args.pg_database}"}
    path = home / "bastion.yaml"
    path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    return subprocess.Popen([sys.executable, "-m", "bastion", "serve", "--config", str(path)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=(home / "gateway.log").open("wb"))


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path, headers={"authorization": f"Bearer {KEY}"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def wait_up(port: int, timeout: float = 60.0) -> http.client.HTTPConnection:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            if get(conn, "/api/traces?limit=1")[0] == 200:
                return conn
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the gateway did not start: see its log")
        time.sleep(0.3)


def calls(newest: float) -> list[tuple[str, str]]:
    out = []
    for name, seconds, bucket in RANGES:
        since, until = newest - seconds, newest + 1
        base = {"since": f"{since:.0f}", "until": f"{until:.0f}", "bucket": bucket}
        out.append((f"overview {name}", "/api/stats?" + urlencode(base)))
        out.append((f"overview {name}, model filter",
                    "/api/stats?" + urlencode({**base, "model": "smollm2"})))
    for dim in ("model", "deployment", "key_id", "user", "team"):
        out.append((f"suggestions {dim} (1 h)", "/api/stats/values?" + urlencode(
            {"since": f"{newest - 3600:.0f}", "until": f"{newest + 1:.0f}",
             "dimension": dim, "limit": 200})))
    minute = {"since": f"{newest - 60:.0f}", "until": f"{newest + 1:.0f}"}
    out += [
        ("traces: first page", "/api/traces?limit=50"),
        ("traces: model filter", "/api/traces?limit=50&model=smollm2"),
        ("traces: a chart bucket (1 min)", "/api/traces?limit=50&" + urlencode(minute)),
        ("traces: text 'refund request' (5 %)", "/api/traces?limit=50&q=refund+request"),
        ("traces: status 5xx", "/api/traces?limit=50&status=5xx"),
    ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--port", type=int, default=18741)
    ap.add_argument("--dir", default="/var/tmp/bastion-bench-store")
    ap.add_argument("--pg-database", default="bastion_bench_query")
    ap.add_argument("--keep-rollups", action="store_true",
                    help="time with the rollups already there only (no first pass)")
    args = ap.parse_args()
    url = None if args.engine == "sqlite" else (
        f"postgresql+psycopg://postgres@127.0.0.1:5432/{args.pg_database}")
    store = open_store(url, args.dir)
    if not args.keep_rollups:  # the first pass reads the traces alone
        with store._engine.begin() as conn:
            conn.execute(text("DELETE FROM trace_rollups"))
            conn.execute(text("DELETE FROM rollup_units"))
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bastion-dash-bench-") as tmp:
        if not args.keep_rollups:
            results["traces"] = serve_and_time(args, Path(tmp), "no rollups")
        t0 = time.perf_counter()
        units = 0
        while rolled := store.roll_up(budget_s=60):
            units += rolled
        seconds = time.perf_counter() - t0
        total = store.count_traces()
        print(f"rolled {units} half hours of {total:,} traces in {seconds:.1f} s "
              f"({total / max(seconds, 1e-9):,.0f} traces/s)")
        results["rollups"] = serve_and_time(args, Path(tmp), "rollups")
    store.close()
    if "traces" in results:
        print(f"{'call':44} {'p95 traces':>11} {'p95 rollups':>12} {'speed-up':>9}")
        for name, p95 in results["traces"].items():
            after = results["rollups"][name]
            print(f"{name:44} {p95:11.1f} {after:12.1f} {p95 / max(after, 1e-9):8.1f}x")


def serve_and_time(args: argparse.Namespace, home: Path, label: str) -> dict[str, float]:
    """Starts the gateway on the fill, times every call; returns each call's p95 (ms)."""
    proc = start(args, args.port, home)
    out: dict[str, float] = {}
    try:
        conn = wait_up(args.port)
        status, body = get(conn, "/api/traces?limit=1")
        newest = json.loads(body)["data"][0]["ts"]
        status, body = get(conn, "/api/stats?since=0&until=" + f"{newest + 1:.0f}")
        total = json.loads(body)["totals"]["requests"]
        print(f"{args.engine}, {label}: {total:,} traces; p50 / p95 of {args.runs} runs, ms")
        print(f"{'call':44} {'p50':>8} {'p95':>8} {'max':>8}  bytes  percentiles")
        for name, path in calls(newest):
            status, body = get(conn, path)  # warm-up
            assert status == 200, (path, status, body[:300])
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                status, body = get(conn, path)
                times.append((time.perf_counter() - t0) * 1000)
                assert status == 200, (path, status)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            out[name] = p95
            how = json.loads(body).get("percentiles", "") if "stats" in path else ""
            print(f"{name:44} {statistics.median(times):8.1f} {p95:8.1f} "
                  f"{times[-1]:8.1f}  {len(body):,}  {how}", flush=True)
        print(f"worst p95: {max(out.values()):.1f} ms (target 300)")
    finally:
        proc.terminate()
        proc.wait(30)
    return out

if __name__ == "__main__":
    main()
