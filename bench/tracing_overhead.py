#!/usr/bin/env python3
"""What tracing costs: throughput and added latency with tracing + metrics on vs. off.

    .venv/bin/python bench/tracing_overhead.py                  # 3 rounds, 8 s per run
    .venv/bin/python bench/tracing_overhead.py --rounds 5 --content full --stream

One fake upstream (the shared harness's fake_upstream.py) and ``bastion serve`` with
``bench/bastion-bench.yaml``, pinned to the last CPU (upstream and wrk on the others), as
bench/cpu_per_request.py does. Each round starts a fresh gateway twice, interleaved:
``off`` (tracing.enabled and metrics.enabled false) and ``on`` (tracing into SQLite in a
temporary BASTION_HOME, metrics on, content mode --content), and runs wrk closed loop at
c=1 (latency) and c=64 (throughput). Reports the median over rounds of each and the on/off
ratios, plus how many traces the store holds at the end of each "on" run (all must be
there: the gateway is stopped with SIGTERM, which drains the spool into the store). The
ingest process inherits the gateway's CPU unless --ingest-cpus moves it (as
``tracing.ingest_cpus`` does in production).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_per_request import HARNESS, ROOT, cpu_times, start, stop, wait_ok, wrk


def children_cpu(pid: int) -> float:
    """CPU seconds of a process's direct children (the ingest process)."""
    total = 0.0
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    for kid in kids:
        try:
            user, system = cpu_times(int(kid))
        except OSError:
            continue
        total += user + system
    return total


def gateway_env(mode: str, args: argparse.Namespace, env: dict[str, str],
                home: Path) -> dict[str, str]:
    """The environment of an ``off`` or ``on`` gateway (``args``: parts, content and,
    maybe, ingest_cpus)."""
    env = dict(env, BASTION_HOME=str(home))
    if mode == "off":
        env.update(BASTION_TRACING__ENABLED="false", BASTION_METRICS__ENABLED="false")
    else:
        parts = set(args.parts.split(","))
        env.update(BASTION_TRACING__ENABLED=str("tracing" in parts).lower(),
                   BASTION_METRICS__ENABLED=str("metrics" in parts).lower(),
                   BASTION_TRACING__CONTENT=args.content)
        if getattr(args, "ingest_cpus", ""):
            env["BASTION_TRACING__INGEST_CPUS"] = f"[{args.ingest_cpus}]"
    return env


def run_mode(mode: str, args: argparse.Namespace, env: dict[str, str], home: Path,
             cpus_gw: str | None, cpus_load: str | None, key: str) -> dict[str, float]:
    env = gateway_env(mode, args, env, home)
    py = str(ROOT / ".venv/bin/python")
    gw = start([py, "-m", "bastion", "serve", "--config", str(ROOT / "bench/bastion-bench.yaml"),
                "--port", str(args.port)], env, cpus_gw, home / f"bastion-{mode}.log")
    url = f"http://127.0.0.1:{args.port}/v1/chat/completions"
    out: dict[str, float] = {}
    try:
        wait_ok(url, key)
        r0 = wrk(url, key, 8, 2, args.stream, cpus_load)  # warm-up
        r1 = wrk(url, key, 1, args.duration, args.stream, cpus_load)
        time.sleep(0.5)
        u0, s0 = cpu_times(gw.pid)
        k0 = children_cpu(gw.pid)
        r64 = wrk(url, key, 64, args.duration, args.stream, cpus_load)
        u1, s1 = cpu_times(gw.pid)
        k1 = children_cpu(gw.pid)
        n = max(r64["requests"], 1)
        out = {"p50_c1_ms": r1["p50_ms"], "p99_c1_ms": r1["p99_ms"], "rps_c64": r64["rps"],
               "cpu_us_per_req": 1e6 * (u1 - u0 + s1 - s0) / n,
               "sys_us_per_req": 1e6 * (s1 - s0) / n,
               "ingest_cpu_us_per_req": 1e6 * (k1 - k0) / n,
               "requests": r0["requests"] + r1["requests"] + r64["requests"] + 1,
               "errors": r1["errors"] + r64["errors"]}
    finally:
        t_stop = time.perf_counter()
        if gw.poll() is None:  # SIGTERM, then wait for the ingest to store the backlog
            os.killpg(gw.pid, signal.SIGTERM)
            try:
                gw.wait(180)
            except subprocess.TimeoutExpired:
                stop(gw)
        out["stop_s"] = time.perf_counter() - t_stop
    traces = stored_ok_traces(home)
    if mode == "on" and traces is not None:
        out["traces"] = traces
    return out


