#!/usr/bin/env python3
"""Failover chaos benchmark: two upstreams behind one alias, one killed and restarted.

    .peerbench/venv/bin/python bench/chaos.py                 # 200 req/s, 40 s, kill 10-20 s
    .peerbench/venv/bin/python bench/chaos.py --rate 100 --duration 30 --kill-at 8 --restart-at 16

Starts two fake OpenAI upstreams (the shared harness's fake_upstream.py, each in its own
process group) and one ``bastion serve`` (this checkout's .venv) with both as deployments
of alias ``chat`` (least_in_flight, failure_threshold 3, cooldown 2 s, retries 2). Drives
a steady open-loop request rate (asyncio + aiohttp: run it with an interpreter that has
aiohttp, e.g. .peerbench/venv), SIGKILLs upstream 1's process group at --kill-at and
restarts it on the same port at --restart-at, while polling /api/deployments every
100 ms. Reports success rate overall and in the outage window, p50/p99 latency before /
during / after, time to eject (breaker of up1 open) and time to readmit (up1 serving
again after the restart). Latency is measured from each request's *scheduled* send time
(no coordinated omission). Loopback only; every process is stopped by its own pgid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
HARNESS = Path(os.environ.get("PEERBENCH_HARNESS", ROOT.parent / "shared" / "bench"))
VENV_PY = ROOT / ".venv" / "bin" / "python"


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child in its own session / process group, stopped by that pgid."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._fh = log.open("ab")
        self.p = subprocess.Popen(
            cmd, env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pgid = self.p.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, sig)

    def stop(self, grace: float = 5.0) -> None:
        if self.p.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.p.wait(5)
        else:
            self.kill(signal.SIGKILL)  # stragglers in the group, if any
        self._fh.close()


def start_upstream(port: int, delay_ms: float, log: Path, chunk_delay_ms: float = 0.0) -> Proc:
    env = {
        **os.environ,
        "FAKE_HOST": "127.0.0.1",
        "FAKE_PORT": str(port),
        "FAKE_DELAY_MS": str(delay_ms),
        "FAKE_CHUNK_DELAY_MS": str(chunk_delay_ms),
    }
    return Proc(f"up:{port}", [str(VENV_PY), str(HARNESS / "fake_upstream.py")], env, log)


def start_bastion(config: Path, port: int, home: Path, log: Path) -> Proc:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BASTION_HOME": str(home)}
    env.pop("BASTION_MASTER_KEY", None)
    cmd = [str(VENV_PY), "-m", "bastion", "serve", "--config", str(config),
           "--host", "127.0.0.1", "--port", str(port)]
    return Proc("bastion", cmd, env, log)


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s: {last}")


def write_config(
    path: Path, upstream_ports: list[int], strategy: str, *, failure_threshold: int = 3,
    cooldown: float = 2.0, retries: int = 2,
) -> None:
    models = []
    for i, port in enumerate(upstream_ports, 1):
        models.append({
            "name": f"up{i}",
            "alias": "chat",
            "backend": "openai",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "upstream_model": "fake-model",
            "connect_timeout": 1.0,
            "read_timeout": 10.0,
        })
    cfg = {
        "server": {"host": "127.0.0.1", "access_log": False},
        "models": models,
        "routing": {
            "failure_threshold": failure_threshold,
            "cooldown": cooldown,
            "default": {"strategy": strategy, "retries": retries},
        },
    }
    path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML


# ----------------------------------------------------------------------------- load


@dataclass(slots=True)
class Rec:
    sched: float  # scheduled send time, s since load start
    latency: float  # end - scheduled, s
    ok: bool
    status: int
    error: str = ""


@dataclass
class LoadResult:
    recs: list[Rec] = field(default_factory=list)
    t0: float = 0.0  # monotonic time of load start


def body(stream: bool = False) -> bytes:
    return json.dumps({
        "model": "chat",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 16,
        "stream": stream,
    }).encode()


async def one(session: aiohttp.ClientSession, url: str, t_sched: float, t0: float,
              out: list[Rec], req_timeout: float, stream: bool = False) -> None:
    status, ok, err = 0, False, ""
    try:
        async with session.post(
            url, data=body(stream), headers={"content-type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=req_timeout),
        ) as resp:
            status = resp.status
            data = await resp.read()
            if stream:  # a stream that broke after it started ends in an error event
                ok = status == 200 and b"data: [DONE]" in data and b'"error"' not in data
            else:
                ok = status == 200 and b'"choices"' in data
            if not ok:
                err = data[:200].decode(errors="replace")
    except Exception as exc:
        err = f"{type(exc).__name__}: {exc}"[:200]
    end = time.monotonic()
    out.append(Rec(t_sched - t0, end - t_sched, ok, status, err))


async def open_loop(base: str, rate: float, duration: float, req_timeout: float = 10.0,
                    events: list[tuple[float, Any]] | None = None,
                    poll: list[tuple[float, list[dict[str, Any]]]] | None = None,
                    warmup: int = 50, stream: bool = False) -> LoadResult:
    """Open-loop load at ``rate`` req/s for ``duration`` s. ``events``: (t, callable)
    run at t s after the start (in a thread). ``poll``: filled with /api/deployments
    snapshots every 100 ms (t since start, data)."""
    url = base + "/v1/chat/completions"
    conn = aiohttp.TCPConnector(limit=0, force_close=False)
    res = LoadResult()
    async with aiohttp.ClientSession(connector=conn) as session:
        warm: list[Rec] = []
        await asyncio.gather(*(one(session, url, time.monotonic(), 0, warm, req_timeout, stream)
                               for _ in range(warmup)))
        t0 = res.t0 = time.monotonic()
        stop = asyncio.Event()

        async def poller() -> None:
            assert poll is not None
            while not stop.is_set():
                t = time.monotonic()
                with contextlib.suppress(Exception):
                    async with session.get(base + "/api/deployments",
                                           timeout=aiohttp.ClientTimeout(total=1)) as r:
                        poll.append((t - t0, (await r.json())["data"]))
                await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - t)))

        async def scheduler() -> None:
            assert events is not None
            for at, fn in sorted(events, key=lambda e: e[0]):
                await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
                await asyncio.to_thread(fn)

        side = []
        if poll is not None:
            side.append(asyncio.create_task(poller()))
        if events:
            side.append(asyncio.create_task(scheduler()))
        tasks = []
        n = int(rate * duration)
        for i in range(n):
            t_sched = t0 + i / rate
            delay = t_sched - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, url, t_sched, t0, res.recs, req_timeout,
                                                 stream)))
        await asyncio.gather(*tasks)
        stop.set()
        for t in side:
            await t
    return res


def pct(vals: list[float], p: float) -> float:
    if not vals:
        return float("nan")
    s = sorted(vals)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def summary(recs: list[Rec]) -> dict[str, Any]:
    lat = [r.latency * 1000 for r in recs if r.ok]
    n = len(recs)
    ok = sum(r.ok for r in recs)
    return {
        "requests": n,
        "ok": ok,
        "success_pct": round(100 * ok / n, 3) if n else float("nan"),
        "p50_ms": round(pct(lat, 50), 2),
        "p95_ms": round(pct(lat, 95), 2),
        "p99_ms": round(pct(lat, 99), 2),
        "max_ms": round(max(lat), 2) if lat else float("nan"),
    }


# ----------------------------------------------------------------------------- chaos


def dep(snapshot: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(d for d in snapshot if d["name"] == name)


def analyse_poll(poll: list[tuple[float, list[dict[str, Any]]]], kill_at: float,
                 restart_at: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    opened = next((t for t, s in poll if t >= kill_at and dep(s, "up1")["breaker"] == "open"),
                  None)
    out["eject_s"] = None if opened is None else round(opened - kill_at, 3)
    base = next((dep(s, "up1")["successes"] for t, s in poll if t >= restart_at), None)
    served = None
    closed = None
    if base is not None:
        served = next((t for t, s in poll
                       if t >= restart_at and dep(s, "up1")["successes"] > base), None)
        closed = next((t for t, s in poll
                       if t >= restart_at and dep(s, "up1")["breaker"] == "closed"
                       and dep(s, "up1")["successes"] > base), None)
    out["readmit_first_success_s"] = None if served is None else round(served - restart_at, 3)
    out["readmit_breaker_closed_s"] = None if closed is None else round(closed - restart_at, 3)
    # breaker transitions of up1, for the record
    trans = []
    prev = None
    for t, s in poll:
        st = dep(s, "up1")["breaker"]
        if st != prev:
            trans.append((round(t, 2), st))
            prev = st
    out["up1_breaker_transitions"] = trans
    if poll:
        last = poll[-1][1]
        out["final"] = {d["name"]: {k: d[k] for k in ("successes", "failures", "breaker")}
                        for d in last}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--kill-at", type=float, default=10.0)
    ap.add_argument("--restart-at", type=float, default=20.0)
    ap.add_argument("--strategy", default="least_in_flight")
    ap.add_argument("--failure-threshold", type=int, default=3)
    ap.add_argument("--cooldown", type=float, default=2.0)
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--delay-ms", type=float, default=0.0, help="FAKE_DELAY_MS of both upstreams")
    ap.add_argument("--stream", action="store_true", help="streaming requests")
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0,
                    help="FAKE_CHUNK_DELAY_MS of both upstreams (20 chunks per stream)")
    ap.add_argument("--json", type=Path, help="write the raw summary here")
    args = ap.parse_args()
    if not (0 < args.kill_at < args.restart_at < args.duration) or args.duration > 100:
        ap.error("need 0 < kill-at < restart-at < duration <= 100")

    tmp = Path(tempfile.mkdtemp(prefix="bastion-chaos-"))
    p1, p2, pb = free_port(), free_port(), free_port()
    cfg = tmp / "bastion.yaml"
    write_config(cfg, [p1, p2], args.strategy, failure_threshold=args.failure_threshold,
                 cooldown=args.cooldown, retries=args.retries)
    procs: dict[str, Proc] = {}
    try:
        procs["up1"] = start_upstream(p1, args.delay_ms, tmp / "up1.log", args.chunk_delay_ms)
        procs["up2"] = start_upstream(p2, args.delay_ms, tmp / "up2.log", args.chunk_delay_ms)
        wait_http(f"http://127.0.0.1:{p1}/health")
        wait_http(f"http://127.0.0.1:{p2}/health")
        procs["bastion"] = start_bastion(cfg, pb, tmp / "home", tmp / "bastion.log")
        base = f"http://127.0.0.1:{pb}"
        wait_http(base + "/health/ready", 60)

        marks: dict[str, float] = {}

        def kill() -> None:
            marks["kill"] = time.monotonic()
            procs["up1"].kill(signal.SIGKILL)
            procs["up1"].p.wait(5)

        def restart() -> None:
            procs["up1"].stop()
            marks["restart"] = time.monotonic()
            procs["up1"] = start_upstream(p1, args.delay_ms, tmp / "up1.log", args.chunk_delay_ms)
            with contextlib.suppress(RuntimeError):
                wait_http(f"http://127.0.0.1:{p1}/health", 10)
            marks["listening"] = time.monotonic()

        poll: list[tuple[float, list[dict[str, Any]]]] = []
        res = asyncio.run(open_loop(base, args.rate, args.duration,
                                    events=[(args.kill_at, kill), (args.restart_at, restart)],
                                    poll=poll, stream=args.stream))
    finally:
        for p in procs.values():
            p.stop()

    kill_t = marks["kill"] - res.t0
    restart_t = marks["restart"] - res.t0
    listen_t = marks["listening"] - res.t0
    recs = res.recs
    phases = {
        "overall": recs,
        f"before [0,{kill_t:.1f})": [r for r in recs if r.sched < kill_t],
        f"outage [{kill_t:.1f},{restart_t:.1f})":
            [r for r in recs if kill_t <= r.sched < restart_t],
        f"first 1 s after kill [{kill_t:.1f},{kill_t + 1:.1f})":
            [r for r in recs if kill_t <= r.sched < kill_t + 1],
        f"after [{restart_t:.1f},end)": [r for r in recs if r.sched >= restart_t],
    }
    out: dict[str, Any] = {
        "config": vars(args) | {"json": None},
        "kill_at_s": round(kill_t, 3),
        "restart_at_s": round(restart_t, 3),
        "upstream_listening_at_s": round(listen_t, 3),
        "phases": {k: summary(v) for k, v in phases.items()},
        "breaker": analyse_poll(poll, kill_t, restart_t),
        "polls": len(poll),
    }
    timeline = []
    for sec in range(int(args.duration)):
        b = [r for r in recs if sec <= r.sched < sec + 1]
        s = summary(b)
        timeline.append((sec, s["requests"], s["requests"] - s["ok"], s["p50_ms"], s["p99_ms"]))
    out["timeline_per_s"] = timeline
    failures = [r for r in recs if not r.ok]
    kinds: dict[str, int] = {}
    for r in failures:
        key = f"{r.status} {r.error[:120]}"
        kinds[key] = kinds.get(key, 0) + 1
    out["failures"] = {"count": len(failures), "kinds": kinds,
                       "at_s": [round(r.sched, 3) for r in failures[:50]]}

    kind = "stream" if args.stream else "non-stream"
    print(f"chaos: {kind}, {args.rate:g} req/s x {args.duration:g} s, strategy {args.strategy}, "
          f"failure_threshold {args.failure_threshold}, cooldown {args.cooldown:g} s, "
          f"retries {args.retries}; up1 SIGKILL at {kill_t:.2f} s, restarted at "
          f"{restart_t:.2f} s (listening {listen_t:.2f} s)")
    print(f"{'phase':<34} {'req':>6} {'ok':>6} {'success%':>9} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8}")
    for k, s in out["phases"].items():
        print(f"{k:<34} {s['requests']:>6} {s['ok']:>6} {s['success_pct']:>9} "
              f"{s['p50_ms']:>8} {s['p99_ms']:>8} {s['max_ms']:>8}")
    b = out["breaker"]
    print(f"time to eject (up1 breaker open after kill): {b['eject_s']} s")
    print(f"time to readmit (first up1 success after restart): "
          f"{b['readmit_first_success_s']} s; breaker closed: {b['readmit_breaker_closed_s']} s")
    print(f"up1 breaker transitions (t s, state): {b['up1_breaker_transitions']}")
    print(f"final counters: {b.get('final')}")
    print(f"failures: {out['failures']['count']} {json.dumps(out['failures']['kinds'])}")
    if failures:
        print(f"failure times (s): {out['failures']['at_s']}")
    print("per second (t, requests, failed, p50 ms, p99 ms):")
    print("  " + " ".join(f"[{t} {n} {f} {p50} {p99}]" for t, n, f, p50, p99 in timeline))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    print(f"logs: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
