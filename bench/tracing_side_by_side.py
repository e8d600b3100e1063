#!/usr/bin/env python3
"""What tracing costs, measured side by side: two gateways share one core at the same time.

    .venv/bin/python bench/tracing_side_by_side.py [--windows 9] [--duration 5]
        [--parts tracing|metrics|keys|tracing,metrics] [--content redacted] [--stream]
        [--baseline-tree DIR]

Why: this machine's speed drifts by a quarter within minutes (other tenants), so a
gateway measured after another one can look 10 % faster or slower for no reason of its
own. Here both run at once, on the same CPU, so drift hits both alike:

- one fake upstream (the shared harness's fake_upstream.py) and two ``bastion serve``
  (``bench/bastion-bench.yaml``), ``off`` (tracing and metrics off) and ``on`` (--parts on,
  tracing into SQLite in a temporary BASTION_HOME), both pinned to the last CPU; wrk and
  the upstream run on the others;
- both gateways (and ``on``'s ingest process) are in this script's session, hence in one
  scheduler autogroup, as a gateway and its ingest are in production: the two gateways
  share the core task by task, and a SCHED_IDLE ingest yields to both (in a session of
  its own, ``on`` would be a group of its own, and its idle ingest would take half the
  core from ``off`` whenever ``on`` has nothing else to run);
- --windows times, two wrk runs (c=--conc each, one per gateway) for --duration seconds at
  once; per window: each gateway's requests, and its CPU (with its children: the ingest).
  Sharing the core, each process evicts the other's caches at every switch, which makes
  cache-hungry work look dearer than it is alone; ``--alternate`` runs the two wrk runs of
  a window one after the other instead, each gateway alone on the core (a few seconds
  apart, so drift mostly cancels in the per-window ratio).

``--baseline-tree DIR`` compares two versions of the code instead of two configurations:
``off`` runs the checkout in DIR (e.g. ``git worktree add /tmp/before HEAD~3``, with the C
extensions copied beside its sources), ``on`` this one, both with --parts on.

Reported, as medians over the windows: ``on/off`` throughput (requests answered in the
same window; with both saturated and sharing the core fairly, the cost ratio), and
``on/off`` CPU per request, gateway and ingest together. The core must be saturated for
the throughput ratio to mean anything, so the summed CPU use of both is printed too. At
the end both are stopped with SIGTERM and every answered ``on`` request must have its trace
in the store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_per_request import HARNESS, ROOT, cpu_times, start, stop, wait_ok, wrk
from tracing_overhead import children_cpu, gateway_env, stored_ok_traces


def cpu_of(pid: int) -> float:
    user, system = cpu_times(pid)
    return user + system + children_cpu(pid)


def window(urls: dict[str, str], pids: dict[str, int], keys: dict[str, str],
           args: argparse.Namespace, cpus_load: str | None) -> dict[str, dict[str, float]]:
    """Both wrk runs at once; each gateway's requests and CPU seconds over the window."""
    results: dict[str, dict[str, float]] = {}
    before = {mode: cpu_of(pid) for mode, pid in pids.items()}
    t0 = time.perf_counter()

    def drive(mode: str) -> None:
        results[mode] = wrk(urls[mode], keys[mode], args.conc, args.duration, args.stream,
                            cpus_load)

    if args.alternate:  # one after the other, each alone on the core
        for mode in urls:
            drive(mode)
    else:
        threads = [threading.Thread(target=drive, args=(m,)) for m in urls]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall = time.perf_counter() - t0
    out: dict[str, dict[str, float]] = {}
    for mode, pid in pids.items():
        r = results[mode]
        cpu = cpu_of(pid) - before[mode]
        out[mode] = {"requests": r["requests"], "errors": r["errors"], "rps": r["rps"],
                     "cpu_s": cpu, "cpu_us_per_req": 1e6 * cpu / max(r["requests"], 1),
                     "wall_s": wall}
    return out


