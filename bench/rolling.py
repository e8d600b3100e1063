#!/usr/bin/env python3
"""Zero-downtime benchmark: config reloads, rolling restarts and upstream replacement under load.

    .peerbench/venv/bin/python bench/rolling.py                  # 200 req/s, 60 s, 2 workers
    .peerbench/venv/bin/python bench/rolling.py --rate 100 --stream-share 0.5 --json out.json

Starts two fake OpenAI upstreams (the shared harness's fake_upstream.py, each in its own
process group; ``--chunk-delay-ms`` between the 20 chunks of a stream) and one ``bastion
serve`` (this checkout's .venv) with ``server.workers: --workers`` and both upstreams as
deployments ``up1``/``up2`` of alias ``chat``. Drives a steady open-loop load
(``--stream-share`` of the requests streamed) through two kinds of keep-alive client,
alternately: aiohttp (one pool; it drops a pooled connection once it has seen the server's
FIN) and a plain one (``--raw-conns`` persistent connections used round-robin, a request
written without first checking whether the server closed the connection, as
``http.client`` and many simple clients do; it reconnects after ``Connection: close`` and
after a failure, and retries nothing). The plain client is the one the keep-alive race
hurts: a server that closes an idle connection while a request is on its way fails it.
At fixed times the running system changes:

  baseline  nothing changes (the same-run reference for latency)
  reloads   4 config reloads (rewrite the file, ``POST /api/config/reload``): remove up2,
            add it back, twice
  rolling   SIGUSR2 to the supervisor (a rolling restart of every worker), wait until the
            log says it is done, then again; the worker pids are sampled before and after
  replicas  start up3, reload to add it, reload to remove up1, stop up1 (replacing an
            upstream replica with no request lost)
  after     nothing changes

Reports per phase (by scheduled send time): requests, failures by kind, p50/p99 latency of
non-streamed requests and of whole streams, and their ratios to the baseline. Latency is
measured from each request's *scheduled* send time (no coordinated omission). A request
counts as failed unless it got 200 and a complete body (``choices``; a stream's
``data: [DONE]`` with no error event). Loopback only; every process is stopped by its own
process group.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos import Proc, body, free_port, pct, start_bastion, start_upstream, wait_http

# ----------------------------------------------------------------------------- system


def write_config(path: Path, deployments: dict[str, int], workers: int) -> None:
    models = [
        {
            "name": name,
            "alias": "chat",
            "backend": "openai",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "upstream_model": "fake-model",
            "connect_timeout": 1.0,
            "read_timeout": 10.0,
        }
        for name, port in deployments.items()
    ]
    cfg = {
        "server": {"host": "127.0.0.1", "access_log": False, "workers": workers},
        "models": models,
        "routing": {"default": {"strategy": "least_in_flight", "retries": 2}},
    }
    path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML


def post_reload(base: str) -> dict[str, Any]:
    req = urllib.request.Request(base + "/api/config/reload", data=b"{}", method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        result: dict[str, Any] = json.loads(r.read())
        return result


def worker_pids(base: str, expected: int, samples: int = 400) -> list[int]:
    """The pids answering /health/live, a new connection each time (which worker accepts
    it is up to the kernel and is often the same one for a while)."""
    seen: set[int] = set()
    for _ in range(samples):
        if len(seen) >= expected:
            break
        try:
            with urllib.request.urlopen(base + "/health/live", timeout=2) as r:
                seen.add(int(json.loads(r.read())["pid"]))
        except OSError:
            continue
    return sorted(seen)


def wait_log(path: Path, pattern: str, count: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(re.findall(pattern, path.read_text(errors="replace"))) >= count:
            return True
        time.sleep(0.05)
    return False


# ----------------------------------------------------------------------------- load


@dataclass(slots=True)
class Rec:
    sched: float  # scheduled send time, s since load start
    latency: float  # end - scheduled, s
    stream: bool
    client: str  # "aiohttp" or "plain"
    ok: bool
    status: int
    error: str = ""


class PlainConn:
    """One persistent HTTP/1.1 connection, one request at a time, no retries."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = asyncio.Lock()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, payload: bytes) -> tuple[int, bytes]:
        async with self.lock:
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection("127.0.0.1",
                                                                             self.port)
                assert self.reader is not None
                self.writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\n"
                                  b"content-type: application/json\r\ncontent-length: %d"
                                  b"\r\n\r\n%b" % (len(payload), payload))
                status, close, data = await read_response(self.reader)
            except BaseException:
                self.close()
                raise
            if close:
                self.close()
            return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    status = int(head.split(b" ", 2)[1])
    close = b"\r\nconnection: close\r\n" in head
    if b"\r\ntransfer-encoding: chunked\r\n" in head:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                return status, close, b"".join(parts)
    length = int(head.split(b"\r\ncontent-length: ", 1)[1].split(b"\r\n", 1)[0])
    return status, close, await reader.readexactly(length)


