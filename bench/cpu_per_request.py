#!/usr/bin/env python3
"""Quick loop for hot-path work: CPU microseconds per request of ``bastion serve``.

Starts the shared harness's fake upstream and Bastion (``bench/bastion-bench.yaml``),
pins Bastion to the last CPU and the upstream + wrk to the others (as the peer bench
does), runs wrk closed loop at each concurrency and reads Bastion's user and system CPU
time from /proc before and after. Prints RPS and CPU us/request split user/system, so a
change to the hot path can be judged in ~30 s without the full peer bench.

    .venv/bin/python bench/cpu_per_request.py [--conc 16,64] [--duration 8] [--stream]
        [--profile SECONDS]   # also run py-spy (from .peerbench/venv) on the gateway

Processes started here run in their own sessions and are stopped by their own pids.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_HARNESS = Path(__file__).resolve().parents[2] / "shared" / "bench"
HARNESS = Path(os.environ.get("PEERBENCH_HARNESS", _DEFAULT_HARNESS))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK  # utime, stime


def start(
    cmd: list[str], env: dict[str, str], cpus: str | None, log: Path
) -> subprocess.Popen[bytes]:
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def bench_gateway(tmp: Path, port: int, upstream_port: int, cpus_gw: str | None,
                  cpus_load: str | None) -> tuple[str, subprocess.Popen[bytes],
                                                  subprocess.Popen[bytes], str]:
    """The shared harness's fake upstream and one ``bastion serve`` of
    ``bench/bastion-bench.yaml`` in front of it (tracing into ``tmp/home``), each on its
    CPUs: (master key, upstream, gateway, base URL)."""
    key = "sk-bench-" + os.urandom(8).hex()
    env = dict(os.environ, FAKE_PORT=str(upstream_port), FAKE_HOST="127.0.0.1",
               UPSTREAM_BASE=f"http://127.0.0.1:{upstream_port}/v1",
               BASTION_MASTER_KEY=key, BASTION_HOME=str(tmp / "home"), PYTHONPATH=str(ROOT))
    py = str(ROOT / ".venv/bin/python")
    up = start([py, str(HARNESS / "fake_upstream.py")], env, cpus_load, tmp / "upstream.log")
    gw = start([py, "-m", "bastion", "serve", "--config", str(ROOT / "bench/bastion-bench.yaml"),
                "--port", str(port)], env, cpus_gw, tmp / "bastion.log")
    return key, up, gw, f"http://127.0.0.1:{port}"


def stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def wait_ok(url: str, key: str, timeout: float = 30.0) -> None:
    body = json.dumps({"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]})
    deadline = time.time() + timeout
    while True:
        try:
            req = urllib.request.Request(url, body.encode(), method="POST", headers={
                "content-type": "application/json", "authorization": f"Bearer {key}"})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.time() > deadline:
                raise
        time.sleep(0.2)


def wrk(url: str, key: str, conc: int, duration: float, stream: bool, cpus: str | None) -> dict:
    env = dict(os.environ, WRK_API_KEY=key, WRK_STREAM="1" if stream else "0")
    cmd = ["wrk", "-t1", f"-c{conc}", f"-d{int(duration)}s", "--timeout", "30s",
           "-s", str(HARNESS / "wrk_chat.lua"), url]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[8:])
    raise RuntimeError(out.stdout + out.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conc", default="16,64")
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--profile", type=float, default=0, help="py-spy seconds (c = first conc)")
    ap.add_argument("--port", type=int, default=15200)
    ap.add_argument("--upstream-port", type=int, default=18200)
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (apt-get install wrk)")
    ncpu = os.cpu_count() or 1
    cpus_gw = str(ncpu - 1) if ncpu >= 2 else None
    cpus_load = (f"0-{ncpu - 2}" if ncpu > 2 else "0") if ncpu >= 2 else None
    key = "sk-cpu-" + os.urandom(8).hex()
    upstream = f"http://127.0.0.1:{a.upstream_port}/v1"
    logdir = ROOT / ".peerbench"
    logdir.mkdir(exist_ok=True)
    env = dict(os.environ, FAKE_PORT=str(a.upstream_port), FAKE_HOST="127.0.0.1",
               UPSTREAM_BASE=upstream, BASTION_MASTER_KEY=key,
               PYTHONPATH=os.environ.get("BASTION_SRC", str(ROOT)))
    py = str(ROOT / ".venv/bin/python")
    up = start([py, str(HARNESS / "fake_upstream.py")], env, cpus_load, logdir / "cpu-upstream.log")
    gw = start([py, "-m", "bastion", "serve", "--config", str(ROOT / "bench/bastion-bench.yaml"),
                "--port", str(a.port)], env, cpus_gw, logdir / "cpu-bastion.log")
    url = f"http://127.0.0.1:{a.port}/v1/chat/completions"
    try:
        wait_ok(url, key)
        wrk(url, key, 8, 2, a.stream, cpus_load)  # warm-up
        for conc in [int(c) for c in a.conc.split(",")]:
            time.sleep(1)
            u0, s0 = cpu_times(gw.pid)
            t0 = time.perf_counter()
            r = wrk(url, key, conc, a.duration, a.stream, cpus_load)
            wall = time.perf_counter() - t0
            u1, s1 = cpu_times(gw.pid)
            n = max(r["requests"], 1)
            user, system = u1 - u0, s1 - s0
            print(f"c={conc:<3} rps={r['rps']:8.0f} p50={r['p50_ms']:.2f}ms "
                  f"p99={r['p99_ms']:.2f}ms err={r['errors']} "
                  f"cpu%={100 * (user + system) / wall:5.1f} "
                  f"us/req={1e6 * (user + system) / n:6.1f} "
                  f"(user {1e6 * user / n:5.1f} sys {1e6 * system / n:5.1f})", flush=True)
        if a.profile:
            pyspy = ROOT / ".peerbench/venv/bin/py-spy"
            out = logdir / f"profile-{'stream' if a.stream else 'ns'}.txt"
            conc = int(a.conc.split(",")[0])
            env_w = dict(os.environ, WRK_API_KEY=key, WRK_STREAM="1" if a.stream else "0")
            w = subprocess.Popen(["taskset", "-c", cpus_load or "0", "wrk", "-t1", f"-c{conc}",
                                  f"-d{int(a.profile) + 3}s", "-s", str(HARNESS / "wrk_chat.lua"),
                                  url], env=env_w, stdout=subprocess.DEVNULL)
            time.sleep(1)
            subprocess.run([str(pyspy), "record", "-p", str(gw.pid), "-d", str(int(a.profile)),
                            "-r", "250", "-f", "raw", "-o", str(out), "--nonblocking"],
                           capture_output=True, check=False)
            w.wait()
            print(f"py-spy raw profile: {out}")
    finally:
        stop(gw)
        stop(up)
    return 0


if __name__ == "__main__":
    sys.exit(main())