def virtual_key(url: str, master: str, limits: bool = False, budget: bool = False) -> str:
    """A virtual key made on the gateway at ``url`` (``--parts keys``: 'on' is called with
    it, 'off' with the master key; the same configuration otherwise); ``limits``: with RPM,
    TPM and in-flight limits too high to refuse anything (their bookkeeping is measured);
    ``budget``: with a budget too large to be spent (reserved and settled every request)."""
    import json
    import urllib.request

    base = url.split("/v1/", 1)[0]
    request = urllib.request.Request(
        base + "/api/keys", data=json.dumps({"role": "user", "team": "bench", **(
            {"limits": {"rpm": 10**9, "tpm": 10**9, "max_parallel": 10**6}} if limits else {}),
            **({"budget": {"limit": 10**9, "period": "monthly"}} if budget else {}),
        }).encode(),
        headers={"authorization": f"Bearer {master}", "content-type": "application/json"},
        method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["key"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=9)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--conc", type=int, default=64, help="connections per gateway")
    ap.add_argument("--alternate", action="store_true",
                    help="each window drives off, then on, alone on the core (no cache "
                    "sharing between the two; drift between the halves is a few seconds)")
    ap.add_argument("--content", default="redacted", choices=["full", "redacted", "metadata"])
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--parts", default="tracing",
                    help="what 'on' turns on: tracing, metrics, keys (called with a virtual "
                    "key instead of the master key), keys,limits (a key with RPM, TPM and "
                    "in-flight limits), keys,limits,budget (and a budget), or several "
                    "(tracing,metrics)")
    ap.add_argument("--baseline-tree", default=None, metavar="DIR",
                    help="'off' runs the code in DIR (another checkout), with the same "
                    "--parts as 'on': a before/after comparison of two versions")
    ap.add_argument("--port", type=int, default=15500, help="off; on is the next port")
    ap.add_argument("--upstream-port", type=int, default=18500)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (apt-get install wrk)")
    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        sys.exit("needs 2 CPUs: the gateways on one, wrk and the upstream on the other")
    cpus_gw = str(ncpu - 1)
    cpus_load = f"0-{ncpu - 2}" if ncpu > 2 else "0"
    key = "sk-sbs-" + os.urandom(8).hex()
    tmp = Path(tempfile.mkdtemp(prefix="bastion-sbs-"))
    env = dict(os.environ, FAKE_PORT=str(args.upstream_port), FAKE_HOST="127.0.0.1",
               UPSTREAM_BASE=f"http://127.0.0.1:{args.upstream_port}/v1",
               BASTION_MASTER_KEY=key, PYTHONPATH=str(ROOT))
    py = str(ROOT / ".venv/bin/python")
    up = start([py, str(HARNESS / "fake_upstream.py")], env, cpus_load, tmp / "upstream.log")
    gws: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    windows: list[dict[str, dict[str, float]]] = []
    answered = 0
    traces = None
    try:
        for i, mode in enumerate(("off", "on")):
            home = tmp / mode
            home.mkdir()
            port = args.port + i
            cmd = [py, "-m", "bastion", "serve", "--config",
                   str(ROOT / "bench/bastion-bench.yaml"), "--port", str(port)]
            mode_env = gateway_env(mode, args, env, home)
            if args.baseline_tree:  # two versions, one configuration
                mode_env = gateway_env("on", args, env, home)
                if mode == "off":
                    mode_env["PYTHONPATH"] = str(Path(args.baseline_tree).resolve())
            gws[mode] = subprocess.Popen(  # a process group of its own, this session
                ["taskset", "-c", cpus_gw, *cmd], env=mode_env,
                stdout=(home / "bastion.log").open("wb"), stderr=subprocess.STDOUT,
                process_group=0)
            urls[mode] = f"http://127.0.0.1:{port}/v1/chat/completions"
        for url in urls.values():
            wait_ok(url, key, timeout=120)
        pids = {mode: p.pid for mode, p in gws.items()}
        keys = {"off": key, "on": virtual_key(urls["on"], key, "limits" in args.parts,
                                              "budget" in args.parts)
                if "keys" in args.parts else key}
        warm = window(urls, pids, keys, argparse.Namespace(**{**vars(args), "duration": 2}),
                      cpus_load)
        answered = 1 + int(warm["on"]["requests"])  # the readiness probe, the warm-up
        for w in range(args.windows):
            result = window(urls, pids, keys, args, cpus_load)
            windows.append(result)
            answered += int(result["on"]["requests"])
            off, on = result["off"], result["on"]
            print(f"window {w}: off {off['rps']:.0f} rps {off['cpu_us_per_req']:.1f} us/req, "
                  f"on {on['rps']:.0f} rps {on['cpu_us_per_req']:.1f} us/req, "
                  f"on/off rps {on['rps'] / off['rps']:.3f}, core used "
                  f"{(off['cpu_s'] + on['cpu_s']) / off['wall_s']:.2f}", flush=True)
    finally:
        t_stop = time.perf_counter()
        for p in gws.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in gws.values():
            try:
                p.wait(300)
            except subprocess.TimeoutExpired:
                stop(p)
        stop_s = time.perf_counter() - t_stop
        stop(up)
    if "tracing" in args.parts:
        traces = stored_ok_traces(tmp / "on")

    def med(key: str) -> float:
        return statistics.median(w["on"][key] / w["off"][key] for w in windows)

    rps, cpu = med("rps"), med("cpu_us_per_req")
    used = statistics.median((w["off"]["cpu_s"] + w["on"]["cpu_s"]) / w["off"]["wall_s"]
                             for w in windows)
    print(f"\ntracing_side_by_side: {args.windows} windows x {args.duration:g} s, "
          f"{'alternating' if args.alternate else 'at once'}, "
          f"c={args.conc} each, on = {args.parts}, content={args.content}, "
          f"stream={args.stream}; medians of the per-window ratios")
    print(f"throughput on/off {rps:.3f} (cost {100 * (1 - rps):.1f} %); CPU per request "
          f"on/off {cpu:.3f} (gateway + ingest); core used {used:.2f}")
    print(f"off {statistics.median(w['off']['rps'] for w in windows):.0f} rps, "
          f"on {statistics.median(w['on']['rps'] for w in windows):.0f} rps (medians)")
    if traces is not None:
        print(f"'on' answered {answered} requests; {traces} traces with status 200 stored "
              f"({'none' if traces >= answered else answered - traces} lost); stop took "
              f"{stop_s:.1f} s")
    print(f"logs: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