def complete(status: int, data: bytes, stream: bool) -> bool:
    if stream:  # a stream that broke after it started ends in an error event
        return status == 200 and b"data: [DONE]" in data and b'"error"' not in data
    return status == 200 and b'"choices"' in data


async def one(client: aiohttp.ClientSession | PlainConn, url: str, t_sched: float, t0: float,
              stream: bool, out: list[Rec], req_timeout: float) -> None:
    status, ok, err = 0, False, ""
    try:
        if isinstance(client, PlainConn):
            status, data = await asyncio.wait_for(client.post(body(stream)), req_timeout)
        else:
            async with client.post(
                url, data=body(stream), headers={"content-type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=req_timeout),
            ) as resp:
                status = resp.status
                data = await resp.read()
        ok = complete(status, data, stream)
        if not ok:
            err = data[:160].decode(errors="replace")
    except Exception as exc:  # any failure is a result here, recorded by kind
        err = f"{type(exc).__name__}: {exc}"[:160]
    kind = "plain" if isinstance(client, PlainConn) else "aiohttp"
    out.append(Rec(t_sched - t0, time.monotonic() - t_sched, stream, kind, ok, status, err))


async def open_loop(base: str, rate: float, duration: float, stream_share: float,
                    events: list[tuple[float, Callable[[], None]]], raw_conns: int,
                    req_timeout: float = 15.0, warmup: int = 50) -> tuple[list[Rec], float]:
    """Open-loop load, every other request through the plain connections (round-robin)
    when there are any; ``events`` (t, fn) run one after the other in a thread, each at
    t s after the start or as soon as the previous one returned. Returns records and t0."""
    url = base + "/v1/chat/completions"
    every = max(1, round(1 / stream_share)) if stream_share > 0 else 0
    plain = [PlainConn(int(base.rsplit(":", 1)[1])) for _ in range(raw_conns)]
    recs: list[Rec] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        clients: list[aiohttp.ClientSession | PlainConn] = [session, *plain]
        warm: list[Rec] = []
        await asyncio.gather(*(one(clients[i % len(clients)], url, time.monotonic(), 0,
                                   i % 2 == 0, warm, req_timeout) for i in range(warmup)))
        t0 = time.monotonic()

        async def scheduler() -> None:
            for at, fn in sorted(events, key=lambda e: e[0]):
                await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
                await asyncio.to_thread(fn)

        side = asyncio.create_task(scheduler())
        tasks = []
        for i in range(int(rate * duration)):
            t_sched = t0 + i / rate
            delay = t_sched - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            stream = every > 0 and i % every == 0
            client = plain[(i // 2) % len(plain)] if plain and i % 2 else session
            tasks.append(asyncio.create_task(one(client, url, t_sched, t0, stream, recs,
                                                 req_timeout)))
        await asyncio.gather(*tasks)
        await side
        for conn in plain:
            conn.close()
    return recs, t0


# ----------------------------------------------------------------------------- report


def phase_summary(recs: list[Rec]) -> dict[str, Any]:
    out: dict[str, Any] = {"requests": len(recs), "failed": sum(not r.ok for r in recs)}
    for kind in ("aiohttp", "plain"):
        out[f"failed_{kind}"] = sum(not r.ok for r in recs if r.client == kind)
    for kind, is_stream in (("non_stream", False), ("stream", True)):
        lat = [r.latency * 1000 for r in recs if r.ok and r.stream == is_stream]
        out[kind] = {"n": len(lat), "p50_ms": round(pct(lat, 50), 2),
                     "p99_ms": round(pct(lat, 99), 2)}
    kinds: dict[str, int] = {}
    for r in recs:
        if not r.ok:
            key = f"{r.client} {r.status} {r.error[:100]}"
            kinds[key] = kinds.get(key, 0) + 1
    out["failure_kinds"] = kinds
    return out


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b and b == b and a == a else float("nan")


def print_report(out: dict[str, Any]) -> None:
    c = out["config"]
    print(f"rolling: {c['rate']:g} req/s x {c['duration']:g} s, {c['workers']} workers, "
          f"{c['stream_share']:.0%} streams (20 chunks x {c['chunk_delay_ms']:g} ms), "
          f"upstream delay {c['delay_ms']:g} ms, half the requests on {c['raw_conns']} plain "
          f"keep-alive connections")
    print(f"{'phase':<28} {'req':>6} {'failed':>6} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'x base':>11} {'stream p50':>10} {'p99':>7} {'x base':>11}")
    base = out["phases"]["baseline"]
    for name, s in out["phases"].items():
        ns, st = s["non_stream"], s["stream"]
        rn = f"{ratio(ns['p50_ms'], base['non_stream']['p50_ms'])}/" \
             f"{ratio(ns['p99_ms'], base['non_stream']['p99_ms'])}"
        rs = f"{ratio(st['p50_ms'], base['stream']['p50_ms'])}/" \
             f"{ratio(st['p99_ms'], base['stream']['p99_ms'])}"
        label = f"{name} [{s['from_s']:.1f},{s['to_s']:.1f})"
        print(f"{label:<28} {s['requests']:>6} {s['failed']:>6} {ns['p50_ms']:>7} "
              f"{ns['p99_ms']:>7} {rn:>11} {st['p50_ms']:>10} {st['p99_ms']:>7} {rs:>11}")
        for kind, n in s["failure_kinds"].items():
            print(f"    {n} x {kind}")
    print(f"events (t s): {json.dumps(out['events'])}")
    print(f"worker pids: {json.dumps(out['pids'])}")
    print(f"reloads: {json.dumps(out['reloads'])}")
    print("per second (t, requests, failed, p50 ms, p99 ms):")
    print("  " + " ".join(f"[{t} {n} {f} {p50} {p99}]" for t, n, f, p50, p99 in out["timeline"]))


# ----------------------------------------------------------------------------- main


class Run:
    """The system under test and the changes made to it, with their times."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.cfg = tmp / "bastion.yaml"
        self.ports = {"up1": free_port(), "up2": free_port(), "up3": free_port()}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, Proc] = {}
        self.marks: dict[str, float] = {}
        self.pids: dict[str, list[int]] = {}
        self.reloads: list[dict[str, Any]] = []

    def upstream(self, name: str) -> None:
        a = self.args
        self.procs[name] = start_upstream(self.ports[name], a.delay_ms, self.tmp / f"{name}.log",
                                          a.chunk_delay_ms)
        wait_http(f"http://127.0.0.1:{self.ports[name]}/health")

    def start(self) -> None:
        self.upstream("up1")
        self.upstream("up2")
        write_config(self.cfg, {n: self.ports[n] for n in ("up1", "up2")}, self.args.workers)
        self.procs["bastion"] = start_bastion(self.cfg, self.port, self.tmp / "home",
                                              self.tmp / "bastion.log")
        wait_http(self.base + "/health/ready", 60)
        self.pids["start"] = worker_pids(self.base, self.args.workers)

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    def reload(self, name: str, names: list[str]) -> Callable[[], None]:
        def run() -> None:
            self.mark(name)
            write_config(self.cfg, {n: self.ports[n] for n in names}, self.args.workers)
            result = post_reload(self.base)
            self.reloads.append({"at": name, "added": result.get("added"),
                                 "removed": result.get("removed"),
                                 "applied": result.get("applied")})

        return run

    def roll(self, n: int) -> Callable[[], None]:
        def run() -> None:
            self.mark(f"roll{n}")
            os.kill(self.procs["bastion"].p.pid, signal.SIGUSR2)  # the supervisor only
            done = wait_log(self.tmp / "bastion.log", r"rolling restart done", n)
            self.mark(f"roll{n}_done" if done else f"roll{n}_timeout")
            time.sleep(1.5)  # the old workers' drain linger
            self.pids[f"after_roll{n}"] = worker_pids(self.base, self.args.workers)

        return run

    def replicas(self) -> list[tuple[float, Callable[[], None]]]:
        t = self.args.replicas_at

        def start_up3() -> None:
            self.mark("up3_start")
            self.upstream("up3")

        def stop_up1() -> None:
            self.mark("up1_stop")
            self.procs["up1"].stop()

        return [(t, start_up3), (t + 1, self.reload("add_up3", ["up1", "up2", "up3"])),
                (t + 3, self.reload("remove_up1", ["up2", "up3"])), (t + 5, stop_up1)]

    def events(self) -> list[tuple[float, Callable[[], None]]]:
        a = self.args
        out: list[tuple[float, Callable[[], None]]] = []
        for i in range(4):
            names = ["up1"] if i % 2 == 0 else ["up1", "up2"]
            out.append((a.reloads_at + 2 * i, self.reload(f"reload{i + 1}", names)))
        out += [(a.roll_at, self.roll(1)), (a.roll_at + 1, self.roll(2))]
        return out + self.replicas()


def phases(marks: dict[str, float], t0: float, duration: float) -> dict[str, tuple[float, float]]:
    m = {k: v - t0 for k, v in marks.items()}
    roll_end = max(v for k, v in m.items() if k.startswith("roll2")) + 2.0
    return {
        "baseline": (0.0, m["reload1"]),
        "reloads": (m["reload1"], m["reload4"] + 2.0),
        "rolling restarts": (m["roll1"], roll_end),
        "replica swap": (m["up3_start"], m["up1_stop"] + 2.0),
        "after": (m["up1_stop"] + 2.0, duration),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stream-share", type=float, default=0.25)
    ap.add_argument("--raw-conns", type=int, default=16,
                    help="plain keep-alive connections taking every other request (0: none)")
    ap.add_argument("--delay-ms", type=float, default=2.0, help="FAKE_DELAY_MS of the upstreams")
    ap.add_argument("--chunk-delay-ms", type=float, default=5.0,
                    help="FAKE_CHUNK_DELAY_MS of the upstreams (20 chunks per stream)")
    ap.add_argument("--reloads-at", type=float, default=10.0, help="first of 4 reloads, 2 s apart")
    ap.add_argument("--roll-at", type=float, default=22.0, help="first SIGUSR2")
    ap.add_argument("--replicas-at", type=float, default=40.0, help="start of the replica swap")
    ap.add_argument("--json", type=Path, help="write the raw summary here")
    args = ap.parse_args()
    if not (args.reloads_at + 8 <= args.roll_at < args.replicas_at - 8
            and args.replicas_at + 10 <= args.duration <= 120):
        ap.error("need reloads-at + 8 <= roll-at < replicas-at - 8, replicas-at + 10 <= "
                 "duration <= 120")

    tmp = Path(tempfile.mkdtemp(prefix="bastion-rolling-"))
    run = Run(args, tmp)
    try:
        run.start()
        recs, t0 = asyncio.run(open_loop(run.base, args.rate, args.duration,
                                         args.stream_share, run.events(), args.raw_conns))
    finally:
        for p in run.procs.values():
            p.stop()

    windows = phases(run.marks, t0, args.duration)
    out: dict[str, Any] = {
        "config": vars(args) | {"json": None},
        "events": {k: round(v - t0, 3) for k, v in sorted(run.marks.items(), key=lambda kv: kv[1])},
        "pids": run.pids,
        "reloads": run.reloads,
        "phases": {},
        "overall": phase_summary(recs),
    }
    for name, (lo, hi) in windows.items():
        s = phase_summary([r for r in recs if lo <= r.sched < hi])
        out["phases"][name] = {"from_s": round(lo, 2), "to_s": round(hi, 2), **s}
    timeline = []
    for sec in range(int(args.duration)):
        b = [r.latency * 1000 for r in recs if sec <= r.sched < sec + 1 and r.ok]
        n = sum(sec <= r.sched < sec + 1 for r in recs)
        timeline.append((sec, n, n - len(b), round(pct(b, 50), 1), round(pct(b, 99), 1)))
    out["timeline"] = timeline
    print_report(out)
    o = out["overall"]
    print(f"overall: {o['requests']} requests, {o['failed']} failed")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    print(f"logs: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
