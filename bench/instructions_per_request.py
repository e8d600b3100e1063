#!/usr/bin/env python3
"""Gateway instructions per request, tracing/metrics on vs. off: a count that does not move
with the machine's load (this machine has 2 noisy cores and no hardware counters).

    .venv/bin/python bench/instructions_per_request.py [--modes off,tracing,metrics,on]
        (also keys, limits, budget: called with a virtual key, without and with limits
        and a budget; compare them with off)
        [--seconds 20] [--conc 8] [--annotate] [--diff 25]

Each mode starts ``bastion serve`` (bench/bastion-bench.yaml, the shared harness's fake
upstream, as bench/tracing_overhead.py does) under ``valgrind --tool=callgrind
--instr-atstart=no``, warms it up, turns instrumentation on with ``callgrind_control``,
drives wrk at c=--conc for --seconds, turns it off and divides the instructions executed
by the gateway process (every thread; not the ingest child, which valgrind does not
follow) by the requests wrk completed. ``--annotate`` prints each mode's top functions
(C level: the interpreter's own frames show up as _PyEval_EvalFrameDefault). ``--diff N``
prints, for each mode but ``off``, the N functions whose instructions per request
(exclusive) grew or shrank the most against ``off``: where a mode's cost goes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_per_request import HARNESS, ROOT, start, stop, wait_ok, wrk

MODES = {
    "off": {"BASTION_TRACING__ENABLED": "false", "BASTION_METRICS__ENABLED": "false"},
    "tracing": {"BASTION_TRACING__ENABLED": "true", "BASTION_METRICS__ENABLED": "false"},
    "metrics": {"BASTION_TRACING__ENABLED": "false", "BASTION_METRICS__ENABLED": "true"},
    "on": {"BASTION_TRACING__ENABLED": "true", "BASTION_METRICS__ENABLED": "true"},
}
# called with a virtual key instead of the master key (tracing and metrics off, as ``off``):
# the key alone; with RPM, TPM and in-flight limits too high to refuse anything; and with a
# budget too large to be spent (tracing_side_by_side.virtual_key)
KEY_MODES = {"keys": (False, False), "limits": (True, False), "budget": (True, True)}
for _mode in KEY_MODES:
    MODES[_mode] = MODES["off"]


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True,
                   capture_output=True, timeout=120)


def run(mode: str, args: argparse.Namespace, env: dict[str, str], tmp: Path,
        key: str) -> tuple[float, int, Path]:
    home = tmp / mode
    home.mkdir()
    out = home / "callgrind.out"
    env = dict(env, BASTION_HOME=str(home), BASTION_TRACING__CONTENT=args.content,
               **MODES[mode])
    py = str(ROOT / ".venv/bin/python")
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           py, "-m", "bastion", "serve", "--config", str(ROOT / "bench/bastion-bench.yaml"),
           "--port", str(args.port)]
    gw = start(cmd, env, None, home / "bastion.log")
    url = f"http://127.0.0.1:{args.port}/v1/chat/completions"
    try:
        wait_ok(url, key, timeout=300)
        if mode in KEY_MODES:
            from tracing_side_by_side import virtual_key

            key = virtual_key(url, key, *KEY_MODES[mode])
        wrk(url, key, args.conc, 5, False, None)  # warm-up
        control(gw.pid, "--instr=on")
        result = wrk(url, key, args.conc, args.seconds, False, None)
        control(gw.pid, "--instr=off")
        control(gw.pid, "--dump")
    finally:
        if gw.poll() is None:
            os.killpg(gw.pid, signal.SIGTERM)
            try:
                gw.wait(300)
            except subprocess.TimeoutExpired:
                stop(gw)
    dumps = sorted(home.glob("callgrind.out*"))
    total = 0
    for dump in dumps:
        text = dump.read_text(errors="replace")
        counts = [int(v) for v in re.findall(r"^(?:summary|totals):\s+(\d+)", text, re.M)]
        total = max([total, *counts])
    n = max(int(result["requests"]) - int(result["errors"]), 1)
    best = max(dumps, key=lambda p: p.stat().st_size)
    return total / n, n, best


_FN_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([\d.\s]+%\)\s+)?(\S.*?)\s*$")


def per_function(dump: Path, n: int) -> dict[str, float]:
    """Exclusive instructions per request of every function in a callgrind dump."""
    ann = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no",
                          "--auto=no", str(dump)], capture_output=True, text=True, check=True)
    out: dict[str, float] = {}
    started = False
    for line in ann.stdout.splitlines():
        if not started:
            started = line.lstrip().startswith("Ir") and "file:function" in line
            continue
        if not line.strip() and out:  # the function table ends
            break
        m = _FN_LINE.match(line)
        if m and ":" in m.group(2):
            name = m.group(2).split(" [", 1)[0]
            out[name] = out.get(name, 0.0) + int(m.group(1).replace(",", "")) / n
    return out


def print_diff(mode: str, base: dict[str, float], other: dict[str, float], top: int) -> None:
    names = set(base) | set(other)
    deltas = sorted(((other.get(k, 0.0) - base.get(k, 0.0), k) for k in names),
                    key=lambda d: -abs(d[0]))
    print(f"-- {mode} vs off: instructions per request by function (exclusive)")
    for delta, name in deltas[:top]:
        print(f"  {delta:+10,.0f}  {base.get(name, 0.0):10,.0f} -> {other.get(name, 0.0):10,.0f}"
              f"  {name[-90:]}")
    print(f"  {sum(d for d, _ in deltas):+10,.0f}  in all")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="off,tracing,metrics,on")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--conc", type=int, default=8)
    ap.add_argument("--content", default="redacted")
    ap.add_argument("--annotate", action="store_true")
    ap.add_argument("--diff", type=int, default=0, metavar="N")
    ap.add_argument("--port", type=int, default=15400)
    ap.add_argument("--upstream-port", type=int, default=18400)
    args = ap.parse_args()
    for tool in ("wrk", "valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found")
    key = "sk-ipr-" + os.urandom(8).hex()
    tmp = Path(tempfile.mkdtemp(prefix="bastion-ipr-"))
    env = dict(os.environ, FAKE_PORT=str(args.upstream_port), FAKE_HOST="127.0.0.1",
               UPSTREAM_BASE=f"http://127.0.0.1:{args.upstream_port}/v1",
               BASTION_MASTER_KEY=key, PYTHONPATH=str(ROOT))
    up = start([str(ROOT / ".venv/bin/python"), str(HARNESS / "fake_upstream.py")], env, None,
               tmp / "upstream.log")
    results: dict[str, float] = {}
    functions: dict[str, dict[str, float]] = {}
    try:
        for mode in args.modes.split(","):
            per, n, dump = run(mode, args, env, tmp, key)
            results[mode] = per
            if args.diff:
                functions[mode] = per_function(dump, n)
            print(f"{mode:<8} {per:12,.0f} instructions/request over {n} requests  ({dump})",
                  flush=True)
            if args.annotate:
                ann = subprocess.run(["callgrind_annotate", "--threshold=90", str(dump)],
                                     capture_output=True, text=True)
                print("\n".join(ann.stdout.splitlines()[:45]))
    finally:
        stop(up)
    base = results.get("off")
    if base:
        for mode, per in results.items():
            print(f"{mode:<8} {per / base:6.3f}x of off  ({per - base:+,.0f} instructions)")
    if "off" in functions:
        for mode, funcs in functions.items():
            if mode != "off":
                print_diff(mode, functions["off"], funcs, args.diff)
    return 0


if __name__ == "__main__":
    sys.exit(main())