def stored_ok_traces(home: Path) -> int | None:
    """Traces with status 200 in the SQLite store of ``home`` (None: no store there)."""
    db = home / "bastion.db"
    if not db.exists():
        return None
    with sqlite3.connect(db) as conn:
        return int(conn.execute("select count(*) from traces where status = 200").fetchone()[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--content", default="redacted", choices=["full", "redacted", "metadata"])
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--parts", default="tracing,metrics",
                    help="what 'on' turns on: tracing, metrics or both (to split the cost)")
    ap.add_argument("--ingest-cpus", default="",
                    help="e.g. 0: the ingest process runs there (default: the gateway's CPU)")
    ap.add_argument("--port", type=int, default=15300)
    ap.add_argument("--upstream-port", type=int, default=18300)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (apt-get install wrk)")
    ncpu = os.cpu_count() or 1
    cpus_gw = str(ncpu - 1) if ncpu >= 2 else None
    cpus_load = (f"0-{ncpu - 2}" if ncpu > 2 else "0") if ncpu >= 2 else None
    key = "sk-trace-" + os.urandom(8).hex()
    upstream = f"http://127.0.0.1:{args.upstream_port}/v1"
    tmp = Path(tempfile.mkdtemp(prefix="bastion-tracing-bench-"))
    env = dict(os.environ, FAKE_PORT=str(args.upstream_port), FAKE_HOST="127.0.0.1",
               UPSTREAM_BASE=upstream, BASTION_MASTER_KEY=key, PYTHONPATH=str(ROOT))
    py = str(ROOT / ".venv/bin/python")
    up = start([py, str(HARNESS / "fake_upstream.py")], env, cpus_load, tmp / "upstream.log")
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    try:
        for i in range(args.rounds):
            for mode in ("off", "on"):
                home = tmp / f"{mode}-{i}"
                home.mkdir()
                result = run_mode(mode, args, env, home, cpus_gw, cpus_load, key)
                runs[mode].append(result)
                print(f"round {i} {mode:<3} " + " ".join(
                    f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in result.items()), flush=True)
    finally:
        stop(up)

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    off_rps, on_rps = med("off", "rps_c64"), med("on", "rps_c64")
    off_p50, on_p50 = med("off", "p50_c1_ms"), med("on", "p50_c1_ms")
    print(f"\ntracing_overhead: {args.rounds} rounds x {args.duration:g} s, on = "
          f"{args.parts}, content={args.content}, stream={args.stream}, medians")
    print(f"throughput c=64: off {off_rps:.0f} rps, on {on_rps:.0f} rps, "
          f"on/off {on_rps / off_rps:.3f} (cost {100 * (1 - on_rps / off_rps):.1f} %)")
    print(f"latency c=1 p50: off {off_p50:.3f} ms, on {on_p50:.3f} ms, "
          f"added {on_p50 - off_p50:+.3f} ms")
    print(f"gateway cpu us/req c=64: off {med('off', 'cpu_us_per_req'):.1f}, "
          f"on {med('on', 'cpu_us_per_req'):.1f} (of which in the kernel: off "
          f"{med('off', 'sys_us_per_req'):.1f}, on {med('on', 'sys_us_per_req'):.1f}); "
          f"ingest process, on: "
          f"{med('on', 'ingest_cpu_us_per_req'):.1f} (while the load ran)")
    print(f"stop (SIGTERM until exit, the ingest storing its backlog): "
          f"{[round(r['stop_s'], 1) for r in runs['on']]} s")
    lost = [(r["requests"], r.get("traces")) for r in runs["on"]]
    print(f"answered requests vs traces with status 200, per 'on' run: {lost}")
    print(f"logs: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
